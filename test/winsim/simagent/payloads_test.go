package simagent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// randomBytes is n deterministic pseudo-random bytes (incompressible, as
// binaries nearly are).
func randomBytes(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

func payloadPath(version, rel string) string { return wicdapi.PayloadRoot + `\` + version + `\` + rel }

// runJSON runs the agent over SSH with args and decodes stdout into out;
// it returns the exit code.
func runJSON(ctx context.Context, g Gomega, s remote.Session, out any, args ...string) int {
	stdout, code := runAgent(ctx, g, s, append([]string{wicdapi.AgentPath}, args...)...)
	g.Expect(json.Unmarshal(stdout, out)).To(Succeed(), string(stdout))
	return code
}

// agentError runs the agent, expects it to fail, and returns its error.
func agentError(ctx context.Context, g Gomega, s remote.Session, args ...string) *wicdapi.Error {
	var eo wicdapi.ErrorOutput
	g.Expect(runJSON(ctx, g, s, &eo, args...)).To(Equal(1))
	g.Expect(eo.Error).NotTo(BeNil())
	return eo.Error
}

func uploadJSON(ctx context.Context, g Gomega, s remote.Session, dst string, v any) {
	data, err := json.Marshal(v)
	g.Expect(err).NotTo(HaveOccurred())
	upload(ctx, g, s, dst, data)
}

func TestStageCopiesFilesOnTheHost(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	kubelet, cni := randomBytes("kubelet", 256<<10), randomBytes("cni", 64<<10)
	upload(ctx, g, sess, payloadPath("v1", "kubelet.exe"), kubelet)
	upload(ctx, g, sess, payloadPath("v1", `cni\host-local.exe`), cni)
	upload(ctx, g, sess, payloadPath("v2", "kubelet.exe"), kubelet) // already there

	plan := wicdapi.StagePlan{Copies: []wicdapi.StageCopy{
		{From: payloadPath("v1", "kubelet.exe"), To: payloadPath("v2", "kubelet.exe"), SHA256: sha256Hex(kubelet)},
		{From: payloadPath("v1", `cni\host-local.exe`), To: payloadPath("v2", `cni\host-local.exe`), SHA256: sha256Hex(cni)},
	}}
	uploadJSON(ctx, g, sess, wicdapi.StagePlanPath, plan)
	var res wicdapi.StageResult
	g.Expect(runJSON(ctx, g, sess, &res, wicdapi.StageArg, "--plan", wicdapi.StagePlanPath)).To(Equal(0))
	g.Expect(res).To(Equal(wicdapi.StageResult{Copied: 1, Bytes: int64(len(cni)), Present: 1}))
	g.Expect(disk.ReadFile(payloadPath("v2", `cni\host-local.exe`))).To(Equal(cni), "parent folders are created")
	g.Expect(runJSON(ctx, g, sess, &res, wicdapi.StageArg)).To(Equal(0), "the plan path is the default")
	g.Expect(res).To(Equal(wicdapi.StageResult{Present: 2}))

	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	g.Expect(facts.PayloadVersions).To(Equal([]string{"v1", "v2"}))
	g.Expect(facts.AppliedPayloadVersion).To(BeEmpty())
	g.Expect(facts.Files).To(HaveKeyWithValue(payloadPath("v2", `cni\host-local.exe`), sha256Hex(cni)))

	// A source that does not have the bytes asked for is refused, and
	// nothing is written.
	other := randomBytes("other", 1000)
	uploadJSON(ctx, g, sess, wicdapi.StagePlanPath, wicdapi.StagePlan{Copies: []wicdapi.StageCopy{
		{From: payloadPath("v1", "kubelet.exe"), To: payloadPath("v3", "kubelet.exe"), SHA256: sha256Hex(other)},
	}})
	e := agentError(ctx, g, sess, wicdapi.StageArg)
	g.Expect(e.Code).To(Equal(wicdapi.CodeFileMismatch), e.Message)
	_, err := disk.Stat(payloadPath("v3", ""))
	g.Expect(err).To(MatchError(fs.ErrNotExist), "nor its folder")

	// A missing source.
	uploadJSON(ctx, g, sess, wicdapi.StagePlanPath, wicdapi.StagePlan{Copies: []wicdapi.StageCopy{
		{From: payloadPath("v1", "nothere.exe"), To: payloadPath("v3", "kubelet.exe"), SHA256: sha256Hex(other)},
	}})
	g.Expect(agentError(ctx, g, sess, wicdapi.StageArg).Code).To(Equal(wicdapi.CodeNotFound))

	// Paths outside the payload folders are refused before anything.
	for _, c := range []wicdapi.StageCopy{
		{From: payloadPath("v1", "kubelet.exe"), To: wicdapi.AgentPath, SHA256: sha256Hex(kubelet)},
		{From: `C:\k\bootstrap-kubeconfig`, To: payloadPath("v3", "x"), SHA256: sha256Hex(kubelet)},
		{From: payloadPath("v1", "kubelet.exe"), To: payloadPath("v3", `..\..\wicd.exe`), SHA256: sha256Hex(kubelet)},
	} {
		uploadJSON(ctx, g, sess, wicdapi.StagePlanPath, wicdapi.StagePlan{Copies: []wicdapi.StageCopy{c}})
		g.Expect(agentError(ctx, g, sess, wicdapi.StageArg).Code).To(Equal(wicdapi.CodeInvalidPlan), c.To)
	}
	g.Expect(disk.ReadFile(wicdapi.AgentPath)).To(Equal(simagent.AgentImage("v1")))

	// A copy that does not fit leaves neither a broken target nor its
	// temporary file behind, nor the folder made for it (an empty
	// version folder would count as a payload version).
	uploadJSON(ctx, g, sess, wicdapi.StagePlanPath, wicdapi.StagePlan{Copies: []wicdapi.StageCopy{
		{From: payloadPath("v1", "kubelet.exe"), To: payloadPath("v3", "kubelet.exe"), SHA256: sha256Hex(kubelet)},
	}})
	quota := disk.Quota()
	disk.SetQuota(disk.Used() + int64(len(kubelet))/2)
	g.Expect(agentError(ctx, g, sess, wicdapi.StageArg).Code).To(Equal(wicdapi.CodeDiskFull))
	_, err = disk.Stat(payloadPath("v3", ""))
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	disk.SetQuota(quota)
	g.Expect(runJSON(ctx, g, sess, &res, wicdapi.StageArg)).To(Equal(0))
	g.Expect(res.Copied).To(Equal(1))
	g.Expect(disk.ReadFile(payloadPath("v3", "kubelet.exe"))).To(Equal(kubelet))
}

// An upgrade in which one file changed moves about that file's bytes over
// the wire: the unchanged files are staged from the applied version's
// folder on the host.
func TestStagedUpgradeSendsOnlyTheChangedFile(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	files := map[string][]byte{}
	for _, rel := range []string{"kubelet.exe", "containerd.exe", "kube-proxy.exe", `cni\win-overlay.exe`, "windows_exporter.exe"} {
		files[rel] = randomBytes("v1 "+rel, 1<<20)
		upload(ctx, g, sess, payloadPath("v1", rel), files[rel])
	}
	changed := randomBytes("v2 windows_exporter.exe", 1<<20)

	// What the operator does, given the facts' hashes and the new
	// manifest: stage what the host has, upload the rest.
	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	before := node.Host.Stats().BytesReceived
	var plan wicdapi.StagePlan
	for rel, data := range files {
		if rel == "windows_exporter.exe" {
			continue
		}
		g.Expect(facts.Files).To(HaveKeyWithValue(payloadPath("v1", rel), sha256Hex(data)))
		plan.Copies = append(plan.Copies, wicdapi.StageCopy{From: payloadPath("v1", rel), To: payloadPath("v2", rel), SHA256: sha256Hex(data)})
	}
	uploadJSON(ctx, g, sess, wicdapi.StagePlanPath, plan)
	var res wicdapi.StageResult
	g.Expect(runJSON(ctx, g, sess, &res, wicdapi.StageArg)).To(Equal(0))
	g.Expect(res).To(Equal(wicdapi.StageResult{Copied: 4, Bytes: 4 << 20}))
	upload(ctx, g, sess, payloadPath("v2", "windows_exporter.exe"), changed)
	sent := node.Host.Stats().BytesReceived - before
	t.Logf("bytes received by the host for the upgrade: %d (changed file: %d)", sent, len(changed))
	g.Expect(sent).To(BeNumerically(">=", len(changed)))
	g.Expect(sent).To(BeNumerically("<=", 1.05*float64(len(changed))))

	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	for rel, data := range files {
		if rel != "windows_exporter.exe" {
			g.Expect(facts.Files).To(HaveKeyWithValue(payloadPath("v2", rel), sha256Hex(data)))
		}
	}
	g.Expect(facts.Files).To(HaveKeyWithValue(payloadPath("v2", "windows_exporter.exe"), sha256Hex(changed)))
}

// upgradeHost is a host with the agent service and three payload services:
// containerd, kube-proxy under kube-log-runner (depending on containerd)
// and windows_exporter.
type upgradeHost struct {
	node *simagent.Node
	sess remote.Session
}

// stage puts version's payload on the host: the shared files of every
// version, and a windows_exporter of its own.
func (h upgradeHost) stage(ctx context.Context, g Gomega, version string) {
	for _, rel := range []string{"containerd.exe", "kube-log-runner.exe", "kube-proxy.exe"} {
		upload(ctx, g, h.sess, payloadPath(version, rel), []byte("MZ "+rel))
	}
	upload(ctx, g, h.sess, payloadPath(version, "windows_exporter.exe"), []byte("MZ windows_exporter "+version))
}

func upgradePlan(version string) *wicdapi.Plan {
	rec := wicdapi.Recovery{RestartDelaySeconds: 5, ResetPeriodSeconds: 600}
	return &wicdapi.Plan{
		SchemaVersion: wicdapi.SchemaVersion, PayloadVersion: version, NodeName: "win-upgrade",
		Directories: []string{`C:\k\log`}, // kube-log-runner opens its log, not its folder
		Services: []wicdapi.Service{
			{Name: wicdapi.AgentServiceName, Binary: wicdapi.AgentPath, Args: []string{"run"}, Recovery: rec},
			{Name: "containerd", Binary: payloadPath(version, "containerd.exe"), Args: []string{`--config=C:\k\containerd\containerd.toml`, "--run-service"}, Recovery: rec},
			{Name: "kube-proxy", Binary: payloadPath(version, "kube-log-runner.exe"), Dependencies: []string{"containerd"}, Recovery: rec,
				Args: []string{`-log-file=C:\k\log\kube-proxy.log`, payloadPath(version, "kube-proxy.exe"), "--windows-service"}},
			{Name: "windows_exporter", Binary: payloadPath(version, "windows_exporter.exe"), Recovery: rec},
		},
	}
}

func (h upgradeHost) apply(ctx context.Context, g Gomega, version string) wicdapi.ApplyResult {
	uploadJSON(ctx, g, h.sess, wicdapi.PlanPath, upgradePlan(version))
	var res wicdapi.ApplyResult
	run(ctx, g, h.sess, &res, "apply")
	return res
}

func (h upgradeHost) starts() map[string]int {
	out := map[string]int{}
	for _, s := range []string{"containerd", "kube-proxy", "windows_exporter"} {
		out[s] = h.node.Services.Starts(s)
	}
	return out
}

func (h upgradeHost) binaries(ctx context.Context, g Gomega) map[string]string {
	out := map[string]string{}
	for _, s := range []string{"containerd", "kube-proxy", "windows_exporter"} {
		st, err := h.node.Services.Query(ctx, s)
		g.Expect(err).NotTo(HaveOccurred())
		out[s] = st.Config.Binary
	}
	return out
}

func TestUpgradeRepointsUnchangedServicesPrunesAndRollsBack(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{AgentRunInterval: 50 * time.Millisecond, RecoveryScale: 0.01})
	h := upgradeHost{node: node, sess: sess}
	disk := node.Host.Disk()
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	h.stage(ctx, g, "v1")
	res := h.apply(ctx, g, "v1")
	g.Expect(res.Changes).To(ContainElement(wicdapi.Change{Kind: "service", Name: "kube-proxy", Action: "started"}))
	g.Eventually(node.AgentServiceVersion).WithTimeout(agentServiceWait).Should(Equal("v1"))
	g.Expect(agentError(ctx, g, sess, wicdapi.RollbackArg).Code).To(Equal(wicdapi.CodeNotFound), "nothing to roll back to yet")

	// v2 changes only windows_exporter: only it restarts; the others are
	// pointed at v2 and keep running v1's binaries.
	h.stage(ctx, g, "v2")
	starts := h.starts()
	res = h.apply(ctx, g, "v2")
	g.Expect(res.Changes).To(ConsistOf(
		wicdapi.Change{Kind: "service", Name: "containerd", Action: wicdapi.ActionRepointed},
		wicdapi.Change{Kind: "service", Name: "kube-proxy", Action: wicdapi.ActionRepointed},
		wicdapi.Change{Kind: "service", Name: "windows_exporter", Action: "updated"},
		wicdapi.Change{Kind: "service", Name: "windows_exporter", Action: "restarted"},
	))
	starts["windows_exporter"]++
	g.Expect(h.starts()).To(Equal(starts))
	g.Expect(h.binaries(ctx, g)).To(Equal(map[string]string{
		"containerd": payloadPath("v2", "containerd.exe"), "kube-proxy": payloadPath("v2", "kube-log-runner.exe"),
		"windows_exporter": payloadPath("v2", "windows_exporter.exe"),
	}))
	g.Expect(disk.Holders(payloadPath("v1", "containerd.exe"))).To(Equal([]string{"containerd.exe (service containerd)"}),
		"the repointed service still runs the old binary")
	g.Consistently(h.starts).WithTimeout(300*time.Millisecond).Should(Equal(starts), "the agent service's re-applies change nothing")
	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	g.Expect([]string{facts.AppliedPayloadVersion, facts.PreviousPayloadVersion}).To(Equal([]string{"v2", "v1"}))
	g.Expect(facts.ApplyError).To(BeNil())

	// A stray old version, one of whose files a process holds.
	upload(ctx, g, sess, payloadPath("v0", "kube-proxy.exe"), []byte("MZ old"))
	upload(ctx, g, sess, payloadPath("v0", `cni\flannel.exe`), []byte("MZ old cni"))
	pod, err := node.Host.StartProcess("kube-proxy.exe", payloadPath("v0", "kube-proxy.exe"))
	g.Expect(err).NotTo(HaveOccurred())
	var pruned wicdapi.PruneResult
	g.Expect(runJSON(ctx, g, sess, &pruned, wicdapi.PruneArg)).To(Equal(0))
	g.Expect(pruned).To(Equal(wicdapi.PruneResult{Removed: []string{},
		Kept: []wicdapi.HeldFile{{Path: payloadPath("v0", "kube-proxy.exe"), Holders: []string{pod.Name()}}}}))
	_, err = disk.Stat(payloadPath("v0", `cni\flannel.exe`))
	g.Expect(err).To(MatchError(fs.ErrNotExist), "what nothing holds is removed")
	pod.Exit()
	pruned = wicdapi.PruneResult{}
	g.Expect(runJSON(ctx, g, sess, &pruned, wicdapi.PruneArg)).To(Equal(0))
	g.Expect(pruned).To(Equal(wicdapi.PruneResult{Removed: []string{"v0"}}))
	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	g.Expect(facts.PayloadVersions).To(Equal([]string{"v1", "v2"}), "the applied and the previous version stay")

	// Rollback points everything back at v1: windows_exporter restarts
	// with v1's binary, the others are repointed.
	var rolled wicdapi.ApplyResult
	g.Expect(runJSON(ctx, g, sess, &rolled, wicdapi.RollbackArg)).To(Equal(0))
	g.Expect(rolled.Changes).To(ConsistOf(
		wicdapi.Change{Kind: "service", Name: "containerd", Action: wicdapi.ActionRepointed},
		wicdapi.Change{Kind: "service", Name: "kube-proxy", Action: wicdapi.ActionRepointed},
		wicdapi.Change{Kind: "service", Name: "windows_exporter", Action: "updated"},
		wicdapi.Change{Kind: "service", Name: "windows_exporter", Action: "restarted"},
	))
	g.Expect(h.binaries(ctx, g)).To(HaveKeyWithValue("windows_exporter", payloadPath("v1", "windows_exporter.exe")))
	g.Expect(disk.Holders(payloadPath("v1", "windows_exporter.exe"))).To(HaveLen(1))
	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	g.Expect([]string{facts.AppliedPayloadVersion, facts.PreviousPayloadVersion}).To(Equal([]string{"v1", "v2"}))

	// v3 after v1 (v2 was the failed one): pruning now removes v2, and
	// leaves the old binaries the repointed services still run.
	h.stage(ctx, g, "v3")
	h.apply(ctx, g, "v3")
	pruned = wicdapi.PruneResult{}
	g.Expect(runJSON(ctx, g, sess, &pruned, wicdapi.PruneArg)).To(Equal(0))
	g.Expect(pruned.Removed).To(Equal([]string{"v2"}))
	g.Expect(pruned.Kept).To(BeEmpty(), "v1 is the previous version, so it stays whole")
	g.Expect(h.apply(ctx, g, "v3").Changed).To(BeFalse())

	// A service restarted for another reason runs the new folder's binary.
	g.Expect(node.Services.Stop(ctx, "kube-proxy")).To(Succeed())
	g.Eventually(func() []string { return disk.Holders(payloadPath("v3", "kube-proxy.exe")) }).WithTimeout(agentServiceWait).Should(HaveLen(1),
		"the agent service starts the stopped service from v3")
}

// A failed apply leaves its plan applied, with its error in the facts
// until an apply of it succeeds (here the agent service's re-apply).
func TestApplyErrorIsKeptUntilAnApplySucceeds(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{AgentRunInterval: 50 * time.Millisecond})
	installAgent(ctx, g, node, sess)
	upload(ctx, g, sess, payloadPath("v2", "csi-proxy.exe"), []byte("MZ csi-proxy 2"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, agentOnlyPlan("v2"))
	node.Services.FailStart("csi-proxy", errors.New("the service did not start"))
	g.Expect(agentError(ctx, g, sess, "apply").Code).To(Equal(wicdapi.CodeServiceFailed))
	facts := func(g Gomega) wicdapi.Facts { return hostFacts(ctx, g, sess) }
	f := facts(g)
	g.Expect(f.AppliedPayloadVersion).To(Equal("v2"))
	g.Expect(f.ApplyError).To(HaveField("Message", ContainSubstring("start service csi-proxy")))

	node.Services.FailStart("csi-proxy", nil)
	g.Eventually(func(g Gomega) { g.Expect(facts(g).ApplyError).To(BeNil()) }).WithTimeout(agentServiceWait).Should(Succeed())
	g.Expect(node.Services.Running("csi-proxy")).To(BeTrue())
}

// hostFacts runs `wicd facts` on the host.
func hostFacts(ctx context.Context, g Gomega, sess remote.Session) wicdapi.Facts {
	var f wicdapi.Facts
	run(ctx, g, sess, &f, "facts")
	return f
}

// applyCutShort arms hold, runs `wicd apply` of the uploaded plan and
// cancels it (the operator's connection closed mid-apply) once hold holds
// a start or stop of it; it returns when the apply has ended. hold stays
// armed.
func applyCutShort(ctx context.Context, g Gomega, sess remote.Session, hold *simagent.Hold, held string) {
	hold.Arm(true)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		_, err := sess.Run(actx, []string{wicdapi.AgentPath, "apply", "--plan", wicdapi.PlanPath})
		ran <- err
	}()
	g.Eventually(hold.Held()).WithTimeout(agentServiceWait).Should(Receive(), held)
	cancel()
	g.Eventually(ran).WithTimeout(agentServiceWait).Should(Receive(MatchError(context.Canceled)))
}

// An apply cut short (the operator's connection closed mid-apply, as when
// the operator is killed) has already saved its plan as the applied one:
// until an apply of it finishes, the facts must not say it is in place,
// or the operator would wait for a Node that the half-applied plan never
// brings up instead of applying it again.
func TestApplyCutShortIsNotInPlace(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hold := simagent.NewHold()
	// The agent service re-applies only at its start: nothing but the
	// test's applies touches the plan.
	node, sess := startHost(t, simagent.Options{AgentRunInterval: time.Hour, StartGates: map[string]func(context.Context) error{"csi-proxy.exe": hold.Gate}})
	installAgent(ctx, g, node, sess)
	facts := func(g Gomega) wicdapi.Facts { return hostFacts(ctx, g, sess) }
	g.Expect(facts(g).ApplyError).To(BeNil())

	upload(ctx, g, sess, payloadPath("v2", "csi-proxy.exe"), []byte("MZ csi-proxy 2"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, agentOnlyPlan("v2"))
	applyCutShort(ctx, g, sess, hold, "the apply starts csi-proxy of v2")
	// Prune waits for the host lock: the cut-short apply has ended once
	// it answers.
	var pruned wicdapi.PruneResult
	g.Expect(runJSON(ctx, g, sess, &pruned, wicdapi.PruneArg)).To(Equal(0))
	f := facts(g)
	g.Expect(f.AppliedPayloadVersion).To(Equal("v2"))
	g.Expect(f.ApplyError).To(HaveField("Code", wicdapi.CodeInterrupted), "the applied plan is not in place")
	g.Expect(f.ApplyError.Message).To(ContainSubstring("v2"))

	// Applied again to the end, it is in place.
	hold.Arm(false)
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(facts(g).ApplyError).To(BeNil())
	g.Expect(node.Services.Running("csi-proxy")).To(BeTrue())

	// Applying the plan in place again and cutting that short leaves no
	// mark: nothing of the plan was undone that the agent service's next
	// re-apply does not put back, and the agent service's own re-applies
	// must not make the facts say otherwise while they run.
	g.Expect(node.Services.Stop(ctx, "csi-proxy")).To(Succeed())
	hold.Arm(true)
	actx2, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	ran := make(chan error, 1)
	go func() {
		_, err := sess.Run(actx2, []string{wicdapi.AgentPath, "apply", "--plan", wicdapi.PlanPath})
		ran <- err
	}()
	g.Eventually(hold.Held()).WithTimeout(agentServiceWait).Should(Receive())
	g.Expect(facts(g).ApplyError).To(BeNil(), "while the same plan is applied again")
	cancel2()
	g.Eventually(ran).WithTimeout(agentServiceWait).Should(Receive(MatchError(context.Canceled)))
	g.Expect(runJSON(ctx, g, sess, &pruned, wicdapi.PruneArg)).To(Equal(0))
	g.Expect(facts(g).ApplyError).To(BeNil())
}

// agentServiceWait bounds waits for the agent service's re-apply: it runs
// every AgentRunInterval, but a re-apply restarts services, and under
// -race on 2 busy cores one took longer than gomega's default 1 s (a CI
// run of 2026-12-05).
const agentServiceWait = 30 * time.Second

// An apply cut short after it reconfigured a running service for a new
// binary and before it restarted it leaves the host as the plan says (the
// service's configuration, the files) while the service still runs the
// old binary: an apply of the same plan then sees nothing to change. The
// apply that finishes the cut one (here the agent service's re-apply,
// which got there first in the operator's fault matrix) restarts what
// runs, or an upgrade would wait for a kubelet that never restarts.
func TestApplyCutShortBeforeARestartIsFinishedWithTheRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hold := simagent.NewHold()
	node, sess := startHost(t, simagent.Options{
		AgentRunInterval: 100 * time.Millisecond,
		// dep depends on csi-proxy, so it stops first: holding its stop
		// cuts the apply after csi-proxy was reconfigured, before it
		// was stopped.
		StopGates: map[string]func(context.Context) error{"dep.exe": hold.Gate},
	})
	installAgent(ctx, g, node, sess)
	upload(ctx, g, sess, `C:\k\dep.exe`, []byte("MZ dep"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, planWithDep("v1"))
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(node.Services.Running("dep")).To(BeTrue())
	started := node.Services.Starts("csi-proxy")

	upload(ctx, g, sess, payloadPath("v2", "csi-proxy.exe"), []byte("MZ csi-proxy 2"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, planWithDep("v2"))
	applyCutShort(ctx, g, sess, hold, "the apply stops dep before csi-proxy")
	hold.Arm(false)
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started), "the cut apply did not restart csi-proxy")

	g.Eventually(func(g Gomega) {
		f := hostFacts(ctx, g, sess)
		g.Expect(f.AppliedPayloadVersion).To(Equal("v2"))
		g.Expect(f.ApplyError).To(BeNil())
	}).WithTimeout(agentServiceWait).Should(Succeed(), "the agent service's re-apply finishes the plan")
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started+1), "csi-proxy restarted on its new binary")
	g.Expect(node.Services.Running("csi-proxy")).To(BeTrue())
	g.Expect(node.Services.Running("dep")).To(BeTrue())
}

// planWithDep is agentOnlyPlan with a service dep (C:\k\dep.exe) that
// depends on csi-proxy, so that a restart of csi-proxy stops dep first.
func planWithDep(version string) *wicdapi.Plan {
	p := agentOnlyPlan(version)
	p.Services = append(p.Services, wicdapi.Service{Name: "dep", Binary: `C:\k\dep.exe`, Dependencies: []string{"csi-proxy"}})
	return p
}

// An apply that fails after it reconfigured a running service for a new
// binary and before it restarted it (the stop of a dependent fails)
// leaves the host as the plan says while the service runs the old binary:
// the next apply of the same plan restarts it, or the new binary would
// not run until the host reboots. What a failed apply did restart is not
// restarted again, however often its failure repeats.
func TestApplyFailedBeforeARestartIsFinishedWithTheRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	var failStop atomic.Bool
	node, sess := startHost(t, simagent.Options{
		AgentRunInterval: time.Hour,
		StopGates: map[string]func(context.Context) error{"dep.exe": func(context.Context) error {
			if failStop.Load() {
				return errors.New("the service did not stop in time")
			}
			return nil
		}},
	})
	installAgent(ctx, g, node, sess)
	upload(ctx, g, sess, `C:\k\dep.exe`, []byte("MZ dep"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, planWithDep("v1"))
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	started := node.Services.Starts("csi-proxy")
	restarted := wicdapi.Change{Kind: "service", Name: "csi-proxy", Action: "restarted"}

	upload(ctx, g, sess, payloadPath("v2", "csi-proxy.exe"), []byte("MZ csi-proxy 2"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, planWithDep("v2"))
	failStop.Store(true)
	e := agentError(ctx, g, sess, "apply")
	g.Expect(e.Code).To(Equal(wicdapi.CodeServiceFailed))
	g.Expect(e.Message).To(ContainSubstring("stop service dep"))
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started), "the failed apply did not restart csi-proxy")

	failStop.Store(false)
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(applied.Changes).To(ContainElement(restarted))
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started+1), "csi-proxy restarted on its new binary")
	g.Expect(node.Services.Running("dep")).To(BeTrue())
	g.Expect(hostFacts(ctx, g, sess).ApplyError).To(BeNil())
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(applied.Changed).To(BeFalse(), "finished, the plan has nothing left to restart")

	// The next upgrade restarts csi-proxy and fails to start dep again:
	// the applies that retry it restart csi-proxy no more.
	upload(ctx, g, sess, payloadPath("v3", "csi-proxy.exe"), []byte("MZ csi-proxy 3"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, planWithDep("v3"))
	node.Services.FailStart("dep", errors.New("the service did not start"))
	g.Expect(agentError(ctx, g, sess, "apply").Message).To(ContainSubstring("start service dep"))
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started + 2))
	g.Expect(agentError(ctx, g, sess, "apply").Message).To(ContainSubstring("start service dep"))
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started+2), "the retry only starts dep")
	node.Services.FailStart("dep", nil)
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(applied.Changes).To(Equal([]wicdapi.Change{{Kind: "service", Name: "dep", Action: "started"}}))
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started + 2))
}

// A re-apply of the plan in place that puts back a running service's
// configuration (changed by hand) and is cut short before it restarts the
// service leaves the configuration as the plan says while the service
// runs with the changed one: the next apply restarts it.
func TestDriftCorrectionCutShortBeforeARestartIsFinishedWithTheRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hold := simagent.NewHold()
	node, sess := startHost(t, simagent.Options{
		AgentRunInterval: time.Hour,
		StopGates:        map[string]func(context.Context) error{"dep.exe": hold.Gate},
	})
	installAgent(ctx, g, node, sess)
	upload(ctx, g, sess, `C:\k\dep.exe`, []byte("MZ dep"))
	plan := planWithDep("v1")
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, plan)
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	started := node.Services.Starts("csi-proxy")

	changed := plan.Services[1]
	g.Expect(changed.Name).To(Equal("csi-proxy"))
	changed.Args = []string{"-windows-service", "-v=5"}
	g.Expect(node.Services.Update(ctx, changed)).To(Succeed())
	applyCutShort(ctx, g, sess, hold, "the re-apply stops dep before csi-proxy")
	hold.Arm(false)
	st, err := node.Services.Query(ctx, "csi-proxy")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Config.Args).To(Equal(plan.Services[1].Args), "the cut re-apply put the configuration back")
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started), "and did not restart csi-proxy")

	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "service", Name: "csi-proxy", Action: "restarted"}))
	g.Expect(node.Services.Starts("csi-proxy")).To(Equal(started + 1))
	g.Expect(node.Services.Running("dep")).To(BeTrue())
}

// An apply of a plan that drops a service removes it; cut short before it
// did, the plan is already the applied one, and what follows must still
// remove the service: the next apply of the same plan (the agent
// service's re-apply), an apply of yet another plan, or cleanup. Without
// a record of the replaced plan the first two compared the plan with
// itself or with the cut one, and the service stayed for good.
func TestApplyCutShortBeforeARemovalIsFinishedWithTheRemoval(t *testing.T) {
	for _, next := range []string{"the same plan", "another plan", "cleanup"} {
		t.Run(next, func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			hold := simagent.NewHold()
			node, sess := startHost(t, simagent.Options{
				// Only the test's applies touch the plan.
				AgentRunInterval: time.Hour,
				StopGates:        map[string]func(context.Context) error{"old.exe": hold.Gate},
			})
			installAgent(ctx, g, node, sess)
			withOld := agentOnlyPlan("v1")
			withOld.Services = append(withOld.Services, wicdapi.Service{Name: "old", Binary: `C:\k\old.exe`})
			upload(ctx, g, sess, `C:\k\old.exe`, []byte("MZ old"))
			uploadJSON(ctx, g, sess, wicdapi.PlanPath, withOld)
			var applied wicdapi.ApplyResult
			run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
			g.Expect(node.Services.Running("old")).To(BeTrue())
			installed := func() bool {
				_, err := node.Services.Query(ctx, "old")
				return !errors.Is(err, wicd.ErrServiceNotFound)
			}

			upload(ctx, g, sess, payloadPath("v2", "csi-proxy.exe"), []byte("MZ csi-proxy 2"))
			uploadJSON(ctx, g, sess, wicdapi.PlanPath, agentOnlyPlan("v2"))
			applyCutShort(ctx, g, sess, hold, "the apply stops old")
			hold.Arm(false)
			g.Expect(installed()).To(BeTrue(), "the cut apply did not remove old")

			switch next {
			case "the same plan":
				run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
			case "another plan":
				upload(ctx, g, sess, payloadPath("v3", "csi-proxy.exe"), []byte("MZ csi-proxy 3"))
				uploadJSON(ctx, g, sess, wicdapi.PlanPath, agentOnlyPlan("v3"))
				run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
			case "cleanup":
				var cleaned wicdapi.CleanupResult
				run(ctx, g, sess, &cleaned, "cleanup")
				g.Expect(cleaned.Changes).To(ContainElement(wicdapi.Change{Kind: "service", Name: "old", Action: "removed"}))
				g.Expect(installed()).To(BeFalse())
				return
			}
			g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "service", Name: "old", Action: "removed"}))
			g.Expect(installed()).To(BeFalse())
			g.Expect(hostFacts(ctx, g, sess).ApplyError).To(BeNil())
			g.Expect(node.Host.Disk().Stat(wicdapi.ApplyLeftoversPath)).Error().To(MatchError(fs.ErrNotExist), "a finished apply forgets the replaced plans")

			// The record is gone: a later apply of the same plan changes nothing.
			run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
			g.Expect(applied.Changes).To(BeEmpty())
		})
	}
}

// A service restarted for a new binary has its running dependents stopped
// first. One that was down when the apply looked (crashing, its restart
// pending in the service manager's recovery) may be running again by the
// time its dependency stops, and the service manager refuses that stop:
// the apply stops it too and carries on. The race tier's rollback test
// failed so ("stop containerd (kubelet depends on it)"); here crashy is
// that kubelet.
func TestRestartStopsADependentRecoveredMeanwhile(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	var node *simagent.Node
	var recovered sync.Once
	// dep stops before csi-proxy; while it does, the service manager's
	// recovery brings crashy back.
	recovery := func(ctx context.Context) error {
		var err error
		recovered.Do(func() { err = node.Services.Start(ctx, "crashy") })
		return err
	}
	node, sess := startHost(t, simagent.Options{AgentRunInterval: time.Hour, StopGates: map[string]func(context.Context) error{"dep.exe": recovery}})
	installAgent(ctx, g, node, sess)
	withDependents := func(version string) *wicdapi.Plan {
		p := agentOnlyPlan(version)
		p.Services = append(p.Services,
			wicdapi.Service{Name: "crashy", Binary: `C:\k\crashy.exe`, Dependencies: []string{"csi-proxy"}},
			wicdapi.Service{Name: "dep", Binary: `C:\k\dep.exe`, Dependencies: []string{"csi-proxy"}})
		return p
	}
	upload(ctx, g, sess, `C:\k\crashy.exe`, []byte("MZ crashy"))
	upload(ctx, g, sess, `C:\k\dep.exe`, []byte("MZ dep"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, withDependents("v1"))
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(node.Services.Stop(ctx, "crashy")).To(Succeed(), "crashy is down")

	upload(ctx, g, sess, payloadPath("v2", "csi-proxy.exe"), []byte("MZ csi-proxy 2"))
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, withDependents("v2"))
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "service", Name: "csi-proxy", Action: "restarted"}))
	for _, name := range []string{"csi-proxy", "crashy", "dep"} {
		g.Expect(node.Services.Running(name)).To(BeTrue(), name)
	}
}

// The files stage and apply copy are hashed from the bytes they wrote, and
// facts take those hashes from the hash cache rather than read each copy
// again; a copy that changes afterwards (a new modification time) is
// hashed anew.
func TestStagedAndAppliedCopiesAreNotHashedAgainByFacts(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	kubelet, shim := randomBytes("kubelet", 256<<10), randomBytes("shim", 64<<10)
	upload(ctx, g, sess, payloadPath("v1", "kubelet.exe"), kubelet)
	upload(ctx, g, sess, payloadPath("v1", "shim.exe"), shim)

	uploadJSON(ctx, g, sess, wicdapi.StagePlanPath, wicdapi.StagePlan{Copies: []wicdapi.StageCopy{
		{From: payloadPath("v1", "kubelet.exe"), To: payloadPath("v2", "kubelet.exe"), SHA256: sha256Hex(kubelet)},
	}})
	var staged wicdapi.StageResult
	g.Expect(runJSON(ctx, g, sess, &staged, wicdapi.StageArg)).To(Equal(0))
	g.Expect(staged.Copied).To(Equal(1))
	const shimCopy = `C:\k\shim\shim.exe`
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, &wicdapi.Plan{
		SchemaVersion: wicdapi.SchemaVersion, PayloadVersion: "v1", NodeName: "win-copies",
		Copies: []wicdapi.Copy{{From: payloadPath("v1", "shim.exe"), To: shimCopy}},
	})
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply")
	g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "file", Name: shimCopy, Action: "created"}))

	// Other bytes of the same size under the same modification time: only
	// a facts that did not read the file reports the bytes written.
	copies := map[string][]byte{payloadPath("v2", "kubelet.exe"): kubelet, shimCopy: shim}
	modTimes := map[string]time.Time{}
	for p, data := range copies {
		info, err := disk.Stat(p)
		g.Expect(err).NotTo(HaveOccurred())
		modTimes[p] = info.ModTime()
		g.Expect(disk.WriteFile(p, randomBytes("other "+p, len(data)))).To(Succeed())
		g.Expect(disk.SetModTime(p, info.ModTime())).To(Succeed())
	}
	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	for p, data := range copies {
		g.Expect(facts.Files).To(HaveKeyWithValue(p, sha256Hex(data)), "%s: the hash recorded when it was written", p)
	}

	for p, data := range copies {
		g.Expect(disk.SetModTime(p, modTimes[p].Add(time.Second))).To(Succeed())
		g.Expect(sha256Hex(data)).NotTo(Equal(sha256Hex(randomBytes("other "+p, len(data)))))
	}
	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	for p, data := range copies {
		g.Expect(facts.Files).To(HaveKeyWithValue(p, sha256Hex(randomBytes("other "+p, len(data)))), "%s changed: hashed again", p)
	}
}

// `wicd hash` records a payload-sized file in the hash cache, so that facts
// need not read it again once it is renamed into place, but not a file of
// a few KiB (the plans the operator uploads): hashing those again costs
// less than waiting for the host lock `wicd run` holds.
func TestHashRecordsOnlyFilesWorthRemembering(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	small, large := randomBytes("small", 4<<10), randomBytes("large", 1<<20)
	smallPath, largePath := payloadPath("v1", "small.json.wmco-upload"), payloadPath("v1", "large.exe.wmco-upload")
	g.Expect(disk.WriteFile(smallPath, small)).To(Succeed())
	g.Expect(disk.WriteFile(largePath, large)).To(Succeed())

	for p, data := range map[string][]byte{smallPath: small, largePath: large} {
		var res wicdapi.HashResult
		run(ctx, g, sess, &res, "hash", p)
		g.Expect(res.SHA256).To(Equal(sha256Hex(data)), p)
		g.Expect(res.Size).To(Equal(int64(len(data))), p)
	}
	cache, err := disk.ReadFile(wicdapi.InstallRoot + `\.wicd-hashes.json`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.ToLower(string(cache))).To(ContainSubstring(sha256Hex(large)), "the large file is recorded")
	g.Expect(strings.ToLower(string(cache))).NotTo(ContainSubstring(sha256Hex(small)), "the small file is not")
}

// An apply records the hash of the uploaded file it copied from as well
// as of the copy: the next apply (`wicd run` re-applies the plan every
// few seconds) compares the two by their recorded hashes and reads
// neither. Other bytes of the same size under the same modification
// time in the source show whether it was read.
func TestApplyDoesNotReadAnUnchangedCopyAgain(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	shim := randomBytes("shim", 256<<10)
	from, to := payloadPath("v1", "shim.exe"), `C:\k\shim\shim.exe`
	upload(ctx, g, sess, from, shim)
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, &wicdapi.Plan{
		SchemaVersion: wicdapi.SchemaVersion, PayloadVersion: "v1", NodeName: "win-copies",
		Copies: []wicdapi.Copy{{From: from, To: to}},
	})
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply")
	g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "file", Name: to, Action: "created"}))

	info, err := disk.Stat(from)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(disk.WriteFile(from, randomBytes("other", len(shim)))).To(Succeed())
	g.Expect(disk.SetModTime(from, info.ModTime())).To(Succeed())
	applied = wicdapi.ApplyResult{}
	run(ctx, g, sess, &applied, "apply")
	g.Expect(applied.Changes).NotTo(ContainElement(HaveField("Name", to)), "the copy was compared by recorded hashes, not read")
	data, err := disk.ReadFile(to)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sha256Hex(data)).To(Equal(sha256Hex(shim)))

	// A new modification time: the source is read, and copied.
	g.Expect(disk.SetModTime(from, info.ModTime().Add(time.Second))).To(Succeed())
	applied = wicdapi.ApplyResult{}
	run(ctx, g, sess, &applied, "apply")
	g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "file", Name: to, Action: "updated"}))
}

// An administrator disables one of the agent's firewall rules: it is still
// there, but lets nothing in. The next apply (the agent service's
// re-apply) enables it again, and cleanup removes it disabled or not.
func TestApplyEnablesADisabledFirewallRule(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{AgentRunInterval: time.Hour})
	installAgent(ctx, g, node, sess)
	plan := agentOnlyPlan("v1")
	plan.FirewallRules = []wicdapi.FirewallRule{{Name: wicdapi.FirewallRuleKubelet, Protocol: "TCP", Port: wicdapi.KubeletPort}}
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, plan)
	var res wicdapi.ApplyResult
	run(ctx, g, sess, &res, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(node.FirewallRuleEnabled(wicdapi.FirewallRuleKubelet)).To(BeTrue())

	g.Expect(node.DisableFirewallRule(wicdapi.FirewallRuleKubelet)).To(Succeed())
	// Preflight does not count it as in place.
	var checked wicdapi.PreflightResult
	run(ctx, g, sess, &checked, "preflight")
	g.Expect(checked.Checks).To(ContainElement(And(
		HaveField("Name", wicdapi.CheckFirewall), HaveField("Passed", true),
		HaveField("Message", "no rules in place; disabled, so letting nothing in (apply enables them): "+wicdapi.FirewallRuleKubelet+
			"; apply creates: "+wicdapi.FirewallRuleWindowsExporter))))
	run(ctx, g, sess, &res, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(res.Changes).To(Equal([]wicdapi.Change{{Kind: "firewallRule", Name: wicdapi.FirewallRuleKubelet, Action: "updated"}}))
	g.Expect(node.FirewallRuleEnabled(wicdapi.FirewallRuleKubelet)).To(BeTrue())
	run(ctx, g, sess, &res, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(res.Changed).To(BeFalse())

	g.Expect(node.DisableFirewallRule(wicdapi.FirewallRuleKubelet)).To(Succeed())
	var cleaned wicdapi.CleanupResult
	run(ctx, g, sess, &cleaned, "cleanup")
	g.Expect(cleaned.Changes).To(ContainElement(wicdapi.Change{Kind: "firewallRule", Name: wicdapi.FirewallRuleKubelet, Action: "removed"}))
	g.Expect(node.FirewallRules()).To(BeEmpty())
}
