package simagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"sync"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// startHost starts a node host and an operator-like SSH session to it.
func startHost(t *testing.T, opts simagent.Options) (*simagent.Node, remote.Session) {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	h, err := winsim.Start(context.Background(), winsim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	node, err := simagent.Install(h, opts)
	g.Expect(err).NotTo(HaveOccurred())
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	sshPub, err := ssh.NewPublicKey(pub)
	g.Expect(err).NotTo(HaveOccurred())
	h.AuthorizeKey("Administrator", sshPub)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	g.Expect(err).NotTo(HaveOccurred())
	sess, err := (&remote.SSHDialer{}).Dial(ctx, remote.Target{
		Address: h.IP(), Port: h.Port(), Username: "Administrator",
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), TrustOnFirstUse: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = sess.Close() })
	return node, sess
}

// agentOnlyPlan installs the agent service and one payload service.
func agentOnlyPlan(version string) *wicdapi.Plan {
	return &wicdapi.Plan{
		SchemaVersion: wicdapi.SchemaVersion, PayloadVersion: version, NodeName: "win-upgrade",
		Services: []wicdapi.Service{
			{Name: wicdapi.AgentServiceName, Binary: wicdapi.AgentPath, Args: []string{"run"}},
			{Name: "csi-proxy", Binary: `C:\k\payload\` + version + `\csi-proxy.exe`, Args: []string{"-windows-service"}},
		},
		Networks: []string{simagent.HybridOverlayNetwork, simagent.BaseHybridOverlayNetwork},
	}
}

// installAgent puts agent v1 on the host and applies agentOnlyPlan("v1")
// through it, as the operator would; the agent service then runs v1.
func installAgent(ctx context.Context, g Gomega, node *simagent.Node, sess remote.Session) {
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	upload(ctx, g, sess, `C:\k\payload\v1\csi-proxy.exe`, []byte("MZ csi-proxy"))
	plan, err := json.Marshal(agentOnlyPlan("v1"))
	g.Expect(err).NotTo(HaveOccurred())
	upload(ctx, g, sess, wicdapi.PlanPath, plan)
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Eventually(node.AgentServiceVersion).Should(Equal("v1"))
}

// runAgent runs argv over SSH and returns stdout and the exit code.
func runAgent(ctx context.Context, g Gomega, s remote.Session, argv ...string) ([]byte, int) {
	res, err := s.Run(ctx, argv)
	g.Expect(err).NotTo(HaveOccurred())
	return res.Stdout, res.ExitCode
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestAgentUpgradeWhileItsServiceRuns(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()

	installAgent(ctx, g, node, sess)

	// The old way: upload over the running agent. Windows refuses to
	// replace a running executable, and so does the simulator.
	v2 := simagent.AgentImage("v2")
	err := sess.Upload(ctx, wicdapi.AgentPath, bytes.NewReader(v2), int64(len(v2)), sha256Hex(v2))
	g.Expect(err).To(MatchError(ContainSubstring("Access is denied")))
	g.Expect(disk.ReadFile(wicdapi.AgentPath)).To(Equal(simagent.AgentImage("v1")))
	g.Expect(node.AgentServiceVersion()).To(Equal("v1"))

	// The protocol: upload to the staging path, run it with self-upgrade.
	upload(ctx, g, sess, wicdapi.AgentStagingPath, v2)
	out, code := runAgent(ctx, g, sess, wicdapi.AgentStagingPath, wicdapi.SelfUpgradeArg)
	g.Expect(code).To(Equal(0), string(out))
	var res wicdapi.SelfUpgradeResult
	g.Expect(json.Unmarshal(out, &res)).To(Succeed())
	g.Expect(res).To(Equal(wicdapi.SelfUpgradeResult{Changed: true, From: "v1", To: "v2", ServiceRestarted: true}))
	g.Expect(node.AgentServiceVersion()).To(Equal("v2"), "the service runs the new agent")
	g.Expect(node.Services.Running(wicdapi.AgentServiceName)).To(BeTrue())
	g.Expect(disk.ReadFile(wicdapi.AgentPath)).To(Equal(v2))
	g.Expect(disk.ReadFile(wicdapi.AgentPreviousPath)).To(Equal(simagent.AgentImage("v1")))
	var ver wicdapi.Version
	run(ctx, g, sess, &ver, "version")
	g.Expect(ver.Version).To(Equal("v2"))

	// Again: nothing to do.
	out, code = runAgent(ctx, g, sess, wicdapi.AgentStagingPath, wicdapi.SelfUpgradeArg)
	g.Expect(code).To(Equal(0), string(out))
	g.Expect(json.Unmarshal(out, &res)).To(Succeed())
	g.Expect(res.Changed).To(BeFalse())

	// Only from the staging path.
	out, code = runAgent(ctx, g, sess, wicdapi.AgentPath, wicdapi.SelfUpgradeArg)
	g.Expect(code).To(Equal(2), string(out))
}

func TestAgentUpgradeWaitsForTheOldProcessAndRollsBack(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	installAgent(ctx, g, node, sess)

	// The stopped service's process lingers, holding the old binary.
	lingering, err := node.Host.StartProcess("wicd.exe", wicdapi.AgentPath)
	g.Expect(err).NotTo(HaveOccurred())
	upload(ctx, g, sess, wicdapi.AgentStagingPath, simagent.AgentImage("v2"))
	b := *node.Backend()
	b.Executable, b.Version = wicdapi.AgentStagingPath, "v2"
	progress := &syncBuffer{}
	done := make(chan error, 1)
	var res *wicdapi.SelfUpgradeResult
	go func() {
		var err error
		res, err = wicd.SelfUpgrade(ctx, &b, wicd.SelfUpgradeOptions{Progress: progress})
		done <- err
	}()
	g.Eventually(progress.String).WithTimeout(agentServiceWait).Should(ContainSubstring(`waiting for C:\k\wicd.exe: ` + lingering.Name()))
	g.Consistently(done).ShouldNot(Receive(), "the agent is not replaced while a process holds it")
	lingering.Exit()
	g.Eventually(done).WithTimeout(agentServiceWait).Should(Receive(BeNil()))
	g.Expect(res.Waited).To(Equal([]wicdapi.HeldFile{{Path: wicdapi.AgentPath, Holders: []string{lingering.Name()}}}))
	g.Eventually(node.AgentServiceVersion).Should(Equal("v2"))

	// A new agent whose service does not start is rolled back.
	upload(ctx, g, sess, wicdapi.AgentStagingPath, simagent.AgentImage("v3"))
	node.Services.FailStart(wicdapi.AgentServiceName, errors.New("the service did not start"))
	out, code := runAgent(ctx, g, sess, wicdapi.AgentStagingPath, wicdapi.SelfUpgradeArg)
	g.Expect(code).To(Equal(1))
	var eo wicdapi.ErrorOutput
	g.Expect(json.Unmarshal(out, &eo)).To(Succeed())
	g.Expect(eo.Error.Code).To(Equal(wicdapi.CodeUpgradeFailed), eo.Error.Message)
	g.Expect(disk.ReadFile(wicdapi.AgentPath)).To(Equal(simagent.AgentImage("v2")), "the previous agent is back")
	node.Services.FailStart(wicdapi.AgentServiceName, nil)
}

// selfUpgrade runs the staged agent's self-upgrade, expects it to succeed
// and returns its result.
func selfUpgrade(ctx context.Context, g Gomega, sess remote.Session) wicdapi.SelfUpgradeResult {
	out, code := runAgent(ctx, g, sess, wicdapi.AgentStagingPath, wicdapi.SelfUpgradeArg)
	g.Expect(code).To(Equal(0), string(out))
	var res wicdapi.SelfUpgradeResult
	g.Expect(json.Unmarshal(out, &res)).To(Succeed())
	return res
}

// An upgrade killed after it stopped the agent service leaves the service
// stopped, before or after it replaced the agent: the self-upgrade the
// operator runs again starts the service, also when it finds the new
// agent in place and has nothing to replace.
func TestAgentUpgradeRunAgainStartsTheServiceAKilledOneStopped(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	installAgent(ctx, g, node, sess)
	upload(ctx, g, sess, wicdapi.AgentStagingPath, simagent.AgentImage("v2"))

	// Killed before it replaced the agent.
	g.Expect(node.Services.Stop(ctx, wicdapi.AgentServiceName)).To(Succeed())
	g.Expect(selfUpgrade(ctx, g, sess)).To(Equal(wicdapi.SelfUpgradeResult{Changed: true, From: "v1", To: "v2", ServiceRestarted: true}))
	g.Eventually(node.AgentServiceVersion).Should(Equal("v2"))

	// Killed after it replaced the agent.
	g.Expect(node.Services.Stop(ctx, wicdapi.AgentServiceName)).To(Succeed())
	g.Expect(selfUpgrade(ctx, g, sess)).To(Equal(wicdapi.SelfUpgradeResult{From: "v2", To: "v2", ServiceRestarted: true}))
	g.Eventually(node.AgentServiceVersion).Should(Equal("v2"))

	g.Expect(selfUpgrade(ctx, g, sess)).To(Equal(wicdapi.SelfUpgradeResult{From: "v2", To: "v2"}), "nothing left to do")
}

// The operator's connection closes while the new agent's service starts:
// the upgrade, whose context ended with the connection, still puts the
// previous agent back and starts its service.
func TestAgentUpgradeCutShortRollsBackAndStartsTheService(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	// The agent service's start after holdNext is set stays pending
	// until its caller's context ends. Every start is pending for a
	// moment: a caller whose context has ended does not see it run.
	var holdNext atomic.Bool
	held := make(chan struct{}, 1)
	gate := func(ctx context.Context) error {
		if holdNext.CompareAndSwap(true, false) {
			held <- struct{}{}
			<-ctx.Done()
		}
		return ctx.Err()
	}
	node, sess := startHost(t, simagent.Options{StartGates: map[string]func(context.Context) error{"wicd.exe": gate}})
	disk := node.Host.Disk()
	installAgent(ctx, g, node, sess)
	upload(ctx, g, sess, wicdapi.AgentStagingPath, simagent.AgentImage("v2"))

	holdNext.Store(true)
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		_, err := sess.Run(uctx, []string{wicdapi.AgentStagingPath, wicdapi.SelfUpgradeArg})
		ran <- err
	}()
	g.Eventually(held).WithTimeout(agentServiceWait).Should(Receive(), "the new agent's service starts")
	cancel()
	g.Eventually(ran).Should(Receive(MatchError(context.Canceled)))
	g.Eventually(node.AgentServiceVersion).WithTimeout(agentServiceWait).Should(Equal("v1"), "the previous agent's service runs")
	g.Expect(disk.ReadFile(wicdapi.AgentPath)).To(Equal(simagent.AgentImage("v1")))
}

// A DaemonSet pod's container survives the drain and holds a payload file:
// cleanup waits for it, says who holds it, and finishes once it exits.
func TestCleanupWaitsForProcessesHoldingPayloadFiles(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	upload(ctx, g, sess, `C:\k\payload\v1\pause.exe`, []byte("MZ pause"))
	installAgent(ctx, g, node, sess)
	pod, err := node.Host.StartProcess("pause.exe", `C:\k\payload\v1\pause.exe`)
	g.Expect(err).NotTo(HaveOccurred())

	// A short wait: cleanup fails naming the file and its holder, which
	// the operator reports as a condition and retries.
	out, code := runAgent(ctx, g, sess, wicdapi.AgentPath, "cleanup", "--file-wait=300ms")
	g.Expect(code).To(Equal(1), string(out))
	var eo wicdapi.ErrorOutput
	g.Expect(json.Unmarshal(out, &eo)).To(Succeed())
	g.Expect(eo.Error.Code).To(Equal(wicdapi.CodeFileInUse))
	g.Expect(eo.Error.Message).To(ContainSubstring(pod.Name()))
	g.Expect(eo.Error.Files).To(Equal([]wicdapi.HeldFile{{Path: wicdapi.PayloadRoot, Holders: []string{pod.Name()}}}))
	g.Expect(node.Services.Running("csi-proxy")).To(BeFalse(), "services are gone before files")

	// A long wait: cleanup finishes once the pod's process exits.
	progress := &syncBuffer{}
	done := make(chan error, 1)
	var res *wicdapi.CleanupResult
	go func() {
		var err error
		res, err = wicd.Cleanup(ctx, node.Backend(), wicd.CleanupOptions{Progress: progress})
		done <- err
	}()
	g.Eventually(progress.String).WithTimeout(agentServiceWait).Should(ContainSubstring(`waiting for C:\k\payload: ` + pod.Name()))
	g.Consistently(done).ShouldNot(Receive())
	pod.Exit()
	g.Eventually(done).WithTimeout(agentServiceWait).Should(Receive(BeNil()))
	g.Expect(res.Waited).To(Equal([]wicdapi.HeldFile{{Path: wicdapi.PayloadRoot, Holders: []string{pod.Name()}}}))
	_, err = disk.Stat(wicdapi.PayloadRoot)
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	names, err := node.Services.List(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(names).To(BeEmpty())
}

// A cleanup that fails at the HNS networks (the Host Network Service does
// not answer) has removed everything else: run again, it still finds the
// plan that names the networks, removes them, and only then the plan.
func TestCleanupRetriedAfterANetworkFailedRemovesTheNetworks(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	installAgent(ctx, g, node, sess)
	overlay := payloadPath("v1", "hybrid-overlay-node.exe")
	upload(ctx, g, sess, overlay, []byte("MZ hybrid-overlay-node"))
	plan := agentOnlyPlan("v1")
	plan.Services = append(plan.Services, wicdapi.Service{Name: "hybrid-overlay-node", Binary: overlay, Args: []string{"--windows-service"}})
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, plan)
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Eventually(node.Networks).Should(ConsistOf(simagent.HybridOverlayNetwork, simagent.BaseHybridOverlayNetwork))

	node.FailNetworkDelete(errors.New("the RPC server is unavailable"))
	e := agentError(ctx, g, sess, "cleanup")
	g.Expect(e.Code).To(Equal(wicdapi.CodeNetwork), e.Message)
	g.Expect(node.Networks()).To(HaveLen(2))
	g.Expect(node.Services.List(ctx)).To(BeEmpty(), "the services went before the networks")
	_, err := disk.Stat(wicdapi.PayloadRoot)
	g.Expect(err).To(MatchError(fs.ErrNotExist), "and the files")

	node.FailNetworkDelete(nil)
	var cleaned wicdapi.CleanupResult
	run(ctx, g, sess, &cleaned, "cleanup")
	g.Expect(cleaned.Reconnect).To(BeTrue())
	g.Expect(cleaned.Changes).To(ConsistOf(
		wicdapi.Change{Kind: "network", Name: simagent.HybridOverlayNetwork, Action: "removed"},
		wicdapi.Change{Kind: "network", Name: simagent.BaseHybridOverlayNetwork, Action: "removed"},
		wicdapi.Change{Kind: "file", Name: wicdapi.AppliedPlanPath, Action: "removed"},
		wicdapi.Change{Kind: "file", Name: wicdapi.PlanPath, Action: "removed"},
	))
	g.Expect(node.Networks()).To(BeEmpty())
	run(ctx, g, sess, &cleaned, "cleanup")
	g.Expect(cleaned.Changes).To(BeEmpty(), "the host is clean")
}

// The runhcs shim runs outside the versioned payload directories: a pod's
// shim keeps running its copy, apply renames the copy aside to install a
// new one, and removes the old copy once the shim has exited.
func TestShimCopyOutlivesPayloadVersions(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{DefenderPresent: true})
	disk := node.Host.Disk()
	const shim = `C:\k\containerd\containerd-shim-runhcs-v1.exe`
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	apply := func(version string) wicdapi.ApplyResult {
		if _, err := disk.Stat(`C:\k\payload\` + version); err != nil { // running images cannot be uploaded again
			upload(ctx, g, sess, `C:\k\payload\`+version+`\csi-proxy.exe`, []byte("MZ csi-proxy"))
			upload(ctx, g, sess, `C:\k\payload\`+version+`\containerd-shim-runhcs-v1.exe`, []byte("MZ shim "+version))
		}
		p := agentOnlyPlan(version)
		p.Copies = []wicdapi.Copy{{From: `C:\k\payload\` + version + `\containerd-shim-runhcs-v1.exe`, To: shim}}
		p.FirewallRules = []wicdapi.FirewallRule{{Name: wicdapi.FirewallRuleKubelet, Protocol: "TCP", Port: 10250}}
		p.DefenderExclusions = []string{`C:\ProgramData\containerd\root`}
		data, err := json.Marshal(p)
		g.Expect(err).NotTo(HaveOccurred())
		upload(ctx, g, sess, wicdapi.PlanPath, data)
		var res wicdapi.ApplyResult
		run(ctx, g, sess, &res, "apply", "--plan", wicdapi.PlanPath)
		return res
	}
	res := apply("v1")
	g.Expect(res.Changes).To(ContainElements(
		wicdapi.Change{Kind: "file", Name: shim, Action: "created"},
		wicdapi.Change{Kind: "firewallRule", Name: wicdapi.FirewallRuleKubelet, Action: "created"},
		wicdapi.Change{Kind: "defenderExclusion", Name: `C:\ProgramData\containerd\root`, Action: "created"},
	))
	g.Expect(apply("v1").Changed).To(BeFalse(), "re-applying changes nothing")
	g.Expect(node.FirewallRules()).To(HaveLen(1))
	g.Expect(node.DefenderExclusions()).To(Equal([]string{`C:\ProgramData\containerd\root`}))

	pod, err := node.Host.StartProcess("containerd-shim-runhcs-v1.exe", shim)
	g.Expect(err).NotTo(HaveOccurred())
	res = apply("v2")
	g.Expect(res.Changes).To(ContainElement(wicdapi.Change{Kind: "file", Name: shim, Action: "updated"}))
	g.Expect(disk.ReadFile(shim)).To(Equal([]byte("MZ shim v2")))
	entries, err := disk.List(`C:\k\containerd`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(2), "the running copy was renamed aside")
	pod.Exit()
	apply("v2")
	entries, err = disk.List(`C:\k\containerd`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(1), "the old copy is gone once no shim runs it")

	// Nothing holds the payload: cleanup needs no wait, and removes
	// the rules and both networks.
	var cleaned wicdapi.CleanupResult
	run(ctx, g, sess, &cleaned, "cleanup")
	g.Expect(cleaned.Waited).To(BeEmpty())
	g.Expect(cleaned.Changes).To(ContainElement(wicdapi.Change{Kind: "firewallRule", Name: wicdapi.FirewallRuleKubelet, Action: "removed"}))
	g.Expect(node.FirewallRules()).To(BeEmpty())
}

// One file the agent cannot read (a process opened it exclusively) is
// reported, not fatal; logs are not hashed at all.
func TestFactsSurviveAnUnreadableFile(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	node, sess := startHost(t, simagent.Options{})
	disk := node.Host.Disk()
	upload(ctx, g, sess, wicdapi.AgentPath, simagent.AgentImage("v1"))
	upload(ctx, g, sess, `C:\k\payload\v1\kubelet.exe`, []byte("MZ kubelet"))
	upload(ctx, g, sess, `C:\k\payload\v1\locked.bin`, []byte("locked"))
	upload(ctx, g, sess, `C:\k\log\kubelet.log`, []byte("log line"))
	release, err := disk.Lock(`C:\k\payload\v1\locked.bin`, "scanner.exe (PID 8)")
	g.Expect(err).NotTo(HaveOccurred())
	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	g.Expect(facts.Files).To(HaveKeyWithValue(`C:\k\payload\v1\kubelet.exe`, sha256Hex([]byte("MZ kubelet"))))
	g.Expect(facts.Files).NotTo(HaveKey(`C:\k\payload\v1\locked.bin`))
	g.Expect(facts.Files).NotTo(HaveKey(`C:\k\log\kubelet.log`), "logs change all the time and are not the operator's")
	g.Expect(facts.FileErrors).To(HaveKeyWithValue(`C:\k\payload\v1\locked.bin`, ContainSubstring("being used by another process")))

	// Unlocked, it is hashed; unchanged files come from the cache.
	release()
	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	g.Expect(facts.Files).To(HaveKeyWithValue(`C:\k\payload\v1\locked.bin`, sha256Hex([]byte("locked"))))
	g.Expect(facts.FileErrors).To(BeEmpty())
	upload(ctx, g, sess, `C:\k\payload\v1\kubelet.exe`, []byte("MZ kubelet 2"))
	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	g.Expect(facts.Files).To(HaveKeyWithValue(`C:\k\payload\v1\kubelet.exe`, sha256Hex([]byte("MZ kubelet 2"))), "a changed file is hashed again")
}
