package remote_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"io"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/test/winsim"
)

const testUser = "Administrator"

// fixture is a simulated host with an authorised key.
type fixture struct {
	host   *winsim.Host
	key    []byte // OpenSSH-encoded private key
	dialer *remote.SSHDialer
}

func newFixture(t testing.TB, opts winsim.Options) *fixture {
	t.Helper()
	g := NewWithT(t)
	h, err := winsim.Start(t.Context(), opts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	signer, pemBytes := newEd25519Key(t)
	h.AuthorizeKey(testUser, signer.PublicKey())
	return &fixture{host: h, key: pemBytes, dialer: &remote.SSHDialer{}}
}

func (f *fixture) target() remote.Target {
	return remote.Target{
		Address:    f.host.IP(),
		Port:       f.host.Port(),
		Username:   testUser,
		PrivateKey: f.key,
		HostKey:    f.host.HostKey(),
	}
}

// dial opens a session that is closed when the test ends.
func (f *fixture) dial(t testing.TB) remote.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := f.dialer.Dial(ctx, f.target())
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newEd25519Key(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

// payload returns n pseudo-random bytes and their sha256.
func payload(n int, seed uint64) ([]byte, string) {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// notifyReader calls fn once after n bytes have been read through it.
type notifyReader struct {
	r    io.Reader
	n    int64
	fn   func()
	read int64
	once sync.Once
}

func (r *notifyReader) Read(p []byte) (int, error) {
	k, err := r.r.Read(p)
	r.read += int64(k)
	if r.read >= r.n {
		r.once.Do(r.fn)
	}
	return k, err
}

// freezableProxy forwards TCP connections to a target until frozen; then
// it stops forwarding in both directions but keeps the sockets open, like a
// peer that vanished without closing anything.
type freezableProxy struct {
	ln      net.Listener
	target  string
	frozen  chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newFreezableProxy(t *testing.T, target string) *freezableProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezableProxy{ln: ln, target: target, frozen: make(chan struct{}), stopped: make(chan struct{})}
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		close(p.stopped)
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *freezableProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			<-p.stopped // hold the sockets open, forward nothing
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *freezableProxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

func (p *freezableProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }
