package servingcert_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/servingcert"
)

var start = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

func newCA(t *testing.T) *servingcert.CA {
	t.Helper()
	certPEM, keyPEM, err := servingcert.NewCA("test-ca", start)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := servingcert.ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func pool(ca *servingcert.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

var hostRequest = servingcert.Request{
	CommonName: "win-a",
	DNSNames:   []string{"win-a"},
	IPs:        []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")},
}

// An issued certificate verifies against its CA for each of its names
// and addresses, and for nothing else; it serves TLS.
func TestIssueVerifies(t *testing.T) {
	ca := newCA(t)
	issued, err := ca.Issue(hostRequest, start.Add(time.Hour))
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	cert, err := servingcert.ParseCertificate(issued.CertPEM)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"win-a", true},
		{"10.0.0.5", true},
		{"fd00::5", true},
		{"win-b", false},
		{"10.0.0.6", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := cert.Verify(x509.VerifyOptions{
				DNSName: tc.name, Roots: pool(ca), CurrentTime: start.Add(2 * time.Hour),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if tc.ok {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(HaveOccurred())
			}
		})
	}
	_, err = tls.X509KeyPair(issued.CertPEM, issued.KeyPEM)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	// Another CA does not vouch for it.
	_, err = cert.Verify(x509.VerifyOptions{DNSName: "win-a", Roots: pool(newCA(t)), CurrentTime: start.Add(2 * time.Hour)})
	NewWithT(t).Expect(err).To(HaveOccurred())
}

// The same CA, request and period give the same bytes (a host's plan
// does not change between reconciles); a new period, other names or
// another CA give another certificate and key.
func TestIssueIsDeterministic(t *testing.T) {
	g := NewWithT(t)
	ca := newCA(t)
	now := start.Add(48 * time.Hour)
	a, err := ca.Issue(hostRequest, now)
	g.Expect(err).NotTo(HaveOccurred())
	reordered := servingcert.Request{
		CommonName: "win-a", DNSNames: []string{"win-a", "win-a"},
		IPs: []netip.Addr{netip.MustParseAddr("fd00::5"), netip.MustParseAddr("::ffff:10.0.0.5")},
	}
	b, err := ca.Issue(reordered, now.Add(24*time.Hour))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(b).To(Equal(a), "same request, same period")

	other, err := ca.Issue(servingcert.Request{CommonName: "win-b", DNSNames: []string{"win-b"}, IPs: hostRequest.IPs}, now)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(other.CertPEM).NotTo(Equal(a.CertPEM))
	g.Expect(other.KeyPEM).NotTo(Equal(a.KeyPEM))

	next, err := ca.Issue(hostRequest, a.RenewAt)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(next.CertPEM).NotTo(Equal(a.CertPEM))
	g.Expect(next.KeyPEM).NotTo(Equal(a.KeyPEM))
	g.Expect(next.RenewAt).To(Equal(a.RenewAt.Add(servingcert.RenewalPeriod)))

	again, err := newCA(t).Issue(hostRequest, now)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.CertPEM).NotTo(Equal(a.CertPEM))
}

// A certificate is renewed long before it expires: at RenewAt it still
// has Validity - RenewalPeriod to run; it is never valid past its CA.
func TestIssueValidity(t *testing.T) {
	ca := newCA(t)
	for _, tc := range []struct {
		name string
		now  time.Time
	}{
		{"first period", start},
		{"mid period", start.Add(45 * 24 * time.Hour)},
		{"a year on", start.Add(400 * 24 * time.Hour)},
		{"last months of the CA", ca.Cert.NotAfter.Add(-10 * 24 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			issued, err := ca.Issue(hostRequest, tc.now)
			g.Expect(err).NotTo(HaveOccurred())
			cert, err := servingcert.ParseCertificate(issued.CertPEM)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cert.NotBefore).NotTo(BeTemporally(">", tc.now))
			g.Expect(cert.NotAfter).To(BeTemporally(">", tc.now))
			g.Expect(cert.NotAfter).NotTo(BeTemporally(">", ca.Cert.NotAfter))
			g.Expect(issued.RenewAt).To(BeTemporally(">", tc.now))
			g.Expect(issued.RenewAt).NotTo(BeTemporally(">", tc.now.Add(servingcert.RenewalPeriod)))
			if cert.NotAfter.Before(ca.Cert.NotAfter) {
				g.Expect(cert.NotAfter.Sub(issued.RenewAt)).To(BeNumerically(">=", servingcert.Validity-servingcert.RenewalPeriod-time.Second))
			}
			g.Expect(cert.ExtKeyUsage).To(Equal([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}))
			g.Expect(cert.IsCA).To(BeFalse())
		})
	}
	_, err := ca.Issue(hostRequest, ca.Cert.NotAfter)
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("expired")))
	_, err = ca.Issue(hostRequest, start.Add(-24*time.Hour))
	NewWithT(t).Expect(err).To(HaveOccurred())
	_, err = ca.Issue(servingcert.Request{}, start)
	NewWithT(t).Expect(err).To(HaveOccurred())
}

// ParseCA refuses what is not a CA with its key, and never quotes the
// key.
func TestParseCA(t *testing.T) {
	certPEM, keyPEM, err := servingcert.NewCA("a", start)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	otherCert, otherKey, err := servingcert.NewCA("b", start)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	leaf, err := newCA(t).Issue(hostRequest, start)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, tc := range []struct {
		name       string
		cert, key  []byte
		errMatches string
	}{
		{"ok", certPEM, keyPEM, ""},
		{"key of another CA", certPEM, otherKey, "does not match"},
		{"certificate of another CA", otherCert, keyPEM, "does not match"},
		{"not a CA", leaf.CertPEM, leaf.KeyPEM, "not a CA"},
		{"no certificate", nil, keyPEM, "no PEM CERTIFICATE"},
		{"garbage key", certPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "not a PKCS #8 key"},
		{"no key", certPEM, nil, "no PEM PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := servingcert.ParseCA(tc.cert, tc.key)
			if tc.errMatches == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.errMatches)))
			g.Expect(err.Error()).NotTo(ContainSubstring("PRIVATE KEY-----"))
			for _, line := range strings.Split(string(tc.key), "\n") {
				if len(line) > 8 && !strings.HasPrefix(line, "-----") {
					g.Expect(err.Error()).NotTo(ContainSubstring(line))
				}
			}
		})
	}
}

func TestServiceNames(t *testing.T) {
	g := NewWithT(t)
	g.Expect(servingcert.ServiceDNSNames("wmco-metrics", "ns", "")).To(Equal([]string{"wmco-metrics.ns.svc", "wmco-metrics.ns.svc.cluster.local"}))
	g.Expect(servingcert.ServiceDNSNames("x", "ns", "example.org.")).To(Equal([]string{"x.ns.svc", "x.ns.svc.example.org"}))
	g.Expect(servingcert.ServerName("windows-exporter", "ns")).To(Equal("windows-exporter.ns.svc"))
}
