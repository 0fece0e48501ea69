// Package csr decides, without side effects, whether a kubelet's
// certificate signing request may be approved. It approves only what it can
// tie to a known Windows host and leaves everything else to others.
//
// Usages: Kubernetes' own approver accepts a kubelet client CSR with either
// {digital signature, key encipherment, client auth} (RSA keys) or
// {digital signature, client auth} (ECDSA and Ed25519 keys, what kubelets
// generate by default); the same pair of sets, with server auth, holds for
// serving CSRs. This package accepts exactly those sets and nothing else.
package csr

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"net"
	"slices"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
)

// NodeUserPrefix starts the user name (and certificate CN) of a node.
const NodeUserPrefix = "system:node:"

// NodesGroup is the only organization a kubelet certificate may carry.
const NodesGroup = "system:nodes"

// CredentialIDKey is the key of a user's extra, and so of a CSR's
// spec.extra, under which the API server puts the identifier of the
// credential the user authenticated with: "JTI=<jti>" for a service
// account token (k8s.io/apiserver's user.CredentialIDKey).
const CredentialIDKey = "authentication.kubernetes.io/credential-id"

// BootstrapIdentity is one credential the operator issued a host for its
// TLS bootstrap.
type BootstrapIdentity struct {
	// Username is the user the credential authenticates as.
	Username string
	// CredentialID, when set, is the value the credential puts into the
	// requester's extra under CredentialIDKey. The CSR must then carry
	// exactly that one value there: it is how a CSR of a user name that
	// several hosts share (OpenShift's node-bootstrapper service
	// account) is tied to one host.
	CredentialID string
}

// matches tells whether the CSR was created with this credential.
func (b BootstrapIdentity) matches(spec *certificatesv1.CertificateSigningRequestSpec) bool {
	if b.Username == "" || spec.Username != b.Username {
		return false
	}
	if b.CredentialID == "" {
		return true
	}
	return slices.Equal([]string(spec.Extra[CredentialIDKey]), []string{b.CredentialID})
}

// NodeState is what is known of the Node a CSR names.
type NodeState int

const (
	// NodeAbsent means no Node of that name exists yet.
	NodeAbsent NodeState = iota
	// NodeOwned means the Node exists and belongs to this host.
	NodeOwned
	// NodeForeign means a Node of that name exists and is not this host's.
	NodeForeign
)

// Instance is what the operator knows about one Windows host.
type Instance struct {
	// Name of the WindowsInstance.
	Name string
	// NodeName the host registers as.
	NodeName string
	// BootstrapIdentities are the credentials the operator issued this
	// host for its TLS bootstrap and has not revoked: on plain Kubernetes
	// its bootstrap ServiceAccount
	// (system:serviceaccount:<operator namespace>:wmco-bootstrap-<x>), on
	// OpenShift the node-bootstrapper service account with the credential
	// ID of the token issued for this host.
	BootstrapIdentities []BootstrapIdentity
	// Addresses and Hostname observed on the host: a serving certificate
	// may name these and nothing else.
	Addresses []string
	Hostname  string
	// Node is the state of the Node named NodeName.
	Node NodeState
}

// Lookup finds the instance that registers as nodeName (exact match).
type Lookup func(nodeName string) (Instance, bool)

// Verdict is what to do with a CSR.
type Verdict int

const (
	// Ignore means it is not a CSR of a known Windows host; another approver's
	// business.
	Ignore Verdict = iota
	// Approve means every rule holds.
	Approve
	// Deny means it names a known Windows host but contradicts the rules; it
	// looks forged.
	Deny
	// Pending means it may become approvable when the operator learns more
	// (the host's addresses, the Node's owner); left as it is.
	Pending
)

func (v Verdict) String() string {
	names := [...]string{"Ignore", "Approve", "Deny", "Pending"}
	if v < 0 || int(v) >= len(names) {
		return fmt.Sprintf("Verdict(%d)", int(v))
	}
	return names[v]
}

// Object identifiers of the two subject attributes a kubelet certificate
// may carry.
var (
	oidCommonName   = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidOrganization = asn1.ObjectIdentifier{2, 5, 4, 10}
)

// Decision is a verdict with its reason, in words fit for an Event.
type Decision struct {
	Verdict Verdict
	Reason  string
	// Instance is the WindowsInstance the CSR names, when known.
	Instance string
}

var (
	clientUsagesRSA = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth}
	clientUsages    = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}
	servingUsageRSA = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth}
	servingUsages   = []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}
)

// Evaluate applies the rules to a CSR's spec.
func Evaluate(spec *certificatesv1.CertificateSigningRequestSpec, lookup Lookup) Decision {
	if spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName && spec.SignerName != certificatesv1.KubeletServingSignerName {
		return Decision{Verdict: Ignore, Reason: fmt.Sprintf("signer %s is not a kubelet signer", spec.SignerName)}
	}
	req, err := parseRequest(spec.Request)
	if err != nil {
		return Decision{Verdict: Ignore, Reason: err.Error()}
	}
	cn := req.Subject.CommonName
	nodeName, ok := strings.CutPrefix(cn, NodeUserPrefix)
	if !ok || nodeName == "" {
		return Decision{Verdict: Ignore, Reason: fmt.Sprintf("common name %q is not system:node:<name>", cn)}
	}
	inst, known := lookup(nodeName)
	if !known {
		return Decision{Verdict: Ignore, Reason: fmt.Sprintf("node %q is not a known Windows instance", nodeName)}
	}
	deny := func(format string, args ...any) Decision {
		return Decision{Verdict: Deny, Instance: inst.Name, Reason: fmt.Sprintf(format, args...)}
	}
	pending := func(format string, args ...any) Decision {
		return Decision{Verdict: Pending, Instance: inst.Name, Reason: fmt.Sprintf(format, args...)}
	}
	if !slices.Equal(req.Subject.Organization, []string{NodesGroup}) {
		return deny("organization %q is not exactly [%s]", req.Subject.Organization, NodesGroup)
	}
	for _, atv := range req.Subject.Names {
		if !atv.Type.Equal(oidCommonName) && !atv.Type.Equal(oidOrganization) {
			return deny("subject has attribute %v beyond CN and O", atv.Type)
		}
	}
	if len(req.Subject.ExtraNames) > 0 {
		return deny("subject has extra attributes beyond CN and O")
	}
	if len(req.EmailAddresses) > 0 || len(req.URIs) > 0 {
		return deny("email or URI subject alternative names are not allowed")
	}

	if spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName {
		if !sameUsages(spec.Usages, clientUsages) && !sameUsages(spec.Usages, clientUsagesRSA) {
			return deny("usages %v are not exactly [digital signature, client auth] (plus key encipherment for RSA keys)", spec.Usages)
		}
		if len(req.DNSNames) > 0 || len(req.IPAddresses) > 0 {
			return deny("a client certificate request must not carry subject alternative names")
		}
		switch {
		case spec.Username == cn: // renewal by the node itself
			if inst.Node != NodeOwned {
				return pending("renewal by %s, but its Node is not known to belong to instance %s", cn, inst.Name)
			}
		case slices.ContainsFunc(inst.BootstrapIdentities, func(b BootstrapIdentity) bool { return b.matches(spec) }):
			if inst.Node == NodeForeign {
				return deny("Node %s exists and does not belong to instance %s", nodeName, inst.Name)
			}
		case slices.ContainsFunc(inst.BootstrapIdentities, func(b BootstrapIdentity) bool { return b.Username == spec.Username }):
			// A shared user name: the credential was issued for
			// another host, or revoked, or not by the operator.
			return deny("requester %q presented credential %q, not one issued for instance %s", spec.Username, []string(spec.Extra[CredentialIDKey]), inst.Name)
		default:
			return deny("requester %q is neither the bootstrap identity issued for instance %s nor %s", spec.Username, inst.Name, cn)
		}
		return Decision{Verdict: Approve, Instance: inst.Name, Reason: fmt.Sprintf("kubelet client certificate for instance %s", inst.Name)}
	}

	// Serving certificate.
	if !sameUsages(spec.Usages, servingUsages) && !sameUsages(spec.Usages, servingUsageRSA) {
		return deny("usages %v are not exactly [digital signature, server auth] (plus key encipherment for RSA keys)", spec.Usages)
	}
	if spec.Username != cn {
		return deny("requester %q is not the node %s itself", spec.Username, cn)
	}
	if len(req.DNSNames)+len(req.IPAddresses) == 0 {
		return deny("a serving certificate request must name the host")
	}
	if inst.Node != NodeOwned {
		return pending("Node %s is not yet known to belong to instance %s", nodeName, inst.Name)
	}
	for _, d := range req.DNSNames {
		// An empty hostname (none observed) matches no name, the empty
		// one included.
		if d != nodeName && (inst.Hostname == "" || !strings.EqualFold(d, inst.Hostname)) {
			return pending("DNS name %q is neither the node name nor the host's hostname %q", d, inst.Hostname)
		}
	}
	for _, ip := range req.IPAddresses {
		if !containsIP(inst.Addresses, ip) {
			return pending("IP address %s is not among the host's observed addresses %v", ip, inst.Addresses)
		}
	}
	return Decision{Verdict: Approve, Instance: inst.Name, Reason: fmt.Sprintf("kubelet serving certificate for instance %s", inst.Name)}
}

// NeedsBootstrapIdentities tells whether Evaluate consults the
// BootstrapIdentities of the instance registering as nodeName to decide
// on spec, so a caller may skip reading them when it does not: only a
// client CSR whose requester is not the node itself (a kubelet's first
// certificate, requested with its bootstrap credential) is matched
// against them. Renewals by the node and serving CSRs never are.
func NeedsBootstrapIdentities(spec *certificatesv1.CertificateSigningRequestSpec, nodeName string) bool {
	return spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && spec.Username != NodeUserPrefix+nodeName
}

func parseRequest(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("request is not a PEM CERTIFICATE REQUEST")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request signature: %w", err)
	}
	return req, nil
}

// sameUsages compares usages as sets with no duplicates.
func sameUsages(got, want []certificatesv1.KeyUsage) bool {
	if len(got) != len(want) {
		return false
	}
	for _, u := range want {
		if !slices.Contains(got, u) {
			return false
		}
	}
	return true
}

func containsIP(addrs []string, ip net.IP) bool {
	for _, a := range addrs {
		if p := net.ParseIP(a); p != nil && p.Equal(ip) {
			return true
		}
	}
	return false
}
