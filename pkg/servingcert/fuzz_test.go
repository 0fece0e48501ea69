package servingcert_test

import (
	"testing"
	"time"

	"github.com/openwmco/wmco/pkg/servingcert"
)

// ParseCA never panics, and what it accepts issues certificates.
func FuzzParseCA(f *testing.F) {
	certPEM, keyPEM, err := servingcert.NewCA("fuzz", start)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, keyPEM)
	f.Add(certPEM, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), keyPEM)
	f.Fuzz(func(t *testing.T, cert, key []byte) {
		ca, err := servingcert.ParseCA(cert, key)
		if err != nil {
			return
		}
		if _, err := ca.Issue(hostRequest, ca.Cert.NotBefore.Add(time.Hour)); err != nil && ca.Cert.NotAfter.After(ca.Cert.NotBefore.Add(2*time.Hour)) {
			t.Fatalf("a parsed CA cannot issue: %v", err)
		}
	})
}
