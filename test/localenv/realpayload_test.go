/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package localenv_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// TestRealPayload joins a simulated host with the payload make payload
// built: the operator process loads payload/ (a directory of versioned
// payloads) and verifies every file's SHA-256, uploads the real binaries
// into the versioned directory on the host, renders the plan against
// them, and the kubelet reports the version its binary was built with,
// as the manifest records it. Skipped when payload/ has not been built,
// unless WMCO_REAL_PAYLOAD=1 (make test-real-payload).
func TestRealPayload(t *testing.T) {
	parent, _, m, err := testpayload.Real()
	if errors.Is(err, testpayload.ErrNoRealPayload) && !testpayload.RealRequired() {
		t.Skipf("%v (set %s=1 to fail instead)", err, testpayload.RealRequiredEnv)
	}
	if err != nil {
		t.Fatal(err)
	}
	g := NewWithT(t)
	kubelet, ok := m.File(payload.KubeletPath)
	g.Expect(ok).To(BeTrue())
	g.Expect(kubelet.Version).To(Equal(m.KubernetesVersion), "make payload records the version kubelet.exe was built with")
	g.Expect(kubelet.Source).To(Equal("k8s.io/kubernetes@" + m.KubernetesVersion))
	g.Expect(kubelet.Size).To(BeNumerically(">", 10<<20), "a real kubelet, not a fake")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A kubelet binary the simulator does not know would report this.
	const unknownBinary = "v1.0.0-unknown-binary"
	env, err := localenv.Start(ctx, localenv.Options{
		Hosts: 1, PayloadDir: parent, Log: testLog{t},
		Host: simagent.Options{KubeletVersion: unknownBinary},
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	g.Expect(env.Payload.Version).To(Equal(m.Version), "the operator's payload is the one make payload built")

	h := env.Hosts[0]
	g.Expect(env.SetInventory(ctx, h)).To(Succeed())
	wi := &wmcov1.WindowsInstance{}
	g.Eventually(func(g Gomega) {
		// The ConfigMap's WindowsInstances are named by address.
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: h.IP}, wi)).To(Succeed())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "message: %s", wi.Status.Message)
	}).WithContext(ctx).WithTimeout(4 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	g.Expect(wi.Status.PayloadVersion).To(Equal(m.Version))
	g.Expect(wi.Status.PayloadVersion).To(HavePrefix(m.KubernetesVersion + "-"))
	g.Expect(wi.Status.NodeName).To(Equal(h.Name))

	// The Node's kubelet version is what the uploaded kubelet.exe was
	// built with: the simulated kubelet reports the version of the bytes
	// installed, which the manifest records.
	node := &corev1.Node{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: h.Name}, node)).To(Succeed())
	g.Expect(node.Status.NodeInfo.KubeletVersion).To(Equal(kubelet.Version))
	g.Expect(node.Status.NodeInfo.KubeletVersion).NotTo(Equal(unknownBinary))
	g.Expect(node.Annotations).To(HaveKeyWithValue(wmcov1.AnnotationPayloadVersion, m.Version))
	// ...and `kubectl get wi` shows it (the Kubelet column).
	g.Expect(wi.Status.KubeletVersion).To(Equal(kubelet.Version))
	out, err := exec.CommandContext(ctx, env.Cluster.Kubectl(), "--kubeconfig", env.Cluster.KubeconfigPath, "get", "wi", h.IP).CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), string(out))
	t.Logf("kubectl get wi:\n%s", out)
	g.Expect(string(out)).To(MatchRegexp(`(?m)^NAME\s+ADDRESS\s+NODE\s+PHASE\s+READY\s+KUBELET\s+UPGRADE\s+AGE$`))
	g.Expect(string(out)).To(MatchRegexp(`(?m)^` + regexp.QuoteMeta(h.IP) + `\s+.*\s+Ready\s+True\s+` + regexp.QuoteMeta(kubelet.Version) + `\s`))

	// Every file is on the host, byte for byte, in the version's directory.
	disk := h.Host.Disk()
	for _, f := range m.Files {
		data, err := disk.ReadFile(m.HostPath(f.Path))
		g.Expect(err).NotTo(HaveOccurred(), f.Path)
		sum := sha256.Sum256(data)
		g.Expect(hex.EncodeToString(sum[:])).To(Equal(f.SHA256), f.Path)
	}

	// The plan runs the services from that directory.
	for name, file := range map[string]string{
		nodeconfig.ServiceKubelet:    payload.KubeletPath,
		nodeconfig.ServiceKubeProxy:  payload.KubeProxyPath,
		nodeconfig.ServiceContainerd: payload.ContainerdPath,
	} {
		st, err := h.Services.Query(ctx, name)
		g.Expect(err).NotTo(HaveOccurred(), name)
		g.Expect(st.Running).To(BeTrue(), name)
		cmdline := append([]string{st.Config.Binary}, st.Config.Args...)
		g.Expect(slices.ContainsFunc(cmdline, func(a string) bool { return strings.EqualFold(a, m.HostPath(file)) })).
			To(BeTrue(), "%s runs %s: %q", name, m.HostPath(file), cmdline)
	}

	// A running executable cannot be replaced, as on Windows.
	g.Expect(disk.WriteFile(m.HostPath(payload.KubeletPath), []byte("x"))).NotTo(Succeed())
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
