package wicd_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
)

// syncBuffer is a log the run loop writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The agent's run loop prunes the kubelet's log folder on a simulated
// host by the plan's maxFiles and maxAgeDays: rotated files beyond the
// newest maxFiles and those older than maxAge go; the log kube-log-runner
// writes (and holds open) stays though it is older than maxAge, and so
// does an old rotated file a process holds, until it is let go.
func TestRunPrunesServiceLogs(t *testing.T) {
	g := NewWithT(t)
	s := startSettingsHost(t)
	in := s.inputs()
	in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{MaxFiles: 3, MaxAgeDays: 2}
	s.apply(g, in)
	// The test runs the loop itself: the agent service's pass at its
	// start would race it.
	g.Expect(s.node.Services.Stop(t.Context(), wicdapi.AgentServiceName)).To(Succeed())
	disk := s.node.Host.Disk()
	dir := nodeconfig.LogDir(nodeconfig.ServiceKubelet)
	current := nodeconfig.LogPath(nodeconfig.ServiceKubelet)
	g.Expect(disk.ReadFile(current)).To(ContainSubstring("Started kubelet-idle.exe (service kubelet)"), "kube-log-runner writes the log")
	g.Expect(disk.Remove(current)).To(MatchError(winsim.ErrSharingViolation), "kube-log-runner holds its log open")

	now := s.node.Backend().System.Now()
	g.Expect(disk.SetModTime(current, now.Add(-30*24*time.Hour))).To(Succeed())
	// Six rotated files an hour apart (kubelet-1 the newest), one of
	// them three days old, and another service's log folder untouched
	// by the kubelet's.
	rotated := func(i int) string { return fmt.Sprintf(`%s\kubelet-%d.log`, dir, i) }
	for i := 1; i <= 6; i++ {
		g.Expect(disk.WriteFile(rotated(i), []byte("old lines\n"))).To(Succeed())
		g.Expect(disk.SetModTime(rotated(i), now.Add(-time.Duration(i)*time.Hour))).To(Succeed())
	}
	old := dir + `\kubelet-old.log`
	g.Expect(disk.WriteFile(old, []byte("older lines\n"))).To(Succeed())
	g.Expect(disk.SetModTime(old, now.Add(-72*time.Hour))).To(Succeed())
	held := dir + `\kubelet-held.log`
	g.Expect(disk.WriteFile(held, []byte("held\n"))).To(Succeed())
	g.Expect(disk.SetModTime(held, now.Add(-96*time.Hour))).To(Succeed())
	release, err := disk.Hold(held, "type.exe")
	g.Expect(err).NotTo(HaveOccurred())
	proxyLog := nodeconfig.LogDir(nodeconfig.ServiceKubeProxy) + `\kube-proxy-1.log`
	g.Expect(disk.WriteFile(proxyLog, []byte("x\n"))).To(Succeed())

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &syncBuffer{}
	go func() { done <- wicd.RunLoop(ctx, s.node.Backend(), 50*time.Millisecond, log) }()
	defer func() {
		cancel()
		g.Expect(<-done).To(Succeed())
	}()

	names := func() []string {
		infos, err := disk.List(dir)
		g.Expect(err).NotTo(HaveOccurred())
		var out []string
		for _, fi := range infos {
			out = append(out, fi.Name())
		}
		slices.Sort(out)
		return out
	}
	g.Eventually(names).WithTimeout(10 * time.Second).Should(Equal([]string{
		"kubelet-1.log", "kubelet-2.log", "kubelet-3.log", "kubelet-held.log", "kubelet.log",
	}))
	g.Consistently(names).WithTimeout(300 * time.Millisecond).Should(ContainElements("kubelet.log", "kubelet-held.log"))
	g.Expect(log.String()).To(ContainSubstring(`removed log ` + rotated(4) + `: beyond the 3 newest rotated files`))
	g.Expect(log.String()).To(ContainSubstring(`removed log ` + old + `: older than 2 days`))
	g.Expect(disk.ReadFile(proxyLog)).To(Equal([]byte("x\n")), "fewer files than maxFiles: nothing removed")
	g.Expect(log.String()).NotTo(ContainSubstring("prune logs:"), "a held file is no error")

	release()
	g.Eventually(names).WithTimeout(10*time.Second).Should(Equal([]string{
		"kubelet-1.log", "kubelet-2.log", "kubelet-3.log", "kubelet.log",
	}), "the held file goes once it is let go")
	g.Expect(disk.ReadFile(current)).To(ContainSubstring("Started kubelet-idle.exe"), "the current log is never removed")
}
