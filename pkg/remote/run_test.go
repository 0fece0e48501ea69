package remote_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/test/winsim"
)

func TestRunOutputAndExitCode(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{Hostname: "WIN-A", OSBuild: winsim.BuildServer2019})
	var got *winsim.Invocation
	g.Expect(f.host.RegisterProgram(`C:\k\wicd.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		got = inv
		in, _ := io.ReadAll(inv.Stdin)
		facts := inv.Host.Facts()
		fmt.Fprintf(inv.Stdout, "host=%s build=%d args=%s stdin=%d", facts.Hostname, facts.OSBuild, strings.Join(inv.Args[1:], ","), len(in))
		fmt.Fprint(inv.Stderr, "warning: simulated")
		return 3
	}))).To(Succeed())

	s := f.dial(t)
	res, err := s.Run(t.Context(), []string{"c:/K/WICD.exe", "facts", "--output=json", `C:\k\plan.json`})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(res.Stdout)).To(Equal(`host=WIN-A build=17763 args=facts,--output=json,C:\k\plan.json stdin=0`))
	g.Expect(string(res.Stderr)).To(Equal("warning: simulated"))
	g.Expect(res.ExitCode).To(Equal(3))
	g.Expect(got.Path).To(Equal(`C:\k\wicd.exe`))
	g.Expect(got.Args[0]).To(Equal(`C:\K\WICD.exe`), "the program path is sent with backslashes")
	g.Expect(got.User).To(Equal(testUser))

	// Large outputs come through whole.
	g.Expect(f.host.RegisterProgram(`C:\k\big.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		_, _ = inv.Stdout.Write([]byte(strings.Repeat("x", 5<<20)))
		return 0
	}))).To(Succeed())
	res, err = s.Run(t.Context(), []string{`C:\k\big.exe`})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.Stdout).To(HaveLen(5 << 20))
	g.Expect(res.ExitCode).To(BeZero())

	// Every Run shares the session's single connection.
	g.Expect(f.host.Stats().Connections).To(BeEquivalentTo(1))
}

func TestRunOutputCap(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	f.dialer.MaxOutput = 1000
	g.Expect(f.host.RegisterProgram(`C:\k\chatty.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		_, _ = inv.Stdout.Write([]byte(strings.Repeat("y", 1<<20)))
		return 0
	}))).To(Succeed())
	s := f.dial(t)
	res, err := s.Run(t.Context(), []string{`C:\k\chatty.exe`})
	g.Expect(err).To(MatchError(ContainSubstring("output exceeds 1000 bytes")))
	g.Expect(res.Stdout).To(HaveLen(1000))
}

func TestRunUnknownProgram(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	res, err := s.Run(t.Context(), []string{`C:\k\missing.exe`, "version"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.ExitCode).To(Equal(1))
	g.Expect(res.Stdout).To(BeEmpty())
	g.Expect(string(res.Stderr)).To(Equal("'C:\\k\\missing.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"))

	res, err = s.Run(t.Context(), []string{"x"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.ExitCode).To(Equal(1))
	g.Expect(string(res.Stderr)).To(HavePrefix("'x' is not recognized as an internal or external command,\r\noperable program or batch file."))
}

func TestRunRejectsArgvBeforeSending(t *testing.T) {
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	before := f.host.Stats()
	for _, arg := range []string{"&", "a|b", `"x"`, "%PATH%", "$(x)", "a;b", "a`b", "a\nb", "a b", "", "a,b", "^", "!x!"} {
		t.Run(fmt.Sprintf("%q", arg), func(t *testing.T) {
			g := NewWithT(t)
			res, err := s.Run(t.Context(), []string{`C:\k\wicd.exe`, "apply", arg})
			var ae *remote.ArgvError
			g.Expect(errors.As(err, &ae)).To(BeTrue(), "%v", err)
			g.Expect(ae.Index).To(Equal(2))
			g.Expect(res).To(BeZero())
		})
	}
	g := NewWithT(t)
	after := f.host.Stats()
	g.Expect(after.Commands).To(Equal(before.Commands))
	g.Expect(after.Sessions).To(Equal(before.Sessions), "no channel was even opened")
}

func TestRunCancelEndsRemoteCommand(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	started := make(chan struct{})
	ended := make(chan error, 1)
	g.Expect(f.host.RegisterProgram(`C:\k\hang.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return 1
	}))).To(Succeed())
	s := f.dial(t)

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	start := time.Now()
	_, err := s.Run(ctx, []string{`C:\k\hang.exe`})
	g.Expect(err).To(MatchError(context.Canceled))
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second))
	g.Eventually(ended).Should(Receive(MatchError(context.Canceled)), "the program saw its context end")

	// The session is still usable.
	res, err := s.Run(t.Context(), []string{"hostname"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.ExitCode).To(Equal(1))
}

func TestRunDeadlineOnStalledHost(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	// Each packet takes 5 s each way: the exec cannot even be confirmed.
	f.host.SetLatency(5 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Run(ctx, []string{"hostname"})
	g.Expect(err).To(MatchError(context.DeadlineExceeded))
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second))
}

func TestClosedSession(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	g.Expect(s.Close()).To(Succeed())
	g.Expect(s.Close()).To(Succeed())
	_, err := s.Run(t.Context(), []string{"hostname"})
	g.Expect(err).To(MatchError(remote.ErrSessionClosed))
	_, err = s.Stat(t.Context(), `C:\`)
	g.Expect(err).To(MatchError(remote.ErrSessionClosed))
	err = s.Upload(t.Context(), `C:\k\x`, strings.NewReader(""), 0, sha256Hex(nil))
	g.Expect(err).To(MatchError(remote.ErrSessionClosed))
}

func TestAlive(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})

	s := f.dial(t)
	g.Expect(remote.Alive(s)).To(BeTrue(), "a fresh session")
	g.Expect(s.Close()).To(Succeed())
	g.Expect(remote.Alive(s)).To(BeFalse(), "a closed session")

	// The host drops every connection: the session notices without being
	// used.
	s = f.dial(t)
	f.host.ResetConnections()
	g.Eventually(func() bool { return remote.Alive(s) }).WithTimeout(10 * time.Second).Should(BeFalse())
	_, err := s.Run(t.Context(), []string{"hostname"})
	g.Expect(err).To(MatchError(remote.ErrConnectionLost))
}
