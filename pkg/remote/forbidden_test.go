package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/hostaddr"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/test/winsim"
)

// countingListener accepts TCP connections on loopback and counts them.
type countingListener struct {
	ln       net.Listener
	accepted atomic.Int64
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			_ = c.Close()
		}
	}()
	return l
}

func (l *countingListener) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

// guardedDialer is an SSHDialer whose every connection attempt is counted
// and, unless it is to loopback, refused without opening a socket: the
// tests never reach beyond this machine.
func guardedDialer(lookup map[string][]netip.Addr) (*remote.SSHDialer, *atomic.Int64) {
	var attempts atomic.Int64
	d := &remote.SSHDialer{LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
		ips, ok := lookup[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return ips, nil
	}}
	remote.SetDialContext(d, func(ctx context.Context, network, address string) (net.Conn, error) {
		attempts.Add(1)
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !ap.Addr().IsLoopback() {
			return nil, fmt.Errorf("test dialer: %s is not loopback; not dialling it", address)
		}
		var nd net.Dialer
		return nd.DialContext(ctx, network, address)
	})
	return d, &attempts
}

// The acceptance addresses, and other spellings of them, are refused with
// a typed error before any connection is attempted: as literals, and as
// names resolving to them (alone, or beside a loopback address that a
// listener counts the connections of).
func TestDialRefusesForbiddenAddresses(t *testing.T) {
	f := newFixture(t, winsim.Options{})
	ln := newCountingListener(t)
	cases := []struct{ addr, ip, reason string }{
		{"169.254.169.254", "169.254.169.254", "cloud instance metadata address"},
		{"fe80::1", "fe80::1", "IPv6 link-local address"},
		{"[fe80::1%lo]", "fe80::1", "IPv6 link-local address"},
		{"224.0.0.1", "224.0.0.1", "multicast address"},
		{"0.0.0.0", "0.0.0.0", "unspecified address"},
		{"::", "::", "unspecified address"},
		{"255.255.255.255", "255.255.255.255", "broadcast address"},
		{"::ffff:169.254.169.254", "169.254.169.254", "cloud instance metadata address"},
		{"ff02::1", "ff02::1", "IPv6 multicast address"},
	}
	lookup := map[string][]netip.Addr{}
	for i, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		lookup[fmt.Sprintf("only-%d.forbidden.test", i)] = []netip.Addr{ip}
		// The refused address comes second: every address is checked
		// before the first is dialled.
		lookup[fmt.Sprintf("mixed-%d.forbidden.test", i)] = []netip.Addr{netip.MustParseAddr("127.0.0.1"), ip}
	}
	d, attempts := guardedDialer(lookup)

	for i, c := range cases {
		for _, addr := range []string{c.addr, fmt.Sprintf("only-%d.forbidden.test", i), fmt.Sprintf("mixed-%d.forbidden.test", i)} {
			t.Run(addr, func(t *testing.T) {
				g := NewWithT(t)
				target := f.target()
				target.Address = addr
				target.Port = ln.port()
				_, err := d.Dial(t.Context(), target)

				var fa *remote.ForbiddenAddressError
				g.Expect(errors.As(err, &fa)).To(BeTrue(), "want *ForbiddenAddressError, got %v", err)
				g.Expect(fa.Err.Addr).To(Equal(netip.MustParseAddr(c.ip).String()))
				g.Expect(fa.Err.Reason).To(ContainSubstring(c.reason))
				var fe *hostaddr.ForbiddenError
				g.Expect(errors.As(err, &fe)).To(BeTrue(), "it unwraps to the hostaddr error")
				g.Expect(err.Error()).To(HavePrefix("refusing to connect to "))
				g.Expect(err.Error()).To(ContainSubstring(c.reason))
				if addr != c.addr {
					g.Expect(err.Error()).To(ContainSubstring("the name resolves to " + fa.Err.Addr))
				}
				var ue *remote.UnreachableError
				g.Expect(errors.As(err, &ue)).To(BeFalse(), "not a transient error")
			})
		}
	}
	g := NewWithT(t)
	g.Expect(attempts.Load()).To(BeZero(), "no connection was attempted")
	g.Expect(ln.accepted.Load()).To(BeZero(), "the listener saw no connection")
	g.Expect(f.host.Stats().Connections).To(BeZero())
}

// Names are resolved with LookupIP and the checked address is dialled:
// host-key pinning works as with a literal address, and errors name the
// host as given.
func TestDialResolvesNamesAndPinsTheHostKey(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	d, attempts := guardedDialer(map[string][]netip.Addr{
		"win.resolve.test":   {netip.MustParseAddr(f.host.IP())},
		"other.resolve.test": {netip.MustParseAddr(f.host.IP())},
	})

	target := f.target()
	target.Address = "win.resolve.test"
	s, err := d.Dial(t.Context(), target)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.HostKey()).To(Equal(f.host.HostKey()))
	g.Expect(s.Close()).To(Succeed())
	g.Expect(attempts.Load()).To(Equal(int64(1)))

	// A pinned key other than the host's fails the dial as before.
	other := newFixture(t, winsim.Options{})
	target.Address = "other.resolve.test"
	target.HostKey = other.host.HostKey()
	_, err = d.Dial(t.Context(), target)
	var mm *remote.HostKeyMismatchError
	g.Expect(errors.As(err, &mm)).To(BeTrue(), "%v", err)
	g.Expect(mm.Address).To(Equal(net.JoinHostPort("other.resolve.test", strconv.Itoa(f.host.Port()))))

	// A name that does not resolve is unreachable (transient), not refused.
	target.Address = "missing.resolve.test"
	_, err = d.Dial(t.Context(), target)
	var ue *remote.UnreachableError
	g.Expect(errors.As(err, &ue)).To(BeTrue(), "%v", err)
	g.Expect(attempts.Load()).To(Equal(int64(2)))
}

// Of several resolved addresses, the first that accepts is used.
func TestDialTriesResolvedAddressesInTurn(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	// 127.0.0.2 has no listener on the port (connection refused).
	d, attempts := guardedDialer(map[string][]netip.Addr{
		"two.resolve.test": {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr(f.host.IP())},
	})
	target := f.target()
	target.Address = "two.resolve.test"
	s, err := d.Dial(t.Context(), target)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.Close()).To(Succeed())
	g.Expect(attempts.Load()).To(Equal(int64(2)))
}
