package instance

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/test/winsim"
)

// cacheHost is a simulated host and a target that logs in to it.
func cacheHost(t *testing.T) (*winsim.Host, remote.Target) {
	t.Helper()
	g := NewWithT(t)
	h, err := winsim.Start(t.Context(), winsim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	signer, err := ssh.NewSignerFromKey(priv)
	g.Expect(err).NotTo(HaveOccurred())
	h.AuthorizeKey("Administrator", signer.PublicKey())
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	g.Expect(err).NotTo(HaveOccurred())
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return h, remote.Target{Address: h.IP(), Port: h.Port(), Username: "Administrator", PrivateKey: key, HostKey: h.HostKey()}
}

func cacheDial(t *testing.T, target remote.Target) remote.Session {
	t.Helper()
	s, err := (&remote.SSHDialer{}).Dial(t.Context(), target)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConnCacheReuse(t *testing.T) {
	g := NewWithT(t)
	h, target := cacheHost(t)
	key := newConnKey(target)
	other := target
	other.PrivateKey = append(remote.PrivateKey{}, target.PrivateKey...)
	other.PrivateKey[len(other.PrivateKey)-2] ^= 1
	otherHost, _ := cacheHost(t)

	cases := []struct {
		name   string
		key    connKey
		pinned string
		reused bool
	}{
		{"same key, pinned host key", key, h.HostKey(), true},
		{"same key, the pinned host key with a comment", key, h.HostKey() + " host@example", true},
		{"same key, nothing pinned yet", key, "", true},
		{"the Secret's key changed", newConnKey(other), h.HostKey(), false},
		{"the address changed", newConnKey(remote.Target{Address: "192.0.2.1", Port: target.Port, Username: target.Username, PrivateKey: target.PrivateKey}), h.HostKey(), false},
		{"another host key is pinned", key, otherHost.HostKey(), false},
	}
	for _, tc := range cases {
		c := newConnCache(time.Hour, 4)
		s := cacheDial(t, target)
		c.put("wi", key, s, time.Now())
		got := c.take("wi", tc.key, tc.pinned)
		if tc.reused {
			g.Expect(got).To(BeIdenticalTo(s), tc.name)
			g.Expect(remote.Alive(s)).To(BeTrue(), tc.name)
		} else {
			g.Expect(got).To(BeNil(), tc.name)
			g.Expect(remote.Alive(s)).To(BeFalse(), "%s: the kept connection is closed", tc.name)
		}
		g.Expect(c.len()).To(BeZero(), "%s: taken out", tc.name)
		g.Expect(c.take("wi", key, "")).To(BeNil(), "%s: taken once", tc.name)
	}
	// The host counts a connection once its side of the handshake is
	// done, which may come after the client's.
	g.Eventually(func() int64 { return h.Stats().Connections }).Should(BeEquivalentTo(len(cases)))
}

func TestConnCacheCloses(t *testing.T) {
	g := NewWithT(t)
	h, target := cacheHost(t)
	key := newConnKey(target)

	// A connection the host dropped is not handed out.
	c := newConnCache(time.Hour, 4)
	s := cacheDial(t, target)
	c.put("wi", key, s, time.Now())
	h.ResetConnections()
	g.Eventually(func() bool { return remote.Alive(s) }).WithTimeout(10 * time.Second).Should(BeFalse())
	g.Expect(c.take("wi", key, "")).To(BeNil())

	// drop closes (the instance is deleted or paused).
	s = cacheDial(t, target)
	c.put("wi", key, s, time.Now())
	c.drop("wi")
	g.Expect(remote.Alive(s)).To(BeFalse())
	g.Expect(c.len()).To(BeZero())

	// An idle connection is closed after the idle timeout.
	c = newConnCache(50*time.Millisecond, 4)
	s = cacheDial(t, target)
	c.put("wi", key, s, time.Now())
	g.Eventually(c.len).WithTimeout(5 * time.Second).Should(BeZero())
	g.Expect(remote.Alive(s)).To(BeFalse())

	// The cache is bounded: the least recently used connection goes.
	c = newConnCache(time.Hour, 2)
	now := time.Now()
	a, b, d := cacheDial(t, target), cacheDial(t, target), cacheDial(t, target)
	c.put("b", key, b, now.Add(2*time.Second))
	c.put("a", key, a, now)
	c.put("d", key, d, now.Add(3*time.Second))
	g.Expect(c.len()).To(Equal(2))
	g.Expect(remote.Alive(a)).To(BeFalse(), "least recently used")
	g.Expect(c.take("b", key, "")).To(BeIdenticalTo(b))
	g.Expect(c.take("d", key, "")).To(BeIdenticalTo(d))

	// trim keeps the most recently used ones.
	c = newConnCache(time.Hour, 4)
	a, b, d = cacheDial(t, target), cacheDial(t, target), cacheDial(t, target)
	c.put("a", key, a, now)
	c.put("b", key, b, now.Add(time.Second))
	c.put("d", key, d, now.Add(2*time.Second))
	c.trim(1)
	g.Expect(c.len()).To(Equal(1))
	g.Expect(remote.Alive(a)).To(BeFalse())
	g.Expect(remote.Alive(b)).To(BeFalse())
	g.Expect(c.take("d", key, "")).To(BeIdenticalTo(d))
	c.put("d", key, d, now)
	c.trim(-1)
	g.Expect(c.len()).To(BeZero())
	g.Expect(remote.Alive(d)).To(BeFalse())

	// A parked connection (a host waiting for a slot) is left by trim,
	// outlives the idle timeout, and goes after the others when the
	// cache is full.
	c = newConnCache(50*time.Millisecond, 2)
	a, b, d = cacheDial(t, target), cacheDial(t, target), cacheDial(t, target)
	c.park("a", key, a, now)
	c.put("b", key, b, now.Add(time.Second))
	c.trim(0)
	g.Expect(remote.Alive(b)).To(BeFalse(), "trimmed")
	g.Expect(c.len()).To(Equal(1))
	g.Consistently(c.len).WithTimeout(300*time.Millisecond).Should(Equal(1), "parked beyond the idle timeout")
	e := cacheDial(t, target)
	c.put("d", key, d, now.Add(2*time.Second))
	c.put("e", key, e, now.Add(3*time.Second))
	g.Expect(remote.Alive(d)).To(BeFalse(), "the cache is full: the kept one goes before the parked one")
	g.Expect(c.take("a", key, "")).To(BeIdenticalTo(a))
	g.Eventually(c.len).WithTimeout(5 * time.Second).Should(BeZero())

	// Putting a second connection for an instance closes the first.
	c = newConnCache(time.Hour, 4)
	a, b = cacheDial(t, target), cacheDial(t, target)
	c.put("wi", key, a, now)
	c.put("wi", key, b, now)
	g.Expect(remote.Alive(a)).To(BeFalse())
	g.Expect(c.take("wi", key, "")).To(BeIdenticalTo(b))

	// A nil cache keeps nothing.
	var none *connCache
	s = cacheDial(t, target)
	none.put("wi", key, s, now)
	g.Expect(remote.Alive(s)).To(BeFalse())
	g.Expect(none.take("wi", key, "")).To(BeNil())
}
