package winsim_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/test/winsim"
)

const user = "Administrator"

// sim is a host and a client key authorised on it.
type sim struct {
	*winsim.Host
	signer ssh.Signer
}

func start(t *testing.T, opts winsim.Options) *sim {
	t.Helper()
	h, err := winsim.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	h.AuthorizeKey(user, signer.PublicKey())
	return &sim{Host: h, signer: signer}
}

func (s *sim) config() *ssh.ClientConfig {
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKey()))
	if err != nil {
		panic(err)
	}
	return &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback: ssh.FixedHostKey(pinned),
		Timeout:         5 * time.Second,
	}
}

func (s *sim) connect(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", s.Address(), s.config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// run executes command and returns stdout, stderr and the exit status.
func run(t *testing.T, c *ssh.Client, command string, stdin string) (string, string, int) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &stdout, &stderr, strings.NewReader(stdin)
	err = sess.Run(command)
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitStatus()
	}
	t.Fatalf("run %q: %v", command, err)
	return "", "", 0
}

func TestExecDispatch(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{Hostname: "WIN-1", OSBuild: winsim.BuildServer2025})
	echo := winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		in, _ := io.ReadAll(inv.Stdin)
		fmt.Fprintf(inv.Stdout, "%s|%s|%s|%s|%d", inv.Path, strings.Join(inv.Args, ","), in, inv.User, inv.Host.Facts().OSBuild)
		fmt.Fprint(inv.Stderr, "err")
		return 7
	})
	g.Expect(s.RegisterProgram(`C:/k/wicd.exe`, echo)).To(Succeed())
	g.Expect(s.RegisterProgram(`hostname.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		fmt.Fprintln(inv.Stdout, inv.Host.Facts().Hostname)
		return 0
	}))).To(Succeed())
	g.Expect(s.RegisterProgram(`C:\k\bad|name`, echo)).NotTo(Succeed())
	g.Expect(s.RegisterProgram(`C:\k\x.exe`, nil)).NotTo(Succeed())
	c := s.connect(t)

	out, errOut, code := run(t, c, `C:\k\wicd.exe apply  --plan C:\k\plan.json`, "input")
	g.Expect(out).To(Equal(`C:\k\wicd.exe|C:\k\wicd.exe,apply,--plan,C:\k\plan.json|input|Administrator|26100`))
	g.Expect(errOut).To(Equal("err"))
	g.Expect(code).To(Equal(7))

	for _, name := range []string{`c:\K\WICD.EXE`, `/C:/k/wicd.exe`, `C:/k/wicd`, `C:\k\.\wicd.exe`} {
		out, _, code = run(t, c, name+" x", "")
		g.Expect(code).To(Equal(7), name)
		g.Expect(out).To(HavePrefix(`C:\k\wicd.exe|`+name+",x|"), name)
	}
	out, _, code = run(t, c, "HOSTNAME", "")
	g.Expect(code).To(BeZero())
	g.Expect(out).To(Equal("WIN-1\n"))

	_, errOut, code = run(t, c, `C:\k\nothere.exe --flag`, "")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(Equal("'C:\\k\\nothere.exe' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"))

	out, errOut, code = run(t, c, "", "")
	g.Expect([]any{out, errOut, code}).To(Equal([]any{"", "", 0}), "an empty command line does nothing")

	s.UnregisterProgram(`C:\K\WICD.EXE`)
	_, _, code = run(t, c, `C:\k\wicd.exe`, "")
	g.Expect(code).To(Equal(1))

	st := s.Stats()
	g.Expect(st.Commands).To(BeEquivalentTo(9))
	g.Expect(st.Sessions).To(BeEquivalentTo(9))
	g.Expect(st.Connections).To(BeEquivalentTo(1))
}

func TestExecRefusesShellAndSecondRequest(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	c := s.connect(t)
	sess, err := c.NewSession()
	g.Expect(err).NotTo(HaveOccurred())
	defer sess.Close()
	g.Expect(sess.Shell()).NotTo(Succeed())
	g.Expect(sess.RequestPty("xterm", 80, 40, nil)).NotTo(Succeed())
	g.Expect(s.Stats().Commands).To(BeZero())
}

func TestProgramPanicExitsWithCode2(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	g.Expect(s.RegisterProgram(`C:\boom.exe`, winsim.ProgramFunc(func(context.Context, *winsim.Invocation) int {
		panic("kaboom")
	}))).To(Succeed())
	_, errOut, code := run(t, s.connect(t), `C:\boom.exe`, "")
	g.Expect(code).To(Equal(2))
	g.Expect(errOut).To(HavePrefix("panic: kaboom"))
}

func TestProgramContextEndsWhenClientCloses(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	started := make(chan struct{})
	cancelled := make(chan struct{})
	g.Expect(s.RegisterProgram(`C:\wait.exe`, winsim.ProgramFunc(func(ctx context.Context, _ *winsim.Invocation) int {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return 0
	}))).To(Succeed())
	c := s.connect(t)
	sess, err := c.NewSession()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sess.Start(`C:\wait.exe`)).To(Succeed())
	g.Eventually(started).Should(BeClosed())
	g.Expect(sess.Close()).To(Succeed())
	g.Eventually(cancelled).Should(BeClosed())
}

func TestSFTPServer(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	g.Expect(s.Disk().WriteFile(`C:\Windows\win.ini`, []byte("[fonts]"))).To(Succeed())
	c, err := sftp.NewClient(s.connect(t))
	g.Expect(err).NotTo(HaveOccurred())
	defer c.Close()

	wd, err := c.Getwd()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(wd).To(Equal("/C:/Users/Administrator"))
	rp, err := c.RealPath(`C:\k\..\Windows`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rp).To(Equal("/C:/Windows"))

	root, err := c.ReadDir("/")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(root).To(HaveLen(1))
	g.Expect(root[0].Name()).To(Equal("C:"))

	// All path forms name the same file.
	for _, p := range []string{"/C:/Windows/win.ini", `C:\Windows\win.ini`, "C:/WINDOWS/WIN.INI", `/c:\windows\win.ini`} {
		f, err := c.Open(p)
		g.Expect(err).NotTo(HaveOccurred(), p)
		b, err := io.ReadAll(f)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(b)).To(Equal("[fonts]"), p)
		g.Expect(f.Close()).To(Succeed())
	}

	g.Expect(c.Mkdir("/C:/k")).To(Succeed())
	g.Expect(c.Mkdir("/C:/K")).NotTo(Succeed())
	f, err := c.OpenFile("/C:/k/a.txt", 0x241) // O_WRONLY|O_CREATE|O_TRUNC
	g.Expect(err).NotTo(HaveOccurred())
	_, err = f.Write([]byte("hello"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(f.Close()).To(Succeed())
	g.Expect(s.Disk().ReadFile(`C:\k\A.TXT`)).To(Equal([]byte("hello")))

	g.Expect(s.Disk().WriteFile(`C:\k\b.txt`, []byte("b"))).To(Succeed())
	g.Expect(c.Rename("/C:/k/a.txt", "/C:/k/b.txt")).NotTo(Succeed(), "SSH_FXP_RENAME does not replace")
	_, ok := c.HasExtension("posix-rename@openssh.com")
	g.Expect(ok).To(BeTrue())
	g.Expect(c.PosixRename("/C:/k/a.txt", "/C:/k/b.txt")).To(Succeed())
	g.Expect(s.Disk().ReadFile(`C:\k\b.txt`)).To(Equal([]byte("hello")))

	g.Expect(c.Truncate("/C:/k/b.txt", 2)).To(Succeed())
	g.Expect(s.Disk().ReadFile(`C:\k\b.txt`)).To(Equal([]byte("he")))

	vfs, err := c.StatVFS("/C:/")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vfs.TotalSpace()).To(BeEquivalentTo(winsim.DefaultDiskQuota))
	g.Expect(int64(vfs.FreeSpace())).To(BeNumerically("~", s.Disk().Free(), 4096))

	_, err = c.Stat("/C:/k/missing")
	g.Expect(err).To(MatchError(ContainSubstring("not exist")))
	g.Expect(c.Remove("/C:/k")).NotTo(Succeed(), "not empty")
	g.Expect(c.Remove("/C:/k/b.txt")).To(Succeed())
	g.Expect(c.RemoveDirectory("/C:/k")).To(Succeed())
	g.Expect(c.Symlink("/C:/Windows", "/C:/link")).NotTo(Succeed())
	_, err = c.Stat("/D:/x")
	g.Expect(err).To(HaveOccurred())
	_, err = c.Create("/C:/Windows/NUL")
	g.Expect(err).To(HaveOccurred())
}

func TestSFTPDiskFullStatus(t *testing.T) {
	for _, noSpace := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReportNoSpace=%v", noSpace), func(t *testing.T) {
			g := NewWithT(t)
			s := start(t, winsim.Options{ReportNoSpace: noSpace, DiskQuota: 1000})
			c, err := sftp.NewClient(s.connect(t))
			g.Expect(err).NotTo(HaveOccurred())
			defer c.Close()
			f, err := c.Create("/C:/big")
			g.Expect(err).NotTo(HaveOccurred())
			_, err = f.Write(make([]byte, 2000))
			var se *sftp.StatusError
			g.Expect(errors.As(err, &se)).To(BeTrue(), "%v", err)
			if noSpace {
				g.Expect(se.Code).To(BeEquivalentTo(14))
			} else {
				g.Expect(se.Code).To(BeEquivalentTo(4))
			}
			g.Expect(err.Error()).To(ContainSubstring("There is not enough space on the disk."))
			_ = f.Close()
		})
	}
}

func TestAuthentication(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	cfg := s.config()
	cfg.User = "administrator" // Windows account names are case-insensitive
	c, err := ssh.Dial("tcp", s.Address(), cfg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Close()).To(Succeed())

	s.RefuseAuth(true)
	_, err = ssh.Dial("tcp", s.Address(), s.config())
	g.Expect(err).To(HaveOccurred())
	g.Eventually(func() int64 { return s.Stats().AuthFailures }).Should(BeEquivalentTo(1))
	s.RefuseAuth(false)

	s.RevokeKeys(user)
	_, err = ssh.Dial("tcp", s.Address(), s.config())
	g.Expect(err).To(HaveOccurred())
	g.Eventually(func() int64 { return s.Stats().AuthFailures }).Should(BeEquivalentTo(2))
	g.Expect(s.Stats().Connections).To(BeEquivalentTo(1))
}

func TestRotateHostKey(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	oldCfg := s.config()
	c := s.connect(t)

	newKey, err := s.RotateHostKey()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.HostKey()).To(Equal(newKey))
	g.Expect(s.HostKeys()).To(Equal([]string{newKey}))

	_, err = ssh.Dial("tcp", s.Address(), oldCfg)
	g.Expect(err).To(MatchError(ContainSubstring("host key mismatch")))
	_, _, code := run(t, c, "x", "")
	g.Expect(code).To(Equal(1), "established connections keep working")
	c2, err := ssh.Dial("tcp", s.Address(), s.config())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c2.Close()).To(Succeed())
	g.Expect(s.SetHostKeys()).NotTo(Succeed())
}

func TestDropAfter(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	c := s.connect(t)
	s.DropAfter(0)
	sess, err := c.NewSession()
	if err == nil {
		err = sess.Run("x")
	}
	g.Expect(err).To(HaveOccurred())
	g.Expect(c.Wait()).NotTo(BeNil())

	// One shot: the next connection is fine.
	c2 := s.connect(t)
	_, _, code := run(t, c2, "x", "")
	g.Expect(code).To(Equal(1))

	s.DropAfter(1 << 20)
	s.DropAfter(-1) // disarmed
	_, _, code = run(t, c2, "x", "")
	g.Expect(code).To(Equal(1))
}

func TestBandwidthAndLatency(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	g.Expect(s.Disk().WriteFile(`C:\data`, make([]byte, 2<<20))).To(Succeed())
	c := s.connect(t)
	sc, err := sftp.NewClient(c)
	g.Expect(err).NotTo(HaveOccurred())
	defer sc.Close()

	s.SetBandwidth(2 << 20)
	before := s.Stats().BytesSent
	start := time.Now()
	f, err := sc.Open("/C:/data")
	g.Expect(err).NotTo(HaveOccurred())
	n, err := io.Copy(io.Discard, f)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(BeEquivalentTo(2 << 20))
	elapsed := time.Since(start)
	g.Expect(elapsed).To(BeNumerically(">=", 800*time.Millisecond)) // 2 MiB at 2 MiB/s, minus the burst
	g.Expect(s.Stats().BytesSent - before).To(BeNumerically(">=", 2<<20))
	t.Logf("2 MiB at 2 MiB/s took %v", elapsed)
	s.SetBandwidth(0)

	s.SetLatency(100 * time.Millisecond)
	start = time.Now()
	_, err = sc.Stat("/C:/data")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(time.Since(start)).To(BeNumerically(">=", 200*time.Millisecond), "one round trip")
	s.SetLatency(0)
}

// lifecycle records component calls in order.
type lifecycle struct {
	mu     sync.Mutex
	events []string
}

func (l *lifecycle) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *lifecycle) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

type component struct {
	name string
	log  *lifecycle
	ctx  context.Context
}

func (c *component) Boot(ctx context.Context) error {
	c.ctx = ctx
	c.log.add(c.name + ".boot")
	return nil
}

func (c *component) Shutdown(context.Context) error {
	c.log.add(c.name + ".shutdown")
	return nil
}

func TestReboot(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	log := &lifecycle{}
	a, b := &component{name: "a", log: log}, &component{name: "b", log: log}
	g.Expect(s.AddComponent(a)).To(Succeed())
	g.Expect(s.AddComponent(b)).To(Succeed())
	g.Expect(log.get()).To(Equal([]string{"a.boot", "b.boot"}))
	bootA := a.ctx

	running := make(chan struct{})
	g.Expect(s.RegisterProgram(`C:\svc.exe`, winsim.ProgramFunc(func(ctx context.Context, _ *winsim.Invocation) int {
		close(running)
		<-ctx.Done()
		return 0
	}))).To(Succeed())
	c := s.connect(t)
	sess, err := c.NewSession()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sess.Start(`C:\svc.exe`)).To(Succeed())
	g.Eventually(running).Should(BeClosed())

	g.Expect(s.Reboot(t.Context(), time.Hour)).To(Succeed())
	g.Expect(s.State()).To(Equal(winsim.StateDown))
	g.Expect(log.get()).To(Equal([]string{"a.boot", "b.boot", "b.shutdown", "a.shutdown"}))
	g.Expect(bootA.Err()).To(MatchError(context.Canceled), "the boot context ends with the boot")
	g.Expect(c.Wait()).NotTo(BeNil(), "connections are dropped")
	_, err = net.DialTimeout("tcp", s.Address(), time.Second)
	g.Expect(err).To(HaveOccurred(), "connections are refused while down")
	g.Expect(s.Reboot(t.Context(), 0)).To(MatchError(winsim.ErrNotUp))
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	g.Expect(s.WaitUp(ctx)).To(MatchError(context.DeadlineExceeded))
	g.Expect(s.Close()).To(Succeed())
	g.Expect(s.WaitUp(t.Context())).To(MatchError(winsim.ErrClosed))
	g.Expect(s.State()).To(Equal(winsim.StateClosed))
	g.Expect(log.get()).To(HaveLen(4), "a host that is down has nothing left to shut down")
}

func TestRebootComesBack(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	log := &lifecycle{}
	g.Expect(s.AddComponent(&component{name: "svc", log: log})).To(Succeed())
	firstBoot := s.Facts().BootTime
	c := s.connect(t)

	g.Expect(s.Reboot(t.Context(), 100*time.Millisecond)).To(Succeed())
	g.Expect(c.Wait()).NotTo(BeNil())
	g.Expect(s.WaitUp(t.Context())).To(Succeed())
	g.Expect(s.State()).To(Equal(winsim.StateUp))
	g.Expect(log.get()).To(Equal([]string{"svc.boot", "svc.shutdown", "svc.boot"}))
	g.Expect(s.Facts().BootTime).To(BeTemporally(">", firstBoot))
	g.Expect(s.Stats().Boots).To(BeEquivalentTo(1))
	c2 := s.connect(t)
	_, _, code := run(t, c2, "x", "")
	g.Expect(code).To(Equal(1))

	// Components added while up boot at once; Close shuts them down.
	later := &component{name: "later", log: log}
	g.Expect(s.AddComponent(later)).To(Succeed())
	g.Expect(s.Close()).To(Succeed())
	g.Expect(s.Close()).To(Succeed())
	g.Expect(log.get()).To(Equal([]string{"svc.boot", "svc.shutdown", "svc.boot", "later.boot", "later.shutdown", "svc.shutdown"}))
	g.Expect(s.AddComponent(later)).To(MatchError(winsim.ErrClosed))
	g.Expect(s.Reboot(t.Context(), 0)).To(MatchError(winsim.ErrClosed))
}

func TestStartContextClosesHost(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(t.Context())
	h, err := winsim.Start(ctx, winsim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.State()).To(Equal(winsim.StateUp))
	g.Expect(h.WaitUp(t.Context())).To(Succeed())
	cancel()
	g.Eventually(h.State).Should(Equal(winsim.StateClosed))
	_, err = net.DialTimeout("tcp", h.Address(), time.Second)
	g.Expect(err).To(HaveOccurred())
}

func TestFactsAndDefaults(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	f := s.Facts()
	g.Expect(f.Hostname).To(Equal(fmt.Sprintf("WINSIM-%d", s.Port())))
	g.Expect(f.OSBuild).To(Equal(winsim.BuildServer2022))
	g.Expect(f.IPAddresses).To(HaveLen(1))
	g.Expect(f.IPAddresses[0].String()).To(Equal("127.0.0.1"))
	g.Expect(s.IP()).To(Equal("127.0.0.1"))
	g.Expect(s.HostKey()).To(HavePrefix("ssh-ed25519 "))
	g.Expect(s.Disk().Quota()).To(BeEquivalentTo(winsim.DefaultDiskQuota))
	g.Expect(winsim.StateDown.String()).To(Equal("Down"))

	canon, err := winsim.CanonicalPath("c:/k/./x")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(canon).To(Equal(`C:\k\x`))

	// Two hosts are independent.
	s2 := start(t, winsim.Options{})
	g.Expect(s2.Address()).NotTo(Equal(s.Address()))
	g.Expect(s2.HostKey()).NotTo(Equal(s.HostKey()))
}

// TestQuickCommandResultsAreNeverLost runs many commands that finish at
// once: each must deliver its output and exit status, as sshd always does
// (it replies to exec before the command can write or exit).
func TestQuickCommandResultsAreNeverLost(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	g.Expect(s.RegisterProgram(`C:\k\quick.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		fmt.Fprint(inv.Stdout, "out")
		return 3
	}))).To(Succeed())
	c := s.connect(t)
	const workers, each = 8, 125
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				sess, err := c.NewSession()
				if err != nil {
					t.Error(err)
					return
				}
				out, err := sess.Output(`C:\k\quick.exe`)
				_ = sess.Close()
				var ee *ssh.ExitError
				if !errors.As(err, &ee) || ee.ExitStatus() != 3 || string(out) != "out" {
					t.Errorf("got %q, %v; want \"out\" and exit status 3", out, err)
					return
				}
			}
		})
	}
	wg.Wait()
	g.Expect(s.Stats().Commands).To(BeEquivalentTo(workers * each))
}
