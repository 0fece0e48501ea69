package csr

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
)

// fuzzKey signs every generated request: signing with Ed25519 is cheap and
// the key plays no part in the rules.
var fuzzKey = func() ed25519.PrivateKey {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return key
}()

// fuzzUsages are the usages a bit mask picks from, a duplicate included.
var fuzzUsages = []certificatesv1.KeyUsage{ds, ke, ca, sa, ca, certificatesv1.UsageCertSign}

// splitList splits a comma-separated fuzz field; "" is no element.
func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// FuzzEvaluateGenerated builds well-formed, correctly signed CSRs from
// fuzzed subjects, SANs, usages, signers and requesters, and checks that
// whatever Evaluate approves satisfies every rule the package states, and
// that it never judges (approves or denies) a CSR that names no known
// instance. The requester's credential IDs (comma-separated, "" for no
// extra) tie a shared bootstrap user to a host.
func FuzzEvaluateGenerated(f *testing.F) {
	const nodes = "system:nodes"
	// Seeds: the approvable shapes of TestEvaluate and near misses.
	f.Add("system:node:win-1", nodes, "", "", "", "", boot1, false, uint8(0b0101), false, "")
	f.Add("system:node:win-1", nodes, "", "", "", "", boot1, false, uint8(0b0111), false, "")
	f.Add("system:node:win-10", nodes, "", "", "", "", "system:node:win-10", false, uint8(0b0101), false, "")
	f.Add("system:node:win-10", nodes, "", "", "", "", boot2, false, uint8(0b0101), false, "")
	f.Add("system:node:win-10", nodes, "", "win-10,WIN-10", "10.1.42.10,fd00::10", "", "system:node:win-10", true, uint8(0b1011), false, "")
	f.Add("system:node:win-10", nodes, "", "win-10", "192.0.2.7", "", "system:node:win-10", true, uint8(0b1001), false, "")
	f.Add("system:node:win-taken", nodes, "", "", "", "", "system:bootstrap:cccccc", false, uint8(0b0101), false, "")
	f.Add("system:node:win-1", nodes+",system:masters", "x", "", "", "a@b.c", boot1, false, uint8(0b0101), true, "")
	f.Add("system:node:win-10", nodes, "", "", "10.1.42.10", "spiffe://x", "system:node:win-10", true, uint8(0b11001), false, "")
	// A shared bootstrap user: the host's credential ID, another host's,
	// two, none.
	f.Add("system:node:win-o1", nodes, "", "", "", "", shared, false, uint8(0b0101), false, jtiO1)
	f.Add("system:node:win-o1", nodes, "", "", "", "", shared, false, uint8(0b0101), false, jtiO2)
	f.Add("system:node:win-o1", nodes, "", "", "", "", shared, false, uint8(0b0101), false, jtiO1+","+jtiO1)
	f.Add("system:node:win-o2", nodes, "", "", "", "", shared, false, uint8(0b0101), false, "")
	f.Fuzz(func(t *testing.T, cn, orgs, ous, dns, ips, emailOrURI, username string, serving bool, usageMask uint8, extra bool, credentialIDs string) {
		tmpl := &x509.CertificateRequest{
			Subject:  pkix.Name{CommonName: cn, Organization: splitList(orgs), OrganizationalUnit: splitList(ous)},
			DNSNames: splitList(dns),
		}
		if extra {
			tmpl.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, Value: "corp"}}
		}
		for _, s := range splitList(ips) {
			if ip := net.ParseIP(s); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		}
		if strings.Contains(emailOrURI, "@") {
			tmpl.EmailAddresses = []string{emailOrURI}
		} else if u, err := url.Parse(emailOrURI); err == nil && emailOrURI != "" {
			tmpl.URIs = []*url.URL{u}
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, fuzzKey)
		if err != nil {
			return // not encodable (e.g. a non-ASCII DNS name): no CSR to judge
		}
		var usages []certificatesv1.KeyUsage
		for i, u := range fuzzUsages {
			if usageMask&(1<<i) != 0 {
				usages = append(usages, u)
			}
		}
		signer := clientSigner
		if serving {
			signer = servingSigner
		}
		spec := &certificatesv1.CertificateSigningRequestSpec{SignerName: signer, Username: username, Usages: usages,
			Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})}
		if credentialIDs != "" {
			spec.Extra = map[string]certificatesv1.ExtraValue{CredentialIDKey: strings.Split(credentialIDs, ",")}
		}
		d := Evaluate(spec, lookup)
		if err := checkFewerIdentities(spec, d); err != nil {
			t.Fatal(err)
		}

		// What the request says once encoded (the encoder may normalise).
		parsed, err := x509.ParseCertificateRequest(der)
		if err != nil {
			// crypto/x509 encodes some requests it refuses to parse
			// (a URI "//.": invalid domain); the approver parses with
			// it too, so such a request must never be approved.
			if d.Verdict == Approve {
				t.Fatalf("approved a request that does not parse: %v", err)
			}
			return
		}
		nodeName, isNode := strings.CutPrefix(parsed.Subject.CommonName, NodeUserPrefix)
		inst, known := lookup(nodeName)
		known = known && isNode && nodeName != ""
		if !known {
			if d.Verdict != Ignore {
				t.Fatalf("%v for CN %q, which names no known instance (%s)", d.Verdict, parsed.Subject.CommonName, d.Reason)
			}
			return
		}
		if d.Verdict != Ignore && d.Instance != inst.Name {
			t.Fatalf("decision names instance %q, the CN names %q", d.Instance, inst.Name)
		}
		if d.Verdict != Approve {
			return
		}
		// Every rule holds for an approved request.
		fail := func(rule string) {
			t.Fatalf("approved %+v (usages %v, requester %q, signer %s) although %s", parsed.Subject, usages, username, signer, rule)
		}
		if !slices.Equal(parsed.Subject.Organization, []string{NodesGroup}) {
			fail("the organization is not exactly system:nodes")
		}
		if len(parsed.Subject.OrganizationalUnit) > 0 || len(parsed.Subject.Names) != 2 || len(parsed.Subject.ExtraNames) > 0 {
			fail("the subject has attributes beyond CN and O")
		}
		if len(parsed.EmailAddresses)+len(parsed.URIs) > 0 {
			fail("it has an email or URI SAN")
		}
		if slices.Contains(usages, certificatesv1.UsageCertSign) || len(usages) != len(slices.Compact(slices.Sorted(slices.Values(usages)))) {
			fail("its usages are not one of the allowed sets")
		}
		if !slices.Contains(usages, ds) {
			fail("digital signature is missing")
		}
		if !serving {
			if !slices.Contains(usages, ca) || slices.Contains(usages, sa) {
				fail("a client certificate must have client auth and only it")
			}
			if len(parsed.DNSNames)+len(parsed.IPAddresses) > 0 {
				fail("a client certificate carries SANs")
			}
			switch {
			case username == parsed.Subject.CommonName:
				if inst.Node != NodeOwned {
					fail("a renewal for a Node the instance does not own")
				}
			case slices.ContainsFunc(inst.BootstrapIdentities, func(b BootstrapIdentity) bool {
				return b.Username == username && (b.CredentialID == "" || credentialIDs == b.CredentialID)
			}):
				if inst.Node == NodeForeign {
					fail("the bootstrap identity claims a foreign Node")
				}
			default:
				fail("the requester is neither the node nor its bootstrap identity (with its credential ID)")
			}
			return
		}
		if !slices.Contains(usages, sa) || slices.Contains(usages, ca) {
			fail("a serving certificate must have server auth and only it")
		}
		if username != parsed.Subject.CommonName || inst.Node != NodeOwned {
			fail("a serving certificate is requested by someone other than its owned node")
		}
		if len(parsed.DNSNames)+len(parsed.IPAddresses) == 0 {
			fail("a serving certificate names no host")
		}
		for _, n := range parsed.DNSNames {
			if n != nodeName && !strings.EqualFold(n, inst.Hostname) {
				fail("a DNS name is neither the node name nor the hostname")
			}
		}
		for _, ip := range parsed.IPAddresses {
			if !containsIP(inst.Addresses, ip) {
				fail("an IP address is not the host's")
			}
		}
	})
}
