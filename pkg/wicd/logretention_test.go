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

// startRunLoop runs the agent's run loop on the host every 50 ms until
// the test ends, and returns what it logs.
func startRunLoop(t *testing.T, s *settingsHost) *syncBuffer {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := &syncBuffer{}
	go func() { done <- wicd.RunLoop(ctx, s.node.Backend(), 50*time.Millisecond, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run loop: %v", err)
		}
	})
	return log
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
	// The test runs the loop itself, so its log shows what was removed.
	// Its first pass starts the agent service again (stopped is drift),
	// but prunes in that same pass, under the host lock the service's
	// own passes then wait for.
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

	log := startRunLoop(t, s)

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

// containerd and windows_exporter write their own logs, hold them open
// for appending and rotate nothing; Windows lets such a file be neither
// renamed nor deleted. The run loop copies a log that has reached
// maxFileSizeMiB beside it and empties it, and the program's next line
// lands at its start; a log under the size is left alone.
func TestRunRotatesTheLogsProgramsWriteThemselves(t *testing.T) {
	g := NewWithT(t)
	s := startSettingsHost(t)
	in := s.inputs()
	in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{MaxFiles: 3, MaxAgeDays: 2, MaxFileSizeMiB: 1}
	s.apply(g, in)
	g.Expect(s.node.Services.Stop(t.Context(), wicdapi.AgentServiceName)).To(Succeed())
	disk := s.node.Host.Disk()
	containerd := nodeconfig.LogPath(nodeconfig.ServiceContainerd)
	exporter := nodeconfig.LogPath(nodeconfig.ServiceWindowsExporter)
	started, err := disk.ReadFile(containerd)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(started)).To(ContainSubstring("started containerd.exe (service containerd)"), "containerd writes its log")
	g.Expect(disk.Rename(containerd, containerd+".1", false)).To(MatchError(winsim.ErrSharingViolation), "containerd holds its log open")

	// containerd and windows_exporter write 1.5 MiB each; a process
	// reads windows_exporter's log sharing reads only.
	lines := bytes.Repeat([]byte("time=\"2026-12-05T11:00:00Z\" level=info msg=\"pulled\"\r\n"), 1<<20/52*3/2)
	g.Expect(disk.AppendFile(containerd, lines)).To(Succeed())
	g.Expect(disk.AppendFile(exporter, lines)).To(Succeed())
	exporterBefore, err := disk.ReadFile(exporter)
	g.Expect(err).NotTo(HaveOccurred())
	unlock, err := disk.HoldForReading(exporter, "viewer.exe")
	g.Expect(err).NotTo(HaveOccurred())

	log := startRunLoop(t, s)

	rotatedFiles := func(dir string) []string {
		infos, err := disk.List(dir)
		g.Expect(err).NotTo(HaveOccurred())
		var out []string
		for _, fi := range infos {
			out = append(out, dir+`\`+fi.Name())
		}
		return out
	}
	g.Eventually(func() []string { return rotatedFiles(nodeconfig.LogDir(nodeconfig.ServiceContainerd)) }).
		WithTimeout(10 * time.Second).Should(HaveLen(2))
	var copied string
	for _, f := range rotatedFiles(nodeconfig.LogDir(nodeconfig.ServiceContainerd)) {
		if f != containerd {
			copied = f
		}
	}
	g.Expect(copied).To(MatchRegexp(`\\containerd-\d{8}T\d{6}\.\d{3}Z\.log$`))
	g.Expect(disk.ReadFile(copied)).To(Equal(append(started, lines...)), "the copy holds all it had")
	g.Expect(disk.ReadFile(containerd)).To(BeEmpty(), "emptied")
	g.Expect(log.String()).To(ContainSubstring(fmt.Sprintf("rotated log %s to %s (%d bytes)", containerd, copied, len(started)+len(lines))))

	// containerd goes on appending, at the start of the emptied file,
	// and a log under the size is not rotated again.
	g.Expect(disk.AppendFile(containerd, []byte("next line\r\n"))).To(Succeed())
	g.Expect(disk.ReadFile(containerd)).To(Equal([]byte("next line\r\n")))
	g.Consistently(func() []string { return rotatedFiles(nodeconfig.LogDir(nodeconfig.ServiceContainerd)) }).
		WithTimeout(300*time.Millisecond).Should(HaveLen(2), "a log under the size is not rotated again")

	// The viewer keeps windows_exporter's log from being emptied: no
	// pass makes a copy, not even for a moment, and the log is rotated
	// once the viewer lets go.
	g.Eventually(log.String).WithTimeout(10 * time.Second).Should(ContainSubstring("rotate logs: copy and empty " + exporter))
	g.Consistently(func() []string { return rotatedFiles(nodeconfig.LogDir(nodeconfig.ServiceWindowsExporter)) }).
		WithTimeout(300*time.Millisecond).Should(Equal([]string{exporter}), "no copy of a log that cannot be emptied")
	g.Expect(disk.ReadFile(exporter)).To(Equal(exporterBefore))
	unlock()
	g.Eventually(func() []string { return rotatedFiles(nodeconfig.LogDir(nodeconfig.ServiceWindowsExporter)) }).
		WithTimeout(10 * time.Second).Should(HaveLen(2))
	g.Expect(disk.ReadFile(exporter)).To(BeEmpty())
}
