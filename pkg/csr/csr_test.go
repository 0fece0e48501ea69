package csr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	certificatesv1 "k8s.io/api/certificates/v1"
)

const (
	boot1 = "system:bootstrap:aaaaaa"
	boot2 = "system:bootstrap:bbbbbb"
	// shared is a user name every host's credential authenticates as
	// (OpenShift's node-bootstrapper); a credential ID tells them apart.
	shared = "system:serviceaccount:openshift-machine-config-operator:node-bootstrapper"
	jtiO1  = "JTI=0d1f1e8a-0001-4000-8000-000000000001"
	jtiO2  = "JTI=0d1f1e8a-0002-4000-8000-000000000002"
)

var instances = map[string]Instance{
	"win-1": {Name: "10.1.42.1", NodeName: "win-1", BootstrapIdentities: []BootstrapIdentity{{Username: boot1}}, Addresses: []string{"10.1.42.1"}, Hostname: "WIN-1", Node: NodeAbsent},
	"win-10": {Name: "10.1.42.10", NodeName: "win-10", BootstrapIdentities: []BootstrapIdentity{{Username: boot2}}, Addresses: []string{"10.1.42.10", "fd00::10"}, Hostname: "WIN-10",
		Node: NodeOwned},
	// Owned, no hostname observed (yet).
	"win-11":    {Name: "10.1.42.11", NodeName: "win-11", Addresses: []string{"10.1.42.11"}, Node: NodeOwned},
	"win-taken": {Name: "10.1.42.3", NodeName: "win-taken", BootstrapIdentities: []BootstrapIdentity{{Username: "system:bootstrap:cccccc"}}, Node: NodeForeign},
	// OpenShift: one user name, a credential ID per host (win-o1 has two,
	// an earlier token and its renewal); win-o3 has none issued.
	"win-o1": {Name: "o1", NodeName: "win-o1", BootstrapIdentities: []BootstrapIdentity{{Username: shared, CredentialID: "JTI=old"}, {Username: shared, CredentialID: jtiO1}}, Node: NodeAbsent},
	"win-o2": {Name: "o2", NodeName: "win-o2", BootstrapIdentities: []BootstrapIdentity{{Username: shared, CredentialID: jtiO2}}, Node: NodeAbsent},
	"win-o3": {Name: "o3", NodeName: "win-o3", Node: NodeAbsent},
}

func lookup(name string) (Instance, bool) { i, ok := instances[name]; return i, ok }

type req struct {
	cn     string
	orgs   []string
	ou     []string
	dns    []string
	ips    []string
	emails []string
	uris   []string
	extra  []pkix.AttributeTypeAndValue
}

func pemCSR(t *testing.T, r req) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: r.cn, Organization: r.orgs, OrganizationalUnit: r.ou, ExtraNames: r.extra},
		DNSNames: r.dns, EmailAddresses: r.emails,
	}
	for _, ip := range r.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range r.uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

var (
	ds, ke, ca, sa = certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth, certificatesv1.UsageServerAuth
	clientSigner   = certificatesv1.KubeAPIServerClientKubeletSignerName
	servingSigner  = certificatesv1.KubeletServingSignerName
)

func TestEvaluate(t *testing.T) {
	nodes := []string{"system:nodes"}
	cases := []struct {
		name     string
		signer   string
		username string
		usages   []certificatesv1.KeyUsage
		r        req
		want     Verdict
		reason   string
	}{
		// Legitimate requests.
		{"client via bootstrap token (ECDSA usages)", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Approve, "client certificate"},
		{"client via bootstrap token (RSA usages)", clientSigner, boot1, []certificatesv1.KeyUsage{ke, ds, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Approve, ""},
		{"client renewal by the node itself", clientSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-10", orgs: nodes}, Approve, ""},
		{"client re-bootstrap of an owned node", clientSigner, boot2, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-10", orgs: nodes}, Approve, ""},
		{"serving with IPv4, IPv6 and hostname", servingSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, ke, sa},
			req{cn: "system:node:win-10", orgs: nodes, dns: []string{"win-10"}, ips: []string{"10.1.42.10", "fd00::10"}}, Approve, "serving certificate"},

		{"serving with an empty DNS name, no hostname observed", servingSigner, "system:node:win-11", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-11", orgs: nodes, dns: []string{""}, ips: []string{"10.1.42.11"}}, Pending, `DNS name "" is neither`},
		{"serving with the node name, no hostname observed", servingSigner, "system:node:win-11", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-11", orgs: nodes, dns: []string{"win-11"}, ips: []string{"10.1.42.11"}}, Approve, "serving certificate"},

		// Not ours: left alone.
		{"wrong signer", "kubernetes.io/kube-apiserver-client", boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Ignore, "not a kubelet signer"},
		{"legacy unknown signer", "example.com/signer", "system:node:win-10", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes}, Ignore, "not a kubelet signer"},
		{"unknown node name", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-99", orgs: nodes}, Ignore, "not a known Windows instance"},
		{"a Linux node's name", clientSigner, "system:bootstrap:linuxx", []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:linux-worker-0", orgs: nodes}, Ignore, "not a known Windows instance"},
		{"substring of a real name", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-", orgs: nodes}, Ignore, "not a known Windows instance"},
		{"superstring of a real name", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1x", orgs: nodes}, Ignore, "not a known Windows instance"},
		{"case variant of a real name", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:WIN-1", orgs: nodes}, Ignore, "not a known Windows instance"},
		{"CN not a node", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "win-1", orgs: nodes}, Ignore, "is not system:node:<name>"},
		{"CN with only the prefix", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:", orgs: nodes}, Ignore, "is not system:node:<name>"},

		// Forged: denied.
		{"username differs from CN (serving)", servingSigner, "system:node:win-1", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes, ips: []string{"10.1.42.10"}}, Deny, "is not the node system:node:win-10 itself"},
		{"serving requested with a bootstrap token", servingSigner, boot2, []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes, ips: []string{"10.1.42.10"}}, Deny, "is not the node"},
		{"bootstrap identity of another host", clientSigner, boot2, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Deny, "neither the bootstrap identity issued for instance 10.1.42.1"},
		{"another node renewing", clientSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Deny, "neither the bootstrap identity"},
		{"an admin requesting for a node", clientSigner, "kubernetes-admin", []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Deny, "neither the bootstrap identity"},
		{"wrong organization", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: []string{"system:masters"}}, Deny, "organization"},
		{"extra organization", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: []string{"system:nodes", "system:masters"}}, Deny, "organization"},
		{"no organization", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1"}, Deny, "organization"},
		{"organizational unit", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes, ou: []string{"x"}}, Deny, "beyond CN and O"},
		{"domain component in the subject", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes, extra: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, Value: "corp"}}}, Deny, "beyond CN and O"},
		{"UID in the subject", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes, extra: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, Value: "0"}}}, Deny, "beyond CN and O"},
		{"extra usage", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca, sa},
			req{cn: "system:node:win-1", orgs: nodes}, Deny, "usages"},
		{"missing usage", clientSigner, boot1, []certificatesv1.KeyUsage{ca},
			req{cn: "system:node:win-1", orgs: nodes}, Deny, "usages"},
		{"duplicated usage", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Deny, "usages"},
		{"server auth on a client signer", clientSigner, boot1, []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-1", orgs: nodes}, Deny, "usages"},
		{"client auth on the serving signer", servingSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-10", orgs: nodes, ips: []string{"10.1.42.10"}}, Deny, "usages"},
		{"client CSR with a SAN", clientSigner, boot1, []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes, dns: []string{"win-1"}}, Deny, "must not carry subject alternative names"},
		{"email SAN", servingSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes, emails: []string{"a@b.c"}}, Deny, "email or URI"},
		{"URI SAN", servingSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes, uris: []string{"spiffe://x"}}, Deny, "email or URI"},
		{"serving without SANs", servingSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes}, Deny, "must name the host"},
		{"client for a name held by a foreign Node", clientSigner, "system:bootstrap:cccccc", []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-taken", orgs: nodes}, Deny, "does not belong"},

		// Not yet decidable: left pending.
		{"foreign IP SAN", servingSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes, ips: []string{"10.1.42.10", "192.0.2.7"}}, Pending, "not among the host's observed addresses"},
		{"extra DNS SAN", servingSigner, "system:node:win-10", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-10", orgs: nodes, dns: []string{"win-10", "api.example.com"}}, Pending, `"api.example.com" is neither`},
		{"serving before the Node is known", servingSigner, "system:node:win-1", []certificatesv1.KeyUsage{ds, sa},
			req{cn: "system:node:win-1", orgs: nodes, ips: []string{"10.1.42.1"}}, Pending, "not yet known to belong"},
		{"renewal before the Node is known", clientSigner, "system:node:win-1", []certificatesv1.KeyUsage{ds, ca},
			req{cn: "system:node:win-1", orgs: nodes}, Pending, "not known to belong"},
	}
	approved := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			spec := &certificatesv1.CertificateSigningRequestSpec{
				SignerName: tc.signer, Username: tc.username, Usages: tc.usages, Request: pemCSR(t, tc.r),
			}
			d := Evaluate(spec, lookup)
			g.Expect(d.Verdict).To(Equal(tc.want), d.Reason)
			g.Expect(d.Reason).To(ContainSubstring(tc.reason))
			g.Expect(checkFewerIdentities(spec, d)).To(Succeed())
			if d.Verdict == Approve {
				approved++
			}
		})
	}
	NewWithT(t).Expect(approved).To(Equal(6), "exactly the six legitimate requests are approved")
}

// A user name several hosts share ties a CSR to a host only through the
// credential ID the API server put into spec.extra: exactly one value,
// exactly one issued for that host.
func TestEvaluateSharedBootstrapUser(t *testing.T) {
	ext := func(v ...string) map[string]certificatesv1.ExtraValue {
		return map[string]certificatesv1.ExtraValue{CredentialIDKey: v}
	}
	cases := []struct {
		name     string
		node     string
		username string
		extra    map[string]certificatesv1.ExtraValue
		want     Verdict
		reason   string
	}{
		{"the host's credential", "win-o1", shared, ext(jtiO1), Approve, "client certificate for instance o1"},
		{"the host's earlier credential, not revoked", "win-o1", shared, ext("JTI=old"), Approve, ""},
		{"the other host's", "win-o2", shared, ext(jtiO2), Approve, ""},
		{"another host's credential", "win-o1", shared, ext(jtiO2), Deny, `presented credential ["` + jtiO2 + `"], not one issued for instance o1`},
		{"no credential ID", "win-o1", shared, nil, Deny, "presented credential [], not one issued"},
		{"empty credential ID", "win-o1", shared, ext(""), Deny, "not one issued"},
		{"two credential IDs", "win-o1", shared, ext(jtiO1, jtiO2), Deny, "not one issued"},
		{"credential ID under another key", "win-o1", shared,
			map[string]certificatesv1.ExtraValue{"authentication.kubernetes.io/pod-uid": {jtiO1}}, Deny, "not one issued"},
		{"case variant of the credential ID", "win-o1", shared, ext(strings.ToLower(jtiO1)), Deny, "not one issued"},
		{"prefix of the credential ID", "win-o1", shared, ext(jtiO1[:10]), Deny, "not one issued"},
		{"the host's credential ID from another user", "win-o1", boot1, ext(jtiO1), Deny, "is neither the bootstrap identity"},
		{"a host with nothing issued", "win-o3", shared, ext(jtiO1), Deny, "is neither the bootstrap identity issued for instance o3"},
		{"a host issued per-host identities", "win-1", shared, ext(jtiO1), Deny, "is neither the bootstrap identity"},
		// A per-host identity needs no credential ID and ignores one.
		{"a per-host identity with a credential ID", "win-1", boot1, ext("JTI=x"), Approve, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			spec := &certificatesv1.CertificateSigningRequestSpec{
				SignerName: clientSigner, Username: tc.username, Extra: tc.extra, Usages: []certificatesv1.KeyUsage{ds, ca},
				Request: pemCSR(t, req{cn: NodeUserPrefix + tc.node, orgs: []string{NodesGroup}}),
			}
			d := Evaluate(spec, lookup)
			g.Expect(d.Verdict).To(Equal(tc.want), d.Reason)
			g.Expect(d.Reason).To(ContainSubstring(tc.reason))
			g.Expect(checkFewerIdentities(spec, d)).To(Succeed())
		})
	}
}

// checkFewerIdentities checks that d, Evaluate's decision on spec with
// lookup, stays the same when the instance's bootstrap identities are
// cut to those of the requester's user name (what Issuer.IdentitiesOf
// reads), and to none when NeedsBootstrapIdentities says they are not
// consulted: the approver reads no more than that.
func checkFewerIdentities(spec *certificatesv1.CertificateSigningRequestSpec, d Decision) error {
	cut := func(keep func(BootstrapIdentity) bool) Lookup {
		return func(name string) (Instance, bool) {
			inst, ok := lookup(name)
			inst.BootstrapIdentities = slices.DeleteFunc(slices.Clone(inst.BootstrapIdentities), func(b BootstrapIdentity) bool { return !keep(b) })
			return inst, ok
		}
	}
	if got := Evaluate(spec, cut(func(b BootstrapIdentity) bool { return b.Username == spec.Username })); got != d {
		return fmt.Errorf("with the requester's identities only: %+v, with all: %+v", got, d)
	}
	var nodeName string
	if req, err := parseRequest(spec.Request); err == nil {
		nodeName, _ = strings.CutPrefix(req.Subject.CommonName, NodeUserPrefix)
	}
	if NeedsBootstrapIdentities(spec, nodeName) {
		return nil
	}
	if got := Evaluate(spec, cut(func(BootstrapIdentity) bool { return false })); got != d {
		return fmt.Errorf("NeedsBootstrapIdentities is false, but without identities: %+v, with them: %+v", got, d)
	}
	return nil
}

func TestNeedsBootstrapIdentities(t *testing.T) {
	cases := []struct {
		name     string
		signer   string
		username string
		want     bool
	}{
		{"first client certificate, bootstrap identity", clientSigner, boot1, true},
		{"first client certificate, shared bootstrap identity", clientSigner, shared, true},
		{"client certificate by another node", clientSigner, "system:node:win-10", true},
		{"client certificate by a prefix of the node name", clientSigner, "system:node:win", true},
		{"renewal by the node itself", clientSigner, "system:node:win-1", false},
		{"serving certificate by the node", servingSigner, "system:node:win-1", false},
		{"serving certificate by a bootstrap identity (denied without them)", servingSigner, boot1, false},
		{"another signer", "example.com/signer", boot1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := &certificatesv1.CertificateSigningRequestSpec{SignerName: tc.signer, Username: tc.username}
			NewWithT(t).Expect(NeedsBootstrapIdentities(spec, "win-1")).To(Equal(tc.want))
		})
	}
}

func TestVerdictString(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Approve.String()).To(Equal("Approve"))
	g.Expect(Verdict(9).String()).To(Equal("Verdict(9)"))
}

func TestEvaluateRejectsBrokenRequests(t *testing.T) {
	g := NewWithT(t)
	spec := &certificatesv1.CertificateSigningRequestSpec{SignerName: clientSigner, Username: boot1, Usages: []certificatesv1.KeyUsage{ds, ca}, Request: []byte("garbage")}
	g.Expect(Evaluate(spec, lookup).Verdict).To(Equal(Ignore))

	good := pemCSR(t, req{cn: "system:node:win-1", orgs: []string{"system:nodes"}})
	block, _ := pem.Decode(good)
	block.Bytes[len(block.Bytes)-1] ^= 0xff // break the signature
	spec.Request = pem.EncodeToMemory(block)
	d := Evaluate(spec, lookup)
	g.Expect(d.Verdict).To(Equal(Ignore))
	g.Expect(d.Reason).To(ContainSubstring("certificate request"))
}

func FuzzEvaluate(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"), "system:node:win-1", clientSigner)
	f.Fuzz(func(t *testing.T, request []byte, username, signer string) {
		d := Evaluate(&certificatesv1.CertificateSigningRequestSpec{SignerName: signer, Username: username, Request: request,
			Usages: []certificatesv1.KeyUsage{ds, ca}}, lookup)
		if d.Verdict == Approve && username != boot1 && username != "system:node:win-10" && username != boot2 {
			t.Fatalf("approved a request from %q", username)
		}
	})
}
