package simagent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
)

func startNode(t *testing.T, opts Options) *Node {
	t.Helper()
	h, err := winsim.Start(context.Background(), winsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	n, err := Install(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// binSvc is a service of a stand-in binary named name.exe; the programs
// serviceAware knows get the flag that makes them a Windows service.
func binSvc(n *Node, name string, deps ...string) wicdapi.Service {
	bin := `C:\k\payload\v1\` + name + ".exe"
	_ = n.Host.Disk().WriteFile(bin, []byte("MZ fake "+name))
	var args []string
	switch name {
	case "containerd":
		args = []string{"--run-service"}
	case "kubelet", "kube-proxy", "hybrid-overlay-node":
		args = []string{"--windows-service"}
	case "csi-proxy":
		args = []string{"-windows-service"}
	}
	return wicdapi.Service{Name: name, Binary: bin, Args: args, Dependencies: deps, StartType: wicdapi.StartAutomatic}
}

func TestServiceManagerBehavesLikeWindows(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	n := startNode(t, Options{})
	m := n.Services
	for _, s := range []wicdapi.Service{binSvc(n, "containerd"), binSvc(n, "kubelet-like", "containerd")} {
		g.Expect(m.Create(ctx, s)).To(Succeed())
	}
	g.Expect(m.Create(ctx, binSvc(n, "containerd"))).To(MatchError(ErrAlreadyExists))

	g.Expect(m.Start(ctx, "kubelet-like")).To(Succeed())
	g.Expect(m.Running("containerd")).To(BeTrue(), "dependencies start first")
	g.Expect(m.Stop(ctx, "containerd")).To(MatchError(ErrDependentsRun))
	g.Expect(m.Delete(ctx, "kubelet-like")).To(MatchError(ErrServiceRunning))
	g.Expect(m.Stop(ctx, "kubelet-like")).To(Succeed())
	g.Expect(m.Stop(ctx, "containerd")).To(Succeed())

	_, err := m.Query(ctx, "nope")
	g.Expect(errors.Is(err, wicd.ErrServiceNotFound)).To(BeTrue())

	m.FailStart("containerd", errors.New("boom"))
	g.Expect(m.Start(ctx, "kubelet-like")).To(MatchError(ContainSubstring("boom")))
	g.Expect(m.Running("kubelet-like")).To(BeFalse())
	m.FailStart("containerd", nil)

	g.Expect(n.Host.Disk().Remove(`C:\k\payload\v1\containerd.exe`)).To(Succeed())
	g.Expect(m.Start(ctx, "containerd")).To(MatchError(ErrBinaryNotFound))
}

func TestServicesComeBackAfterReboot(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	n := startNode(t, Options{})
	m := n.Services
	manual := binSvc(n, "manual")
	manual.StartType = wicdapi.StartManual
	for _, s := range []wicdapi.Service{binSvc(n, "a"), binSvc(n, "b", "a"), manual} {
		g.Expect(m.Create(ctx, s)).To(Succeed())
		g.Expect(m.Start(ctx, s.Name)).To(Succeed())
	}
	g.Expect(n.Host.Reboot(ctx, 50*time.Millisecond)).To(Succeed())
	g.Expect(m.Running("a")).To(BeFalse(), "a reboot stops every process")
	g.Expect(m.Running("b")).To(BeFalse())
	g.Expect(n.Host.WaitUp(ctx)).To(Succeed())
	g.Eventually(func() bool { return m.Running("a") && m.Running("b") }).Should(BeTrue(), "automatic services start at boot")
	g.Consistently(func() bool { return m.Running("manual") }).WithTimeout(200 * time.Millisecond).Should(BeFalse())
	g.Expect(m.Starts("a")).To(Equal(2))
}

func TestCrashedServiceRecovers(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	n := startNode(t, Options{RecoveryScale: 0.01})
	crashes := 0
	n.Services.processes["crashy.exe"] = func(ctx context.Context, p ProcessInfo) error {
		crashes++
		if crashes == 1 {
			return errors.New("exit status 1")
		}
		<-ctx.Done()
		return nil
	}
	s := binSvc(n, "crashy")
	s.Recovery = wicdapi.Recovery{RestartDelaySeconds: 5}
	g.Expect(n.Services.Create(ctx, s)).To(Succeed())
	g.Expect(n.Services.Start(ctx, "crashy")).To(Succeed())
	g.Eventually(func() int { return n.Services.Starts("crashy") }).Should(Equal(2), "restarted after the (scaled) recovery delay")
	g.Eventually(func() bool { return n.Services.Running("crashy") }).Should(BeTrue())
}

func TestEnableFeatureNeedsReboot(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	n := startNode(t, Options{ContainersFeatureDisabled: true})
	f, _ := n.system.Features([]string{wicd.FeatureContainers})
	g.Expect(f[wicd.FeatureContainers]).To(BeFalse())
	reboot, err := n.system.EnableFeature(wicd.FeatureContainers)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reboot).To(BeTrue())
	f, _ = n.system.Features([]string{wicd.FeatureContainers})
	g.Expect(f[wicd.FeatureContainers]).To(BeFalse(), "not before the reboot")
	g.Expect(n.Host.Reboot(ctx, 10*time.Millisecond)).To(Succeed())
	g.Expect(n.Host.WaitUp(ctx)).To(Succeed())
	f, _ = n.system.Features([]string{wicd.FeatureContainers})
	g.Expect(f[wicd.FeatureContainers]).To(BeTrue())
}

// A binary whose bytes are known to fail starts and exits at once, as on
// Windows: the start fails with 1067, recovery keeps restarting it (to
// fail again), and another binary at the service's path runs.
func TestFailingBinaryExitsAtOnce(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	broken := []byte("MZ broken kube-proxy")
	sum := sha256.Sum256(broken)
	n := startNode(t, Options{RecoveryScale: 0.01, FailingBinaries: map[string]string{hex.EncodeToString(sum[:]): "panic: boom"}})
	m := n.Services
	runner := binSvc(n, "kube-log-runner")
	g.Expect(n.Host.Disk().WriteFile(`C:\k\payload\v2\kube-proxy.exe`, broken)).To(Succeed())
	g.Expect(n.Host.Disk().MkdirAll(`C:\k\log`)).To(Succeed()) // kube-log-runner opens its log, not its folder
	svc := wicdapi.Service{Name: "kube-proxy", Binary: runner.Binary, Args: []string{`-log-file=C:\k\log\kube-proxy.log`, `C:\k\payload\v2\kube-proxy.exe`, "--windows-service"},
		Recovery: wicdapi.Recovery{RestartDelaySeconds: 5}}
	g.Expect(m.Create(ctx, svc)).To(Succeed())

	err := m.Start(ctx, "kube-proxy")
	g.Expect(err).To(MatchError(ErrProcessAborted))
	g.Expect(err).To(MatchError(ContainSubstring("exit code 1067: The process terminated unexpectedly.")))
	g.Expect(m.Running("kube-proxy")).To(BeFalse())
	g.Expect(m.LastError("kube-proxy")).To(MatchError(ContainSubstring("panic: boom")))
	g.Expect(n.Host.Disk().Holders(`C:\k\payload\v2\kube-proxy.exe`)).To(BeEmpty(), "no process holds the binary")
	g.Eventually(func() int { return m.Starts("kube-proxy") }).Should(BeNumerically(">=", 3), "recovery restarts it, and it fails again")
	g.Expect(m.Running("kube-proxy")).To(BeFalse())

	// Good bytes at the path: the next recovery start runs them.
	g.Expect(n.Host.Disk().WriteFile(`C:\k\payload\v2\kube-proxy.exe`, []byte("MZ good kube-proxy"))).To(Succeed())
	g.Eventually(func() bool { return m.Running("kube-proxy") }).Should(BeTrue())
}

// A start gate holds a start while the process already runs, and its
// error fails the start.
func TestStartGateHoldsTheStart(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	open, refuse := make(chan struct{}), errors.New("not yet")
	fail := false
	n := startNode(t, Options{StartGates: map[string]func(context.Context) error{
		"gated.exe": func(ctx context.Context) error {
			if fail {
				return refuse
			}
			select {
			case <-open:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}})
	m := n.Services
	g.Expect(m.Create(ctx, binSvc(n, "gated"))).To(Succeed())
	started := make(chan error, 1)
	go func() { started <- m.Start(ctx, "gated") }()
	g.Eventually(func() bool { return m.Running("gated") }).Should(BeTrue(), "the process runs while the start is pending")
	g.Consistently(started).ShouldNot(Receive())
	close(open)
	g.Eventually(started).Should(Receive(BeNil()))

	g.Expect(m.Stop(ctx, "gated")).To(Succeed())
	fail = true
	g.Expect(m.Start(ctx, "gated")).To(MatchError(refuse))
}
