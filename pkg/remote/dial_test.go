package remote_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/test/winsim"
)

func TestDialKeyFormats(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec384Key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	openssh := func(k any) []byte {
		block, err := ssh.MarshalPrivateKey(k, "a comment")
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(block)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		key  any
		pem  []byte
	}{
		{"RSA PKCS#1 PEM", rsaKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{"RSA PKCS#8 PEM", rsaKey, pkcs8(rsaKey)},
		{"RSA OpenSSH", rsaKey, openssh(rsaKey)},
		{"ECDSA P-256 SEC1 PEM", ecKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})},
		{"ECDSA P-256 PKCS#8 PEM", ecKey, pkcs8(ecKey)},
		{"ECDSA P-384 OpenSSH", ec384Key, openssh(ec384Key)},
		{"Ed25519 PKCS#8 PEM", edKey, pkcs8(edKey)},
		{"Ed25519 OpenSSH", edKey, openssh(edKey)},
	}
	f := newFixture(t, winsim.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			signer, err := ssh.NewSignerFromKey(tt.key)
			g.Expect(err).NotTo(HaveOccurred())
			f.host.AuthorizeKey("keytest", signer.PublicKey())
			target := f.target()
			target.Username = "keytest"
			target.PrivateKey = tt.pem
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			s, err := f.dialer.Dial(ctx, target)
			g.Expect(err).NotTo(HaveOccurred())
			defer s.Close()
			_, err = s.Stat(ctx, `C:\`)
			g.Expect(err).NotTo(HaveOccurred())
		})
	}
}

func TestDialUnusableKeys(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encrypted, err := ssh.MarshalPrivateKeyWithPassphrase(edKey, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, winsim.Options{})
	for name, key := range map[string][]byte{
		"garbage":               []byte("not a key"),
		"passphrase-protected":  pem.EncodeToMemory(encrypted),
		"truncated OpenSSH key": f.key[:len(f.key)/2],
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			target := f.target()
			target.PrivateKey = key
			_, err := f.dialer.Dial(t.Context(), target)
			var ae *remote.AuthError
			g.Expect(errors.As(err, &ae)).To(BeTrue(), "%v", err)
			g.Expect(ae.Cause).To(Equal(remote.AuthKeyUnusable), "the key itself is at fault, not the host")
			g.Expect(err.Error()).NotTo(ContainSubstring(string(f.key[40:80])))
		})
	}
	NewWithT(t).Expect(f.host.Stats().Connections).To(BeZero())
}

func TestTargetNeverPrintsPrivateKey(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	target := f.target()
	secret := string(f.key[40:80])
	for _, s := range []string{
		fmt.Sprint(target), fmt.Sprintf("%v", target), fmt.Sprintf("%+v", target), fmt.Sprintf("%#v", target),
		fmt.Sprintf("%s", target.PrivateKey), fmt.Sprintf("%x", target.PrivateKey), fmt.Sprintf("%q", target.PrivateKey),
	} {
		g.Expect(s).NotTo(ContainSubstring(secret))
		g.Expect(s).NotTo(ContainSubstring("PRIVATE KEY"))
	}
	b, err := json.Marshal(target)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).NotTo(ContainSubstring(secret))
	g.Expect(string(b)).To(ContainSubstring(`"PrivateKey":"[redacted]"`))
}

func TestDialTrustOnFirstUse(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	target := f.target()
	target.HostKey = ""

	_, err := f.dialer.Dial(t.Context(), target)
	g.Expect(err).To(MatchError(ContainSubstring("trust on first use is off")))

	target.TrustOnFirstUse = true
	s, err := f.dialer.Dial(t.Context(), target)
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	g.Expect(s.HostKey()).To(Equal(f.host.HostKey()))

	// The key seen can be pinned.
	pinned := f.target()
	pinned.HostKey = s.HostKey()
	s2, err := f.dialer.Dial(t.Context(), pinned)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s2.HostKey()).To(Equal(pinned.HostKey))
	g.Expect(s2.Close()).To(Succeed())
}

func TestDialPinsOneOfSeveralHostKeys(t *testing.T) {
	g := NewWithT(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	g.Expect(err).NotTo(HaveOccurred())
	rsaSigner, err := ssh.NewSignerFromKey(rsaKey)
	g.Expect(err).NotTo(HaveOccurred())
	edSigner, err := winsim.NewHostKey()
	g.Expect(err).NotTo(HaveOccurred())
	f := newFixture(t, winsim.Options{HostKeys: []ssh.Signer{edSigner, rsaSigner}})

	// Pinning the RSA key must make the host present it, not its Ed25519 key.
	for _, k := range f.host.HostKeys() {
		target := f.target()
		target.HostKey = k + " root@win"
		s, err := f.dialer.Dial(t.Context(), target)
		g.Expect(err).NotTo(HaveOccurred(), k)
		g.Expect(s.HostKey()).To(Equal(k))
		g.Expect(s.Close()).To(Succeed())
	}
}

func TestDialHostKeyMismatch(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	target := f.target()
	oldFP, err := remote.HostKeyFingerprint(target.HostKey)
	g.Expect(err).NotTo(HaveOccurred())

	newKey, err := f.host.RotateHostKey()
	g.Expect(err).NotTo(HaveOccurred())
	newFP, err := remote.HostKeyFingerprint(newKey)
	g.Expect(err).NotTo(HaveOccurred())

	_, err = f.dialer.Dial(t.Context(), target)
	var mm *remote.HostKeyMismatchError
	g.Expect(errors.As(err, &mm)).To(BeTrue(), "%v", err)
	g.Expect(mm.Expected).To(Equal(oldFP))
	g.Expect(mm.Actual).To(Equal(newFP))
	g.Expect(mm.ActualKey).To(Equal(newKey))
	g.Expect(mm.Address).To(Equal(f.host.Address()))
	g.Expect(err.Error()).To(ContainSubstring(oldFP))
	g.Expect(err.Error()).NotTo(ContainSubstring("PRIVATE"))

	// Nothing ran, nothing was authenticated.
	st := f.host.Stats()
	g.Expect(st.Commands).To(BeZero())
	g.Expect(st.Sessions).To(BeZero())
	g.Expect(st.Connections).To(BeZero())

	// Re-pinning deliberately works.
	target.HostKey = newKey
	s, err := f.dialer.Dial(t.Context(), target)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Close()).To(Succeed())
}

func TestDialWrongKey(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	target := f.target()
	_, other := newEd25519Key(t)
	target.PrivateKey = other

	_, err := f.dialer.Dial(t.Context(), target)
	var ae *remote.AuthError
	g.Expect(errors.As(err, &ae)).To(BeTrue(), "%v", err)
	g.Expect(ae.User).To(Equal(testUser))
	g.Expect(ae.Cause).To(Equal(remote.AuthKeyRefused))
	// The host notices the client giving up after the client returns.
	g.Eventually(func() int64 { return f.host.Stats().AuthFailures }).Should(BeEquivalentTo(1))

	// Unknown user with the right key.
	target = f.target()
	target.Username = "nobody"
	_, err = f.dialer.Dial(t.Context(), target)
	g.Expect(errors.As(err, &ae)).To(BeTrue(), "%v", err)
	g.Eventually(func() int64 { return f.host.Stats().AuthFailures }).Should(BeEquivalentTo(2))
	g.Expect(f.host.Stats().Connections).To(BeZero())
}

func TestDialRefusedAuth(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	f.host.RefuseAuth(true)
	_, err := f.dialer.Dial(t.Context(), f.target())
	var ae *remote.AuthError
	g.Expect(errors.As(err, &ae)).To(BeTrue(), "%v", err)

	g.Expect(ae.Cause).To(Equal(remote.AuthKeyRefused))

	f.host.RefuseAuth(false)
	s := f.dial(t)
	g.Expect(s.Close()).To(Succeed())
}

// A host whose sshd offers no public key authentication is told apart
// from one refusing the key, and says what it offers.
func TestDialHostWithoutPublicKeyAuth(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	f.host.OfferPasswordOnly(true)
	_, err := f.dialer.Dial(t.Context(), f.target())
	var ae *remote.AuthError
	g.Expect(errors.As(err, &ae)).To(BeTrue(), "%v", err)
	g.Expect(ae.Cause).To(Equal(remote.AuthPublicKeyNotOffered))
	g.Expect(ae.Reason).To(ContainSubstring("offers password"))

	f.host.OfferPasswordOnly(false)
	s := f.dial(t)
	g.Expect(s.Close()).To(Succeed())
}

func TestDialClosedPort(t *testing.T) {
	g := NewWithT(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	port := ln.Addr().(*net.TCPAddr).Port
	g.Expect(ln.Close()).To(Succeed())

	f := newFixture(t, winsim.Options{})
	target := f.target()
	target.Port = port
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err = f.dialer.Dial(ctx, target)
	var ue *remote.UnreachableError
	g.Expect(errors.As(err, &ue)).To(BeTrue(), "%v", err)
	g.Expect(ue.Address).To(Equal(fmt.Sprintf("127.0.0.1:%d", port)))
	g.Expect(time.Since(start)).To(BeNumerically("<", 2*time.Second))
}

func TestDialHonoursDeadlineWhenPeerIsSilent(t *testing.T) {
	g := NewWithT(t)
	// A listener that never accepts: TCP connects (backlog), but no SSH
	// banner ever arrives.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	defer ln.Close()

	f := newFixture(t, winsim.Options{})
	target := f.target()
	target.Port = ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = f.dialer.Dial(ctx, target)
	elapsed := time.Since(start)
	var ue *remote.UnreachableError
	g.Expect(errors.As(err, &ue)).To(BeTrue(), "%v", err)
	g.Expect(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)).To(BeTrue(), "%v", err)
	g.Expect(elapsed).To(BeNumerically("<", 2*time.Second))

	// Cancellation (no deadline) is honoured too.
	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err = f.dialer.Dial(ctx, target)
	g.Expect(errors.As(err, &ue)).To(BeTrue(), "%v", err)
	g.Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "%v", err)
}

func TestDialIPv6(t *testing.T) {
	g := NewWithT(t)
	h, err := winsim.Start(t.Context(), winsim.Options{ListenAddress: "[::1]:0"})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer h.Close()
	signer, key := newEd25519Key(t)
	h.AuthorizeKey(testUser, signer.PublicKey())
	for _, addr := range []string{"::1", "[::1]"} {
		s, err := (&remote.SSHDialer{}).Dial(t.Context(), remote.Target{
			Address: addr, Port: h.Port(), Username: testUser, PrivateKey: key, HostKey: h.HostKey(),
		})
		g.Expect(err).NotTo(HaveOccurred(), addr)
		g.Expect(s.Close()).To(Succeed())
	}
}

func TestDialValidatesTarget(t *testing.T) {
	f := newFixture(t, winsim.Options{})
	for name, mutate := range map[string]func(*remote.Target){
		"empty address":    func(tg *remote.Target) { tg.Address = "" },
		"address and port": func(tg *remote.Target) { tg.Address = "host.example:22" },
		"bad port":         func(tg *remote.Target) { tg.Port = 70000 },
		"no user":          func(tg *remote.Target) { tg.Username = "" },
		"no key":           func(tg *remote.Target) { tg.PrivateKey = nil },
		"bad host key":     func(tg *remote.Target) { tg.HostKey = "ssh-ed25519 !!!" },
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			target := f.target()
			mutate(&target)
			_, err := f.dialer.Dial(t.Context(), target)
			g.Expect(err).To(HaveOccurred())
		})
	}
	NewWithT(t).Expect(f.host.Stats().Connections).To(BeZero())
}

func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	proxy := newFreezableProxy(t, f.host.Address())
	target := f.target()
	target.Port = proxy.port()
	f.dialer.KeepaliveInterval = 100 * time.Millisecond
	f.dialer.KeepaliveTimeout = 300 * time.Millisecond

	s, err := f.dialer.Dial(t.Context(), target)
	g.Expect(err).NotTo(HaveOccurred())
	defer s.Close()
	_, err = s.Run(t.Context(), []string{"hostname"})
	g.Expect(err).NotTo(HaveOccurred())

	proxy.freeze()
	// No context deadline: only the keepalive can end this.
	start := time.Now()
	_, err = s.Run(context.Background(), []string{"hostname"})
	g.Expect(err).To(HaveOccurred())
	g.Expect(errors.Is(err, remote.ErrConnectionLost)).To(BeTrue(), "%v", err)
	g.Expect(time.Since(start)).To(BeNumerically("<", 5*time.Second))
	t.Logf("dead peer detected after %v: %v", time.Since(start), err)
}

func TestRebootDropsSessionsAndHostComesBack(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	comp := &recordingComponent{}
	g.Expect(f.host.AddComponent(comp)).To(Succeed())
	g.Expect(comp.events()).To(Equal([]string{"boot"}))

	stopped := make(chan struct{})
	g.Expect(f.host.RegisterProgram(`C:\k\wait.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		<-ctx.Done()
		close(stopped)
		return 1
	}))).To(Succeed())

	s := f.dial(t)
	_, err := s.Stat(t.Context(), `C:\`)
	g.Expect(err).NotTo(HaveOccurred())
	runErr := make(chan error, 1)
	go func() {
		_, err := s.Run(t.Context(), []string{`C:\k\wait.exe`})
		runErr <- err
	}()
	g.Eventually(func() int64 { return f.host.Stats().Commands }).Should(BeEquivalentTo(1))

	g.Expect(f.host.Reboot(t.Context(), 300*time.Millisecond)).To(Succeed())
	g.Expect(stopped).To(BeClosed(), "running programs are stopped before Reboot returns")
	g.Expect(comp.events()).To(Equal([]string{"boot", "shutdown"}))
	g.Eventually(runErr).Should(Receive(MatchError(remote.ErrConnectionLost)))
	_, err = s.Stat(t.Context(), `C:\`)
	g.Expect(err).To(MatchError(remote.ErrConnectionLost))

	// While down, new connections are refused.
	if f.host.State() == winsim.StateDown {
		_, err = f.dialer.Dial(t.Context(), f.target())
		var ue *remote.UnreachableError
		g.Expect(errors.As(err, &ue)).To(BeTrue(), "%v", err)
	}

	g.Eventually(func(ctx context.Context) error {
		s, err := f.dialer.Dial(ctx, f.target())
		if err != nil {
			return err
		}
		return s.Close()
	}).WithContext(t.Context()).WithTimeout(10 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	g.Expect(f.host.State()).To(Equal(winsim.StateUp))
	g.Expect(f.host.Stats().Boots).To(BeEquivalentTo(1))
	g.Expect(comp.events()).To(Equal([]string{"boot", "shutdown", "boot"}))
}

func TestHostKeyFingerprintAndCanonicalHostKey(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	key := f.host.HostKey()
	canon, err := remote.CanonicalHostKey(`no-pty ` + key + ` admin@win`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(canon).To(Equal(key))
	canon, err = remote.CanonicalHostKey(key + " admin@win\n")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(canon).To(Equal(key))
	fp, err := remote.HostKeyFingerprint(key)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fp).To(HavePrefix("SHA256:"))
	_, err = remote.CanonicalHostKey("ssh-ed25519")
	g.Expect(err).To(HaveOccurred())
	_, err = remote.CanonicalHostKey(key + "\n" + key)
	g.Expect(err).To(HaveOccurred())
	g.Expect(strings.Count(canon, " ")).To(Equal(1))
}

// recordingComponent records the host's lifecycle calls.
type recordingComponent struct {
	mu  sync.Mutex
	log []string
}

func (c *recordingComponent) record(e string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log = append(c.log, e)
}

func (c *recordingComponent) Boot(context.Context) error {
	c.record("boot")
	return nil
}

func (c *recordingComponent) Shutdown(context.Context) error {
	c.record("shutdown")
	return nil
}

func (c *recordingComponent) events() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.log)
}
