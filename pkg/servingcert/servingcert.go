/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package servingcert is the operator's own certificate authority for
// serving certificates on plain Kubernetes: windows_exporter on every host
// and the operator's metrics endpoint. On OpenShift the cluster's service
// CA signs them instead.
//
// Certificates are issued deterministically: the same CA, request and
// renewal period always give the same key and certificate bytes (Ed25519
// keys derived from the CA's key, Ed25519 signatures, which are
// deterministic). A host's plan, which holds its certificate, therefore
// changes only when the certificate must: a new period (every
// RenewalPeriod, long before the Validity runs out), other names or
// addresses, or another CA. Nothing has to be stored per host. The
// package does no I/O and reads no clock.
package servingcert

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"strings"
	"time"
)

const (
	// CAValidity is how long a CA made by NewCA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// Validity is how long an issued certificate is valid.
	Validity = 90 * 24 * time.Hour
	// RenewalPeriod is how often a new certificate is issued for the same
	// request: a certificate is replaced when it still has
	// Validity - RenewalPeriod (60 days) to run.
	RenewalPeriod = 30 * 24 * time.Hour
	// Backdate is how far before its period a certificate's NotBefore
	// lies, for clocks that lag.
	Backdate = time.Hour
)

// CA is a certificate authority: its certificate and Ed25519 key.
type CA struct {
	// Cert is the CA's certificate; CertPEM its PEM encoding.
	Cert    *x509.Certificate
	CertPEM []byte
	key     ed25519.PrivateKey
}

// NewCA makes a CA valid from now (backdated by Backdate) for CAValidity,
// its subject's common name cn. It returns the certificate and the
// PKCS #8 key, PEM encoded.
func NewCA(cn string, now time.Time) (certPEM, keyPEM []byte, err error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:              now.Add(CAValidity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	return encodePair(der, key)
}

// ParseCA reads a CA made by NewCA. The error never quotes the key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("CA certificate: not a CA")
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("CA key: no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("CA key: not a PKCS #8 key")
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("CA key: not an Ed25519 key")
	}
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("CA key: does not match the CA certificate")
	}
	return &CA{Cert: cert, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), key: key}, nil
}

// ParseCertificate reads the first PEM CERTIFICATE of data.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Request names what a serving certificate is for.
type Request struct {
	// CommonName of the subject.
	CommonName string
	// DNSNames and IPs are its subject alternative names.
	DNSNames []string
	IPs      []netip.Addr
}

// canonical is the request with sorted, unique names, and the bytes that
// identify it in the key derivation.
func (r Request) canonical() (Request, []byte) {
	out := Request{CommonName: r.CommonName, DNSNames: slices.Clone(r.DNSNames)}
	for _, ip := range r.IPs {
		out.IPs = append(out.IPs, ip.Unmap().WithZone(""))
	}
	slices.Sort(out.DNSNames)
	out.DNSNames = slices.Compact(out.DNSNames)
	slices.SortFunc(out.IPs, func(a, b netip.Addr) int { return a.Compare(b) })
	out.IPs = slices.Compact(out.IPs)
	var id bytes.Buffer
	id.WriteString(out.CommonName)
	for _, n := range out.DNSNames {
		id.WriteString("\x00dns:" + n)
	}
	for _, ip := range out.IPs {
		id.WriteString("\x00ip:" + ip.String())
	}
	return out, id.Bytes()
}

// Issued is a serving certificate and its key, PEM encoded.
type Issued struct {
	CertPEM []byte
	// KeyPEM is the PKCS #8 private key: a credential.
	KeyPEM []byte
	// RenewAt is when the next period begins and a new certificate is
	// issued for the same request.
	RenewAt time.Time
}

// Issue signs a serving certificate for r valid in the renewal period
// that holds now: from the period's start (backdated) for Validity, never
// past the CA's own expiry. The same CA, request and period give the same
// bytes.
func (ca *CA) Issue(r Request, now time.Time) (*Issued, error) {
	req, id := r.canonical()
	if req.CommonName == "" && len(req.DNSNames) == 0 && len(req.IPs) == 0 {
		return nil, errors.New("a certificate needs a name")
	}
	epoch := ca.Cert.NotBefore
	if now.Before(epoch) {
		return nil, fmt.Errorf("the CA is not valid before %s", epoch.Format(time.RFC3339))
	}
	period := int64(now.Sub(epoch) / RenewalPeriod)
	start := epoch.Add(time.Duration(period) * RenewalPeriod)
	notAfter := start.Add(Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !now.Before(notAfter) {
		return nil, fmt.Errorf("the CA expired at %s", ca.Cert.NotAfter.Format(time.RFC3339))
	}
	derive := func(purpose string) []byte {
		m := hmac.New(sha256.New, ca.key.Seed())
		fmt.Fprintf(m, "%s\x00%d\x00", purpose, period)
		m.Write(id)
		return m.Sum(nil)
	}
	key := ed25519.NewKeyFromSeed(derive("key"))
	serial := new(big.Int).SetBytes(derive("serial")[:16])
	serial.SetBit(serial, 127, 0)
	serial.Add(serial, big.NewInt(1)) // positive, never zero
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.CommonName},
		NotBefore:    start.Add(-Backdate).UTC().Truncate(time.Second),
		NotAfter:     notAfter.UTC().Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     req.DNSNames,
	}
	for _, ip := range req.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	// Ed25519 signs without randomness: the reader is never used.
	der, err := x509.CreateCertificate(failReader{}, tmpl, ca.Cert, key.Public(), crypto.Signer(ca.key))
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", req.CommonName, err)
	}
	certPEM, keyPEM, err := encodePair(der, key)
	if err != nil {
		return nil, err
	}
	return &Issued{CertPEM: certPEM, KeyPEM: keyPEM, RenewAt: start.Add(RenewalPeriod)}, nil
}

// failReader makes any use of randomness in Issue an error, so that a
// change of crypto/x509 cannot silently make issuing non-deterministic.
type failReader struct{}

func (failReader) Read([]byte) (int, error) {
	return 0, errors.New("servingcert: issuing must not need randomness")
}

func encodePair(der []byte, key ed25519.PrivateKey) (certPEM, keyPEM []byte, err error) {
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}

// ServiceDNSNames are the names a Service's serving certificate holds,
// as OpenShift's service CA gives them: name.namespace.svc and
// name.namespace.svc.<domain> (domain "cluster.local" when empty).
func ServiceDNSNames(name, namespace, domain string) []string {
	if domain == "" {
		domain = "cluster.local"
	}
	svc := name + "." + namespace + ".svc"
	return []string{svc, svc + "." + strings.TrimSuffix(domain, ".")}
}

// ServerName is the name a client verifies a Service's certificate
// against: name.namespace.svc.
func ServerName(name, namespace string) string { return name + "." + namespace + ".svc" }
