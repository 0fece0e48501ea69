package bootstrap

import (
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// namedReader is a client.Reader told apart by its name; it is never
// read through.
type namedReader struct {
	client.Reader
	name string
}

// namedClient is a client.Client told apart by its name.
type namedClient struct {
	client.Client
	name string
}

// Both issuers read through their own Reader, else their Client;
// ReadingFrom fills in a Reader they were not given and keeps one they
// were, without changing the issuer it was called on.
func TestIssuersReader(t *testing.T) {
	own, live := namedReader{name: "own"}, namedReader{name: "live"}
	c := namedClient{name: "client"}
	cases := []struct {
		name string
		// issuer returns an issuer with Client c and Reader r (nil for
		// none), and a function returning its reader().
		issuer func(r client.Reader) (Issuer, func(Issuer) client.Reader)
	}{
		{"Tokens", func(r client.Reader) (Issuer, func(Issuer) client.Reader) {
			return &Tokens{Client: c, Reader: r}, func(i Issuer) client.Reader { return i.(*Tokens).reader() }
		}},
		{"NodeBootstrapper", func(r client.Reader) (Issuer, func(Issuer) client.Reader) {
			return &NodeBootstrapper{Client: c, Reader: r}, func(i Issuer) client.Reader { return i.(*NodeBootstrapper).reader() }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			bare, reader := tc.issuer(nil)
			g.Expect(reader(bare)).To(Equal(client.Reader(c)), "the Client without a Reader")
			g.Expect(reader(bare.ReadingFrom(live))).To(Equal(client.Reader(live)), "ReadingFrom fills in the Reader")
			g.Expect(reader(bare)).To(Equal(client.Reader(c)), "the original is unchanged")

			withOwn, reader := tc.issuer(own)
			g.Expect(reader(withOwn)).To(Equal(client.Reader(own)))
			g.Expect(reader(withOwn.ReadingFrom(live))).To(Equal(client.Reader(own)), "a Reader given is kept")
		})
	}
}
