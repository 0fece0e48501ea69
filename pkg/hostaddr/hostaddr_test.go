package hostaddr

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestNormalizeCanonicalForms(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.42.1":               "10.1.42.1",
		" 10.1.42.1\t":            "10.1.42.1", //nolint:gocritic // the whitespace is what is being tested
		"::ffff:10.1.42.1":        "10.1.42.1",
		"::FFFF:0a01:2a01":        "10.1.42.1",
		"FD00::0042":              "fd00::42",
		"fd00:0:0:0:0:0:0:42":     "fd00::42",
		"Host.Example.COM.":       "host.example.com",
		"localhost":               "localhost",
		"127.0.0.1":               "127.0.0.1",
		"127.3.4.5":               "127.3.4.5",
		"::1":                     "::1",
		"192.0.2.7":               "192.0.2.7",
		"2001:db8::1":             "2001:db8::1",
		"64:ff9b::a01:2a01":       "64:ff9b::a01:2a01", // NAT64 of 10.1.42.1
		"169.254.169.254.nip.io":  "169.254.169.254.nip.io",
		"0x10.example.com":        "0x10.example.com",
		"169.253.255.255":         "169.253.255.255",
		"169.255.0.0":             "169.255.0.0",
		"223.255.255.255":         "223.255.255.255",
		"240.0.0.1":               "240.0.0.1",
		"255.255.255.254":         "255.255.255.254",
		"fec0::1":                 "fec0::1",
		strings.Repeat("a.", 127): strings.Repeat("a.", 126) + "a", // 253 characters and the root's dot
		"feff::1":                 "feff::1",
	} {
		t.Run(in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Normalize(in)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(want))
			g.Expect(Key(in)).To(Equal(want))
		})
	}
}

func TestNormalizeRejectsBadSyntax(t *testing.T) {
	for in, reason := range map[string]string{
		"":                              "host is empty",
		"   ":                           "host is empty",
		"10.1.42":                       "not a valid IPv4 address",
		"10.1.42.256":                   "not a valid IPv4 address",
		"010.1.42.1":                    "not a valid IPv4 address",
		"10.1.42.1.":                    "not a valid IPv4 address",
		"0xa9fea9fe":                    "not a valid IPv4 address",
		"2852039166":                    "not a valid IPv4 address",
		"bad_host":                      "neither an IP address nor a DNS name",
		"-bad.example.com":              "neither an IP address nor a DNS name",
		"10.1.42.1:22":                  "neither an IP address nor a DNS name",
		"[fd00::1]":                     "neither an IP address nor a DNS name",
		"fd00::1%eth0":                  "IPv6 zone",
		"host name":                     "neither an IP address nor a DNS name",
		strings.Repeat("a.", 127) + "a": "255 characters long",
		strings.Repeat("a", 64):         "neither an IP address nor a DNS name",
		strings.Repeat("a", 100000):     "100000 characters long",
	} {
		t.Run(in[:min(len(in), 20)], func(t *testing.T) {
			g := NewWithT(t)
			_, err := Normalize(in)
			g.Expect(err).To(MatchError(ContainSubstring(reason)))
			var fe *ForbiddenError
			g.Expect(errors.As(err, &fe)).To(BeFalse(), "a syntax error is not a ForbiddenError")
			g.Expect(len(err.Error())).To(BeNumerically("<", 400), "the error quotes no unbounded input")
		})
	}
}

func TestNormalizeRefusesForbiddenAddresses(t *testing.T) {
	cases := []struct{ in, addr, reason string }{
		{"169.254.169.254", "169.254.169.254", "cloud instance metadata address"},
		{"::ffff:169.254.169.254", "169.254.169.254", "cloud instance metadata address"},
		{"::ffff:a9fe:a9fe", "169.254.169.254", "cloud instance metadata address"},
		{"64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "NAT64 prefix"},
		{"169.254.0.1", "169.254.0.1", "link-local address (169.254.0.0/16)"},
		{"169.254.255.255", "169.254.255.255", "link-local"},
		{"fe80::1", "fe80::1", "IPv6 link-local address (fe80::/10)"},
		{"FE80::0001", "fe80::1", "IPv6 link-local"},
		{"febf:ffff::1", "febf:ffff::1", "IPv6 link-local"},
		{"224.0.0.1", "224.0.0.1", "multicast address (224.0.0.0/4)"},
		{"239.255.255.250", "239.255.255.250", "multicast"},
		{"ff02::1", "ff02::1", "IPv6 multicast address (ff00::/8)"},
		{"0.0.0.0", "0.0.0.0", "unspecified address"},
		{"::", "::", "unspecified address"},
		{"0:0:0:0:0:0:0:0", "::", "unspecified address"},
		{"::ffff:0.0.0.0", "0.0.0.0", "unspecified address"},
		{"255.255.255.255", "255.255.255.255", "broadcast address"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := Normalize(c.in)
			g.Expect(got).To(BeEmpty())
			var fe *ForbiddenError
			g.Expect(errors.As(err, &fe)).To(BeTrue(), "want *ForbiddenError, got %v", err)
			g.Expect(fe.Addr).To(Equal(c.addr))
			g.Expect(fe.Reason).To(ContainSubstring(c.reason))
			g.Expect(fe.Error()).To(HavePrefix("address " + c.addr + " is refused: it is "))
			// Refused addresses still have a key, to find what holds them.
			g.Expect(Key(c.in)).To(Equal(c.addr))
		})
	}
}

func TestCheckIP(t *testing.T) {
	g := NewWithT(t)
	g.Expect(CheckIP(netip.Addr{})).To(HaveOccurred())
	g.Expect(CheckIP(netip.MustParseAddr("127.0.0.1"))).To(Succeed(), "loopback stays allowed: simulated hosts listen there")
	g.Expect(CheckIP(netip.MustParseAddr("::1"))).To(Succeed())
	g.Expect(CheckIP(netip.MustParseAddr("10.0.0.1"))).To(Succeed())
	g.Expect(CheckIP(netip.MustParseAddr("fe80::1%eth0"))).To(MatchError(ContainSubstring("IPv6 link-local")), "a zone does not hide link-local")
	g.Expect(CheckIP(netip.MustParseAddr("fd00::1%eth0"))).To(Succeed())
	g.Expect(CheckIP(netip.MustParseAddr("64:ff9b::a01:2a01"))).To(Succeed(), "NAT64 of an allowed IPv4 address")
}

func TestKeyOfUnparsableAddresses(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Key(" Bad_Host ")).To(Equal("bad_host"))
	g.Expect(Key("WIN.example.com.")).To(Equal("win.example.com"))
}

// FuzzNormalize: Normalize never panics; what it returns normalises to
// itself and is never a forbidden IP; and a string it refuses as forbidden
// is an IP address CheckIP refuses too.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"10.1.42.1", "::ffff:169.254.169.254", "fe80::1", "FE80::1%eth0", "224.0.0.1", "0.0.0.0", "::",
		"255.255.255.255", "64:ff9b::a9fe:a9fe", "Win.Example.COM.", "0xa9fea9fe", "localhost", "127.0.0.1", " ::1 ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Normalize(s)
		key := Key(s)
		if err != nil {
			var fe *ForbiddenError
			if errors.As(err, &fe) {
				ip, perr := netip.ParseAddr(fe.Addr)
				if perr != nil || CheckIP(ip) == nil || key != fe.Addr {
					t.Fatalf("%q refused as %v, but %q is not a refused IP (key %q)", s, err, fe.Addr, key)
				}
			}
			return
		}
		if key != out {
			t.Fatalf("Key(%q) = %q, Normalize = %q", s, key, out)
		}
		again, err := Normalize(out)
		if err != nil || again != out {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q, %v", s, out, out, again, err)
		}
		if ip, perr := netip.ParseAddr(out); perr == nil {
			if CheckIP(ip) != nil {
				t.Fatalf("Normalize(%q) allowed forbidden %s", s, out)
			}
			// Whatever the spelling, the same IP is judged the same.
			if in, perr := netip.ParseAddr(strings.TrimSpace(s)); perr == nil && CheckIP(in) != nil {
				t.Fatalf("Normalize(%q) allowed %s, which CheckIP refuses", s, out)
			}
		}
	})
}
