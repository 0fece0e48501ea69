package instance

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// manifestOf is a payload of version v with one file per path, each
// holding the content named by sums[path].
func manifestOf(v string, sums map[string]string) *payload.Manifest {
	m := &payload.Manifest{Version: v, KubernetesVersion: "v1.37.2"}
	for p, sum := range sums {
		c, _ := payload.ComponentOf(p)
		m.Files = append(m.Files, payload.File{Path: p, Component: c, Size: 1, SHA256: strings.Repeat(sum, 64)})
	}
	return m
}

// hostWith is facts' file map of a host holding payload m in its folder.
func hostWith(m *payload.Manifest) map[string]string {
	out := map[string]string{}
	for _, f := range m.Files {
		out[strings.ToUpper(payload.HostPath(m.Version, f.Path))] = strings.ToUpper(f.SHA256)
	}
	return out
}

func TestUpgradeKind(t *testing.T) {
	g := NewWithT(t)
	old := manifestOf("v1", map[string]string{payload.KubeletPath: "a", payload.WindowsExporterPath: "b", payload.CSIProxyPath: "c"})
	host := hostWith(old)
	for _, tc := range []struct {
		name    string
		sums    map[string]string
		changed []payload.Component
		drain   bool
	}{
		{"nothing changed", map[string]string{payload.KubeletPath: "a", payload.WindowsExporterPath: "b", payload.CSIProxyPath: "c"}, nil, false},
		{"only windows_exporter", map[string]string{payload.KubeletPath: "a", payload.WindowsExporterPath: "d", payload.CSIProxyPath: "c"},
			[]payload.Component{payload.ComponentWindowsExporter}, false},
		{"exporter and csi-proxy", map[string]string{payload.KubeletPath: "a", payload.WindowsExporterPath: "d", payload.CSIProxyPath: "e"},
			[]payload.Component{payload.ComponentCSIProxy, payload.ComponentWindowsExporter}, false},
		{"the kubelet", map[string]string{payload.KubeletPath: "f", payload.WindowsExporterPath: "b", payload.CSIProxyPath: "c"},
			[]payload.Component{payload.ComponentKubelet}, true},
		{"a file the host lacks", map[string]string{payload.KubeletPath: "a", payload.WindowsExporterPath: "b", payload.CSIProxyPath: "c", payload.KubeProxyPath: "9"},
			[]payload.Component{payload.ComponentKubeProxy}, true},
	} {
		changed, drain := upgradeKind(manifestOf("v2", tc.sums), "v1", host)
		g.Expect(changed).To(Equal(tc.changed), tc.name)
		g.Expect(drain).To(Equal(tc.drain), tc.name)
	}
	// A host whose applied files are unknown (facts lack them) is
	// drained: nothing tells that the change is harmless.
	_, drain := upgradeKind(manifestOf("v2", map[string]string{payload.WindowsExporterPath: "d"}), "v1", map[string]string{})
	g.Expect(drain).To(BeTrue(), "unknown applied files")
}

func TestStagePayload(t *testing.T) {
	g := NewWithT(t)
	old := manifestOf("v1", map[string]string{payload.KubeletPath: "a", payload.WindowsExporterPath: "b"})
	host := hostWith(old)
	// The current agent is a source (the payload's wicd.exe is not sent
	// twice); the staged agent, or any other file outside the payload
	// root, is not.
	host[`C:\k\wicd.exe`] = strings.Repeat("c", 64)
	host[wicdapi.AgentStagingPath] = strings.Repeat("e", 64)
	host[`C:\k\other.exe`] = strings.Repeat("f", 64)
	next := manifestOf("v2", map[string]string{
		payload.KubeletPath: "a", payload.WindowsExporterPath: "d", payload.WICDPath: "c", payload.CSIProxyPath: "e", payload.KubeProxyPath: "f",
	})
	copies, uploads := stagePayload(next, host)
	g.Expect(copies).To(ConsistOf(wicdapi.StageCopy{
		From: strings.ToUpper(payload.HostPath("v1", payload.KubeletPath)), To: payload.HostPath("v2", payload.KubeletPath), SHA256: strings.Repeat("a", 64),
	}, wicdapi.StageCopy{
		From: `C:\k\wicd.exe`, To: payload.HostPath("v2", payload.WICDPath), SHA256: strings.Repeat("c", 64),
	}))
	var up []string
	for _, f := range uploads {
		up = append(up, f.Path)
	}
	g.Expect(up).To(ConsistOf(payload.WindowsExporterPath, payload.CSIProxyPath, payload.KubeProxyPath))

	// Once staged, nothing is left to do.
	for _, f := range next.Files {
		host[payload.HostPath("v2", f.Path)] = f.SHA256
	}
	copies, uploads = stagePayload(next, host)
	g.Expect(copies).To(BeEmpty())
	g.Expect(uploads).To(BeEmpty())
}

func TestSlotHolders(t *testing.T) {
	g := NewWithT(t)
	wi := func(name string, u *wmcov1.UpgradeStatus) wmcov1.WindowsInstance {
		return wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: wmcov1.WindowsInstanceStatus{Upgrade: u}}
	}
	items := []wmcov1.WindowsInstance{
		wi("c", &wmcov1.UpgradeStatus{}), wi("a", &wmcov1.UpgradeStatus{}), wi("b", nil),
		wi("d", &wmcov1.UpgradeStatus{InPlace: true}), wi("self", &wmcov1.UpgradeStatus{}),
	}
	g.Expect(slotHolders(items, "self")).To(Equal([]string{"a", "c"}), "in-place upgrades and the asker do not count")
}

func TestSummarizeUpgradeAndPayload(t *testing.T) {
	g := NewWithT(t)
	wi := &wmcov1.WindowsInstance{}
	for _, c := range []string{wmcov1.ConditionReachable, wmcov1.ConditionPreflightPassed, wmcov1.ConditionConfigured, wmcov1.ConditionNodeReady} {
		setCondition(wi, c, outcome{ok: true, reason: "OK", message: "ok"})
	}
	summarize(wi, false, false)
	g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady))

	wi.Status.Upgrade = &wmcov1.UpgradeStatus{From: "a", To: "b", Progress: "a → b"}
	setUpgradingCondition(wi, true, ReasonUpgradeDraining, "draining the Node to go a → b")
	summarize(wi, false, false)
	g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseUpgrading))
	g.Expect(wi.Status.Message).To(Equal("draining the Node to go a → b"))
	g.Expect(meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReconciling)).To(BeTrue())
	g.Expect(meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReady)).To(BeFalse())

	// A step that fails during the upgrade shows in the message.
	setReachableCondition(wi, outcome{reason: ReasonUnreachable, message: "cannot reach the host's SSH server: connection refused"})
	summarize(wi, false, false)
	g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseUpgrading))
	g.Expect(wi.Status.Message).To(Equal("draining the Node to go a → b: cannot reach the host's SSH server: connection refused"))
	setReachableCondition(wi, outcome{ok: true, reason: ReasonConnected, message: "connected over SSH"})

	wi.Status.Upgrade = nil
	setUpgradingCondition(wi, false, ReasonUpgradeFailed, "upgrade a → b failed")
	summarize(wi, false, false)
	g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "a rolled-back host is a Ready node; the Upgrading condition tells")

	setPayloadCompatibleCondition(wi, payload.Entry{}, &payload.SkewError{Server: "v1.37.2", Available: []string{"v1.38.0"}})
	summarize(wi, false, false)
	g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhasePending))
	g.Expect(wi.Status.Message).To(And(ContainSubstring("v1.37.2"), ContainSubstring("v1.38.0")))
	g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionStalled)).To(BeNil(), "not the spec's fault")
}
