package csrapproval_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/csrapproval"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/csr"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/openshiftcrds"
)

// The CSR approver's tests create every CSR with a client authenticated as
// its requester (a real bootstrap token of a host's ServiceAccount, or a
// client certificate for system:node:<name>, an admin, or an identity no
// token backs), so the API server fills spec.username as it would for a
// real kubelet, and kube-controller-manager signs what gets approved.

var (
	csrtDS = certificatesv1.UsageDigitalSignature
	csrtKE = certificatesv1.UsageKeyEncipherment
	csrtCA = certificatesv1.UsageClientAuth
	csrtSA = certificatesv1.UsageServerAuth

	csrtClientSigner  = certificatesv1.KubeAPIServerClientKubeletSignerName
	csrtServingSigner = certificatesv1.KubeletServingSignerName

	csrtClientUsages  = []certificatesv1.KeyUsage{csrtDS, csrtCA}
	csrtServingUsages = []certificatesv1.KeyUsage{csrtDS, csrtSA}
)

// csrtSubject is what a certificate request asks for.
type csrtSubject struct {
	cn     string
	orgs   []string
	ou     []string
	dns    []string
	ips    []string
	emails []string
	uris   []string
	rsa    bool
}

// csrtNodeSubject is the subject of a kubelet of the node.
func csrtNodeSubject(node string) csrtSubject {
	return csrtSubject{cn: csr.NodeUserPrefix + node, orgs: []string{csr.NodesGroup}}
}

func (s csrtSubject) with(f func(*csrtSubject)) csrtSubject { f(&s); return s }

// csrtPEM encodes a signed certificate request for the subject.
func csrtPEM(t *testing.T, s csrtSubject) []byte {
	t.Helper()
	var key crypto.Signer
	var err error
	if s.rsa {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: s.cn, Organization: s.orgs, OrganizationalUnit: s.ou},
		DNSNames:       s.dns,
		EmailAddresses: s.emails,
	}
	for _, ip := range s.ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	for _, u := range s.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// csrtSuffix is a random lower-case suffix that keeps a test's names its
// own.
func csrtSuffix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz"[int(b[i])%26]
	}
	return string(b)
}

// csrtCleanup deletes obj when the test ends.
func csrtCleanup(t *testing.T, obj client.Object) {
	t.Cleanup(func() {
		if err := ctrltest.Client.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("clean up %T %s: %v", obj, obj.GetName(), err)
		}
	})
}

// csrtInstance creates a WindowsInstance and sets its status.
func csrtInstance(t *testing.T, name, specNodeName string, status wmcov1.WindowsInstanceStatus) *wmcov1.WindowsInstance {
	t.Helper()
	ctx := t.Context()
	wi := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "192.0.2.10", Username: "Administrator", NodeName: specNodeName},
	}
	if err := ctrltest.Client.Create(ctx, wi); err != nil {
		t.Fatalf("create WindowsInstance %s: %v", name, err)
	}
	csrtCleanup(t, wi)
	wi.Status = status
	if err := ctrltest.Client.Status().Update(ctx, wi); err != nil {
		t.Fatalf("set status of WindowsInstance %s: %v", name, err)
	}
	return wi
}

// csrtNode creates a Node (as an admin) with the labels and InternalIPs.
func csrtNode(t *testing.T, name string, labels map[string]string, internalIPs ...string) *corev1.Node {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	for _, ip := range internalIPs {
		node.Status.Addresses = append(node.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	if err := ctrltest.Client.Create(t.Context(), node); err != nil {
		t.Fatalf("create Node %s: %v", name, err)
	}
	csrtCleanup(t, node)
	return node
}

// csrtAllowCSRCreation binds the subjects to system:node-bootstrapper, which
// may create CSRs (a kubelet renewing its certificate needs that too).
func csrtAllowCSRCreation(t *testing.T, name string, subjects ...rbacv1.Subject) {
	t.Helper()
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects:   subjects,
	}
	if err := ctrltest.Client.Create(t.Context(), crb); err != nil {
		t.Fatalf("create ClusterRoleBinding %s: %v", name, err)
	}
	csrtCleanup(t, crb)
}

// csrtClient authenticates with cfg.
func csrtClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: ctrltest.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// csrtUser is a client for the user and groups (client certificate).
func csrtUser(t *testing.T, user string, groups ...string) client.Client {
	t.Helper()
	cfg, err := ctrltest.Cluster.UserConfig(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return csrtClient(t, cfg)
}

// csrtBootstrapClient authenticates with a bootstrap token.
func csrtBootstrapClient(t *testing.T, token string) client.Client {
	t.Helper()
	return csrtClient(t, &rest.Config{
		Host:            ctrltest.Cluster.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: ctrltest.Cluster.CACert},
		BearerToken:     token,
	})
}

// csrtCreateCSR creates a CSR as the client's user; it retries while the
// RBAC authorizer has not yet seen a new binding.
func csrtCreateCSR(t *testing.T, as client.Client, name, signer string, usages []certificatesv1.KeyUsage, request []byte) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	g := NewWithT(t)
	c := &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       certificatesv1.CertificateSigningRequestSpec{Request: request, SignerName: signer, Usages: usages},
	}
	g.Eventually(func() error {
		err := as.Create(t.Context(), c)
		// Forbidden: the RBAC cache has not seen a new binding yet.
		// Unauthorized: the bootstrap-token authenticator has not seen a
		// new token Secret yet. Both pass; anything else is a failure.
		if err != nil && !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) {
			return StopTrying(fmt.Sprintf("create CSR %s", name)).Wrap(err)
		}
		return err
	}).WithTimeout(10*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), "create CSR %s", name)
	csrtCleanup(t, c)
	return c
}

// csrtCondition returns the CSR's condition of the type, if any.
func csrtCondition(c *certificatesv1.CertificateSigningRequest, typ certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequestCondition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == typ {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}

// csrtEvents lists the Events about the named cluster-scoped object (they
// live in the default namespace).
func csrtEvents(ctx context.Context, g Gomega, kind, name string) []corev1.Event {
	var list corev1.EventList
	g.Expect(ctrltest.Client.List(ctx, &list, client.InNamespace(metav1.NamespaceDefault),
		client.MatchingFields{"involvedObject.kind": kind, "involvedObject.name": name})).To(Succeed())
	return list.Items
}

// csrtHaveEvent matches an Event of the reason whose message contains the
// text.
func csrtHaveEvent(eventType, reason, text string) OmegaMatcher {
	return ContainElement(And(
		HaveField("Type", eventType),
		HaveField("Reason", reason),
		HaveField("Message", ContainSubstring(text)),
	))
}

// csrtHaveReason matches an Event of the reason.
func csrtHaveReason(reason string) OmegaMatcher {
	return ContainElement(HaveField("Reason", reason))
}

// csrtIssuer is the bootstrap credential issuer of the platform, writing
// with c: per-host ServiceAccounts (with their binding ensured) on plain
// Kubernetes, node-bootstrapper tokens on OpenShift (with the
// ServiceAccount and binding the machine-config-operator creates).
func csrtIssuer(t *testing.T, platform cluster.Platform, c client.Client) bootstrap.Issuer {
	t.Helper()
	if platform == cluster.OpenShift {
		if err := openshiftcrds.InstallNodeBootstrapper(t.Context(), ctrltest.Cluster.Config); err != nil {
			t.Fatal(err)
		}
		return &bootstrap.NodeBootstrapper{Client: c, Namespace: ctrltest.Namespace}
	}
	// The binding, written live (c may be a manager's client whose cache
	// has not started).
	if err := (&bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}).EnsureRBAC(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &bootstrap.Tokens{Client: c, Namespace: ctrltest.Namespace}
}

// csrtApprover starts a manager with a CSR approver on the platform.
func csrtApprover(t *testing.T, platform cluster.Platform) *csrapproval.Reconciler {
	t.Helper()
	r := &csrapproval.Reconciler{}
	ctrltest.StartManager(t, func(mgr ctrl.Manager) error {
		r.Client = mgr.GetClient()
		r.Config = core.Config{Namespace: ctrltest.Namespace, Platform: platform}
		// As the operator wires it: the issuer reads through the
		// manager's client; the approver reads it live.
		r.Tokens = csrtIssuer(t, platform, mgr.GetClient())
		r.Recorder = mgr.GetEventRecorder("wmco-csr-approver")
		return r.SetupWithManager(mgr)
	})
	return r
}

// csrtExpect is what should become of a CSR.
type csrtExpect int

const (
	csrtApproved csrtExpect = iota
	csrtDenied
	csrtPending
	csrtIgnored
	// csrtFiltered: not a kubelet signer; the approver never looks at it.
	csrtFiltered
)

func (e csrtExpect) String() string {
	return [...]string{"approved", "denied", "pending", "ignored", "filtered"}[e]
}

func (e csrtExpect) verdict() csr.Verdict {
	return map[csrtExpect]csr.Verdict{csrtApproved: csr.Approve, csrtDenied: csr.Deny, csrtPending: csr.Pending, csrtIgnored: csr.Ignore}[e]
}

// Legitimate requests of known Windows hosts are approved and signed;
// forged ones never are: those that name a known host but contradict the
// rules are denied, those that may become valid stay pending, and those of
// other nodes are left alone, all with the Events that say why. On both
// platforms: with per-host ServiceAccounts (plain Kubernetes) and with
// node-bootstrapper tokens told apart by credential ID (OpenShift).
func TestCSRApproverForgedAndLegitimateRequests(t *testing.T) {
	for _, platform := range []cluster.Platform{cluster.Kubernetes, cluster.OpenShift} {
		t.Run(string(platform), func(t *testing.T) { csrtForgedAndLegitimate(t, platform) })
	}
}

// csrtCase is a CSR one requester creates and what should become of it.
type csrtCase struct {
	name   string
	as     client.Client
	signer string
	usages []certificatesv1.KeyUsage
	subj   csrtSubject
	want   csrtExpect
	why    string // in the condition message and the Event
}

func csrtForgedAndLegitimate(t *testing.T, platform cluster.Platform) {
	g := NewWithT(t)
	ctx := t.Context()
	sfx := csrtSuffix(t)
	p := "csrt-" + sfx + "-"
	issuer := csrtIssuer(t, platform, ctrltest.Client)
	csrtAllowCSRCreation(t, p+"nodes", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: csr.NodesGroup})

	// Hosts. A: no Node yet. B: its Node carries its label. C: a Node of
	// its name exists and is someone else's. E: known by hostname only.
	// F: known by spec.nodeName, its Node owned through its InternalIP.
	// G: status.nodeName supersedes spec.nodeName.
	type host struct {
		wi    string
		obj   *wmcov1.WindowsInstance // the instance, as created
		node  string
		ips   []string
		name  string // hostname
		token string
	}
	hosts := map[string]*host{}
	for i, k := range []string{"a", "b", "c", "e", "f", "g"} {
		hosts[k] = &host{
			wi:   p + k,
			node: p + "win-" + k,
			ips:  []string{fmt.Sprintf("10.77.%d.%d", 10+i, 11), fmt.Sprintf("fd00:77:%d::11", 10+i)},
			name: strings.ToUpper(p) + "HOST-" + strings.ToUpper(k),
		}
	}
	hosts["e"].name = strings.ToUpper(hosts["e"].node)
	for _, k := range []string{"a", "b", "c", "e", "g"} {
		h := hosts[k]
		switch k {
		case "e":
			h.obj = csrtInstance(t, h.wi, "", wmcov1.WindowsInstanceStatus{Host: wmcov1.HostFacts{Hostname: h.name, Addresses: h.ips}})
		case "g":
			h.obj = csrtInstance(t, h.wi, p+"g-spec", wmcov1.WindowsInstanceStatus{NodeName: h.node, Host: wmcov1.HostFacts{Hostname: h.name, Addresses: h.ips}})
		default:
			h.obj = csrtInstance(t, h.wi, "", wmcov1.WindowsInstanceStatus{NodeName: h.node, Host: wmcov1.HostFacts{Hostname: h.name, Addresses: h.ips}})
		}
	}
	f := hosts["f"]
	f.obj = csrtInstance(t, f.wi, f.node, wmcov1.WindowsInstanceStatus{Host: wmcov1.HostFacts{Hostname: f.name, Addresses: f.ips}})

	// A credential of A issued and revoked first: the next issuance gets
	// a ServiceAccount of another name, or a token of another credential
	// ID.
	revokedToken, err := issuer.Issue(ctx, hosts["a"].obj)
	g.Expect(err).NotTo(HaveOccurred())
	revokedIDs, err := issuer.Identities(ctx, hosts["a"].obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(revokedIDs).To(HaveLen(1))
	g.Expect(issuer.Revoke(ctx, hosts["a"].wi)).To(Succeed())
	for _, h := range hosts {
		h.token, err = issuer.Issue(ctx, h.obj)
		g.Expect(err).NotTo(HaveOccurred())
	}
	t.Cleanup(func() {
		for _, h := range hosts {
			if err := issuer.Revoke(context.Background(), h.wi); err != nil {
				t.Errorf("revoke tokens: %v", err)
			}
		}
	})
	idsA, err := issuer.Identities(ctx, hosts["a"].obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(idsA).To(HaveLen(1))
	g.Expect(idsA).NotTo(ContainElement(revokedIDs[0]))
	_, saA, _ := strings.Cut(strings.TrimPrefix(idsA[0].Username, bootstrap.ServiceAccountUserPrefix), ":")
	saGroups := []string{"system:serviceaccounts", "system:serviceaccounts:" + ctrltest.Namespace}
	neverIssuedUser := bootstrap.Username(ctrltest.Namespace, bootstrap.NamePrefix+"zz"+sfx[:4])
	otherNamespaceUser := bootstrap.Username("default", saA)
	// Identities the operator did not issue (or no longer) may create CSRs
	// here, so that the approver is what refuses them.
	csrtAllowCSRCreation(t, p+"forgers",
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: neverIssuedUser},
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: revokedIDs[0].Username},
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: otherNamespaceUser})

	linux := p + "linux"
	csrtNode(t, hosts["b"].node, map[string]string{wmcov1.LabelInstance: hosts["b"].wi})
	csrtNode(t, hosts["c"].node, nil, "10.99.0.13")
	csrtNode(t, f.node, nil, "10.98.0.1", f.ips[1]) // IPv6, written another way below
	csrtNode(t, linux, map[string]string{corev1.LabelOSStable: "linux"}, "10.99.0.50")

	r := csrtApprover(t, platform)

	// Requesters.
	var (
		a, b, c, e, gh = hosts["a"], hosts["b"], hosts["c"], hosts["e"], hosts["g"]
		bootA          = csrtBootstrapClient(t, a.token)
		bootB          = csrtBootstrapClient(t, b.token)
		bootC          = csrtBootstrapClient(t, c.token)
		bootE          = csrtBootstrapClient(t, e.token)
		bootG          = csrtBootstrapClient(t, gh.token)
		nodeA          = csrtUser(t, csr.NodeUserPrefix+a.node, csr.NodesGroup)
		nodeB          = csrtUser(t, csr.NodeUserPrefix+b.node, csr.NodesGroup)
		nodeC          = csrtUser(t, csr.NodeUserPrefix+c.node, csr.NodesGroup)
		nodeF          = csrtUser(t, csr.NodeUserPrefix+f.node, csr.NodesGroup)
		nodeLinux      = csrtUser(t, csr.NodeUserPrefix+linux, csr.NodesGroup)
		neverIssued    = csrtUser(t, neverIssuedUser, saGroups...)
		otherNamespace = csrtUser(t, otherNamespaceUser, "system:serviceaccounts", "system:serviceaccounts:default")
		admin          = ctrltest.Client
	)
	// Why a credential of another host (or none the operator issued) is
	// refused: a user name not issued for the host, or, where the user
	// name is shared, a credential ID not issued for it.
	notIssuedFor := func(wi string) string { return "is neither the bootstrap identity issued for instance " + wi }
	if platform == cluster.OpenShift {
		notIssuedFor = func(wi string) string { return "not one issued for instance " + wi }
	}
	subjA, subjB, subjC := csrtNodeSubject(a.node), csrtNodeSubject(b.node), csrtNodeSubject(c.node)
	servingB := subjB.with(func(s *csrtSubject) {
		s.dns = []string{b.node, strings.ToLower(b.name)}
		s.ips = []string{b.ips[0], b.ips[1]}
	})

	cases := []csrtCase{
		// Legitimate.
		{"bootstrap-client", bootA, csrtClientSigner, csrtClientUsages, subjA, csrtApproved, "kubelet client certificate for instance " + a.wi},
		{"bootstrap-by-hostname", bootE, csrtClientSigner, csrtClientUsages, csrtNodeSubject(e.node), csrtApproved, "kubelet client certificate for instance " + e.wi},
		{"bootstrap-status-node-name", bootG, csrtClientSigner, csrtClientUsages, csrtNodeSubject(gh.node), csrtApproved, "kubelet client certificate for instance " + gh.wi},
		{"serving", nodeB, csrtServingSigner, csrtServingUsages, servingB, csrtApproved, "kubelet serving certificate for instance " + b.wi},
		{"serving-node-owned-by-ip", nodeF, csrtServingSigner, []certificatesv1.KeyUsage{csrtDS, csrtKE, csrtSA},
			csrtNodeSubject(f.node).with(func(s *csrtSubject) { s.rsa = true; s.ips = []string{strings.Replace(f.ips[1], "::", ":0:0:0:0:", 1)} }), csrtApproved, "kubelet serving certificate for instance " + f.wi},
		{"renewal", nodeB, csrtClientSigner, []certificatesv1.KeyUsage{csrtDS, csrtKE, csrtCA}, subjB.with(func(s *csrtSubject) { s.rsa = true }), csrtApproved, "kubelet client certificate for instance " + b.wi},

		// Forged.
		{"wrong-signer", admin, certificatesv1.KubeAPIServerClientSignerName, csrtClientUsages, subjB, csrtFiltered, ""},
		{"custom-signer", nodeB, "example.com/kubelet", csrtClientUsages, subjB, csrtFiltered, ""},
		{"serving-by-admin", admin, csrtServingSigner, csrtServingUsages, servingB, csrtDenied, "is not the node"},
		{"serving-by-bootstrap-identity", bootA, csrtServingSigner, csrtServingUsages, subjA.with(func(s *csrtSubject) { s.ips = a.ips[:1] }), csrtDenied, "is not the node"},
		{"unknown-node", bootA, csrtClientSigner, csrtClientUsages, csrtNodeSubject(p + "nope"), csrtIgnored, ""},
		{"linux-node-renewal", nodeLinux, csrtClientSigner, csrtClientUsages, csrtNodeSubject(linux), csrtIgnored, ""},
		{"linux-node-by-bootstrap", bootA, csrtClientSigner, csrtClientUsages, csrtNodeSubject(linux), csrtIgnored, ""},
		{"substring", bootA, csrtClientSigner, csrtClientUsages, csrtNodeSubject(p + "win"), csrtIgnored, ""},
		{"superstring", bootA, csrtClientSigner, csrtClientUsages, csrtNodeSubject(a.node + "-2"), csrtIgnored, ""},
		{"case-variant", bootA, csrtClientSigner, csrtClientUsages, csrtNodeSubject(strings.ToUpper(a.node)), csrtIgnored, ""},
		{"superseded-spec-node-name", bootG, csrtClientSigner, csrtClientUsages, csrtNodeSubject(p + "g-spec"), csrtIgnored, ""},
		{"serving-foreign-ip", nodeB, csrtServingSigner, csrtServingUsages, servingB.with(func(s *csrtSubject) { s.ips = []string{b.ips[0], "10.66.6.6"} }), csrtPending, "is not among the host's observed addresses"},
		{"serving-other-hosts-ip", nodeB, csrtServingSigner, csrtServingUsages, servingB.with(func(s *csrtSubject) { s.ips = []string{a.ips[0]} }), csrtPending, "is not among the host's observed addresses"},
		{"serving-extra-dns", nodeB, csrtServingSigner, csrtServingUsages, servingB.with(func(s *csrtSubject) { s.dns = append(s.dns, "evil.example.com") }), csrtPending, "is neither the node name nor the host's hostname"},
		{"serving-other-hosts-hostname", nodeB, csrtServingSigner, csrtServingUsages, servingB.with(func(s *csrtSubject) { s.dns = []string{a.name} }), csrtPending, "is neither the node name nor the host's hostname"},
		{"serving-email-san", nodeB, csrtServingSigner, csrtServingUsages, servingB.with(func(s *csrtSubject) { s.emails = []string{"root@example.com"} }), csrtDenied, "email or URI subject alternative names"},
		{"serving-missing-usage", nodeB, csrtServingSigner, []certificatesv1.KeyUsage{csrtSA}, servingB, csrtDenied, "are not exactly [digital signature, server auth]"},
		{"serving-key-encipherment-only", nodeB, csrtServingSigner, []certificatesv1.KeyUsage{csrtKE, csrtSA}, servingB, csrtDenied, "are not exactly [digital signature, server auth]"},
		{"serving-no-sans", nodeB, csrtServingSigner, csrtServingUsages, subjB, csrtDenied, "must name the host"},
		{"serving-foreign-node", nodeC, csrtServingSigner, csrtServingUsages, subjC.with(func(s *csrtSubject) { s.ips = c.ips[:1] }), csrtPending, "is not yet known to belong to instance " + c.wi},
		{"client-extra-usage", nodeB, csrtClientSigner, []certificatesv1.KeyUsage{csrtDS, csrtCA, csrtSA}, subjB, csrtDenied, "are not exactly [digital signature, client auth]"},
		{"client-wrong-organization", bootA, csrtClientSigner, csrtClientUsages, subjA.with(func(s *csrtSubject) { s.orgs = []string{"system:masters"} }), csrtDenied, "organization"},
		{"client-extra-organization", bootA, csrtClientSigner, csrtClientUsages, subjA.with(func(s *csrtSubject) { s.orgs = []string{csr.NodesGroup, "system:masters"} }), csrtDenied, "organization"},
		{"client-organizational-unit", bootA, csrtClientSigner, csrtClientUsages, subjA.with(func(s *csrtSubject) { s.ou = []string{"ops"} }), csrtDenied, "beyond CN and O"},
		{"client-with-dns-san", bootA, csrtClientSigner, csrtClientUsages, subjA.with(func(s *csrtSubject) { s.dns = []string{a.node} }), csrtDenied, "must not carry subject alternative names"},
		{"client-with-uri-san", bootA, csrtClientSigner, csrtClientUsages, subjA.with(func(s *csrtSubject) { s.uris = []string{"spiffe://cluster/ns/x"} }), csrtDenied, "email or URI subject alternative names"},
		{"other-hosts-bootstrap-token", bootB, csrtClientSigner, csrtClientUsages, subjA, csrtDenied, notIssuedFor(a.wi)},
		{"never-issued-bootstrap-identity", neverIssued, csrtClientSigner, csrtClientUsages, subjA, csrtDenied, "is neither the bootstrap identity issued for instance " + a.wi},
		{"same-name-other-namespace", otherNamespace, csrtClientSigner, csrtClientUsages, subjA, csrtDenied, "is neither the bootstrap identity issued for instance " + a.wi},
		{"admin-for-a-node", admin, csrtClientSigner, csrtClientUsages, subjB, csrtDenied, "is neither the bootstrap identity issued for instance " + b.wi},
		{"renewal-before-node-known", nodeA, csrtClientSigner, csrtClientUsages, subjA, csrtPending, "its Node is not known to belong to instance " + a.wi},
		{"node-name-held-by-foreign-node", bootC, csrtClientSigner, csrtClientUsages, subjC, csrtDenied, "exists and does not belong to instance " + c.wi},
		{"renewal-as-foreign-node", nodeC, csrtClientSigner, csrtClientUsages, subjC, csrtPending, "its Node is not known to belong to instance " + c.wi},
	}
	switch platform {
	case cluster.OpenShift:
		// The revoked token still authenticates (until it expires) as
		// the shared user; its credential ID is no longer A's. Nor are
		// those of a node-bootstrapper token the operator never recorded
		// and of a client certificate of the shared user (the API server
		// gives it the credential ID X509SHA256=<fingerprint>).
		shared := revokedIDs[0].Username
		unrecorded, err := ctrltest.Clientset.CoreV1().ServiceAccounts(openshiftcrds.MCONamespace).CreateToken(ctx, openshiftcrds.NodeBootstrapper,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(600))}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		cases = append(cases, []csrtCase{
			{"revoked-credential", csrtBootstrapClient(t, revokedToken), csrtClientSigner, csrtClientUsages, subjA, csrtDenied, "presented credential [\"" + revokedIDs[0].CredentialID + "\"], not one issued for instance " + a.wi},
			{"unrecorded-node-bootstrapper-token", csrtBootstrapClient(t, unrecorded.Status.Token), csrtClientSigner, csrtClientUsages, subjA, csrtDenied, notIssuedFor(a.wi)},
			{"node-bootstrapper-by-client-certificate", csrtUser(t, shared, "system:serviceaccounts", "system:serviceaccounts:"+openshiftcrds.MCONamespace),
				csrtClientSigner, csrtClientUsages, subjA, csrtDenied, `presented credential ["X509SHA256=`},
		}...)
	default:
		// The revoked ServiceAccount's name, as a client certificate
		// (its tokens no longer authenticate).
		cases = append(cases, csrtCase{"revoked-bootstrap-identity", csrtUser(t, revokedIDs[0].Username, saGroups...), csrtClientSigner, csrtClientUsages, subjA, csrtDenied, notIssuedFor(a.wi)})
	}

	names := map[string]csrtExpect{}
	forged, approved := 0, 0
	for _, tc := range cases {
		name := p + tc.name
		csrtCreateCSR(t, tc.as, name, tc.signer, tc.usages, csrtPEM(t, tc.subj))
		names[name] = tc.want
		if tc.want == csrtApproved {
			approved++
		} else {
			forged++
		}
	}
	t.Logf("%d CSRs: %d legitimate, %d forged", len(cases), approved, forged)
	g.Expect(forged).To(BeNumerically(">=", 20))

	byName := func(g Gomega) map[string]*certificatesv1.CertificateSigningRequest {
		var list certificatesv1.CertificateSigningRequestList
		g.Expect(ctrltest.Client.List(ctx, &list)).To(Succeed())
		out := map[string]*certificatesv1.CertificateSigningRequest{}
		for i := range list.Items {
			out[list.Items[i].Name] = &list.Items[i]
		}
		return out
	}
	// Every CSR gets its decision; approved ones are signed by
	// kube-controller-manager.
	g.Eventually(func(g Gomega) {
		all := byName(g)
		for _, tc := range cases {
			name := p + tc.name
			got := all[name]
			g.Expect(got).NotTo(BeNil(), name)
			switch tc.want {
			case csrtApproved:
				cond := csrtCondition(got, certificatesv1.CertificateApproved)
				g.Expect(cond).NotTo(BeNil(), "%s should be approved", name)
				g.Expect(cond.Reason).To(Equal(csrapproval.CSRConditionReasonApproved))
				g.Expect(cond.Message).To(ContainSubstring(tc.why))
				g.Expect(got.Status.Certificate).NotTo(BeEmpty(), "%s should be signed", name)
			case csrtDenied:
				cond := csrtCondition(got, certificatesv1.CertificateDenied)
				g.Expect(cond).NotTo(BeNil(), "%s should be denied", name)
				g.Expect(cond.Reason).To(Equal(csrapproval.CSRConditionReasonDenied))
				g.Expect(cond.Message).To(ContainSubstring(tc.why), name)
			case csrtPending, csrtIgnored:
				d, ok := csrapproval.LastDecision(r, name)
				g.Expect(ok).To(BeTrue(), "%s should have been evaluated", name)
				g.Expect(d.Verdict).To(Equal(tc.want.verdict()), name)
				g.Expect(d.Reason).To(ContainSubstring(tc.why), name)
			}
		}
	}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// The approved certificates are the hosts'.
	all := byName(g)
	for _, tc := range cases {
		if tc.want != csrtApproved {
			continue
		}
		block, _ := pem.Decode(all[p+tc.name].Status.Certificate)
		g.Expect(block).NotTo(BeNil())
		cert, err := x509.ParseCertificate(block.Bytes)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cert.Subject.CommonName).To(Equal(tc.subj.cn))
		g.Expect(cert.Subject.Organization).To(Equal([]string{csr.NodesGroup}))
	}

	// Events say why a CSR is denied or pending: on the CSR and on the
	// instance the CSR names. An approval has none (the CSR has its
	// condition, checked above).
	g.Eventually(func(g Gomega) {
		for _, tc := range cases {
			name := p + tc.name
			switch tc.want {
			case csrtDenied:
				g.Expect(csrtEvents(ctx, g, "CertificateSigningRequest", name)).To(csrtHaveEvent(corev1.EventTypeWarning, csrapproval.EventCSRDenied, tc.why), name)
			case csrtPending:
				g.Expect(csrtEvents(ctx, g, "CertificateSigningRequest", name)).To(csrtHaveEvent(corev1.EventTypeWarning, csrapproval.EventCSRPending, tc.why), name)
			}
		}
		g.Expect(csrtEvents(ctx, g, "WindowsInstance", a.wi)).To(
			csrtHaveEvent(corev1.EventTypeWarning, csrapproval.EventCSRDenied, "CSR "+p+"other-hosts-bootstrap-token: "))
	}).WithTimeout(10 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// Nothing forged is ever approved; what is pending or not ours stays
	// untouched, and what is not ours gets no Event.
	g.Consistently(func(g Gomega) {
		all := byName(g)
		for _, tc := range cases {
			name := p + tc.name
			got := all[name]
			g.Expect(got).NotTo(BeNil(), name)
			if tc.want == csrtApproved {
				// An approval is no Event, on the CSR or on the instance.
				wi := tc.why[strings.LastIndex(tc.why, " ")+1:] // "... for instance <name>"
				g.Expect(csrtEvents(ctx, g, "CertificateSigningRequest", name)).NotTo(csrtHaveReason("CSRApproved"), name)
				g.Expect(csrtEvents(ctx, g, "WindowsInstance", wi)).NotTo(csrtHaveReason("CSRApproved"), name)
				continue
			}
			g.Expect(csrtCondition(got, certificatesv1.CertificateApproved)).To(BeNil(), "%s must not be approved", name)
			g.Expect(got.Status.Certificate).To(BeEmpty(), name)
			switch tc.want {
			case csrtPending, csrtIgnored, csrtFiltered:
				g.Expect(got.Status.Conditions).To(BeEmpty(), name)
			}
			switch tc.want {
			case csrtIgnored, csrtFiltered:
				g.Expect(csrtEvents(ctx, g, "CertificateSigningRequest", name)).To(BeEmpty(), "%s is not ours: no Event", name)
			}
			if tc.want == csrtFiltered {
				_, seen := csrapproval.LastDecision(r, name)
				g.Expect(seen).To(BeFalse(), "%s has no kubelet signer and must not be evaluated", name)
			}
		}
	}).WithTimeout(3 * time.Second).WithPolling(300 * time.Millisecond).Should(Succeed())
}

// A CSR that cannot be tied to a host yet is evaluated again as soon as
// the instance reports its addresses or its Node registers, with no resync.
func TestCSRApproverReevaluatesOnInstanceAndNodeChanges(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	p := "csrt-" + csrtSuffix(t) + "-"
	csrtAllowCSRCreation(t, p+"nodes", rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: csr.NodesGroup})
	nodeName, ip := p+"win", "10.78.0.21"
	wi := csrtInstance(t, p+"h", "", wmcov1.WindowsInstanceStatus{NodeName: nodeName})
	issuer := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
	_, err := issuer.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = issuer.Revoke(context.Background(), wi.Name) })

	r := csrtApprover(t, cluster.Kubernetes)
	kubelet := csrtUser(t, csr.NodeUserPrefix+nodeName, csr.NodesGroup)
	renewal := csrtCreateCSR(t, kubelet, p+"renewal", csrtClientSigner, csrtClientUsages, csrtPEM(t, csrtNodeSubject(nodeName)))
	serving := csrtCreateCSR(t, kubelet, p+"serving", csrtServingSigner, csrtServingUsages,
		csrtPEM(t, csrtNodeSubject(nodeName).with(func(s *csrtSubject) { s.ips = []string{ip}; s.dns = []string{nodeName} })))

	get := func(g Gomega, name string) *certificatesv1.CertificateSigningRequest {
		c := &certificatesv1.CertificateSigningRequest{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: name}, c)).To(Succeed())
		return c
	}
	isPending := func(name, why string) func(g Gomega) {
		return func(g Gomega) {
			d, ok := csrapproval.LastDecision(r, name)
			g.Expect(ok).To(BeTrue())
			g.Expect(d.Verdict).To(Equal(csr.Pending))
			g.Expect(d.Reason).To(ContainSubstring(why))
			g.Expect(get(g, name).Status.Conditions).To(BeEmpty())
		}
	}
	isApproved := func(name string) func(g Gomega) {
		return func(g Gomega) {
			c := get(g, name)
			g.Expect(csrtCondition(c, certificatesv1.CertificateApproved)).NotTo(BeNil())
			g.Expect(c.Status.Certificate).NotTo(BeEmpty())
		}
	}
	g.Eventually(isPending(renewal.Name, "its Node is not known to belong")).WithTimeout(10 * time.Second).Should(Succeed())
	g.Eventually(isPending(serving.Name, "is not yet known to belong")).WithTimeout(10 * time.Second).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(csrtEvents(ctx, g, "CertificateSigningRequest", serving.Name)).To(
			csrtHaveEvent(corev1.EventTypeWarning, csrapproval.EventCSRPending, "is not yet known to belong to instance "+wi.Name))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// The Node registers with the instance's label: the renewal can be
	// tied to the host now; the serving CSR names an address not yet seen.
	csrtNode(t, nodeName, map[string]string{wmcov1.LabelInstance: wi.Name}, ip)
	g.Eventually(isApproved(renewal.Name)).WithTimeout(30 * time.Second).Should(Succeed())
	// (Its Event keeps the first reason: the events.k8s.io recorder folds
	// the new note into the first Event's series.)
	g.Eventually(isPending(serving.Name, "is not among the host's observed addresses")).WithTimeout(10 * time.Second).Should(Succeed())
	g.Consistently(isPending(serving.Name, "is not among the host's observed addresses")).WithTimeout(time.Second).Should(Succeed())

	// The instance reports the host's addresses.
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(wi), wi)).To(Succeed())
	wi.Status.Host.Addresses = []string{ip}
	g.Expect(ctrltest.Client.Status().Update(ctx, wi)).To(Succeed())
	g.Eventually(isApproved(serving.Name)).WithTimeout(30 * time.Second).Should(Succeed())
}

// The approver, and the issuer of each platform, work with nothing but
// the permissions config/rbac grants (make manifests output), bound to an
// operator identity.
func TestCSRApproverRunsWithGeneratedRBAC(t *testing.T) {
	for _, platform := range []cluster.Platform{cluster.Kubernetes, cluster.OpenShift} {
		t.Run(string(platform), func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			sfx := csrtSuffix(t)
			p := "csrt-" + sfx + "-"
			user := p + "operator"
			ctrltest.GrantGeneratedRBAC(t, p+"manager", user, ctrltest.Namespace)
			cfg, err := ctrltest.Cluster.UserConfig(user)
			g.Expect(err).NotTo(HaveOccurred())
			asOperator := csrtClient(t, cfg)

			wi := csrtInstance(t, p+"r", "", wmcov1.WindowsInstanceStatus{NodeName: p + "win"})
			// The RBAC authorizer may not have seen the new binding yet.
			var issuer bootstrap.Issuer
			g.Eventually(func() error {
				if platform == cluster.OpenShift {
					if err := openshiftcrds.InstallNodeBootstrapper(ctx, ctrltest.Cluster.Config); err != nil {
						return err
					}
					issuer = &bootstrap.NodeBootstrapper{Client: asOperator, Namespace: ctrltest.Namespace}
					return nil
				}
				tokens := &bootstrap.Tokens{Client: asOperator, Namespace: ctrltest.Namespace}
				if err := tokens.EnsureRBAC(ctx); err != nil {
					return err
				}
				issuer = tokens
				return nil
			}).WithTimeout(10 * time.Second).Should(Succeed())
			var token string
			g.Eventually(func() (err error) {
				token, err = issuer.Issue(ctx, wi)
				return err
			}).WithTimeout(10 * time.Second).Should(Succeed())
			t.Cleanup(func() { _ = issuer.Revoke(context.Background(), wi.Name) })

			ctrltest.StartManagerAs(t, cfg, func(mgr ctrl.Manager) error {
				return (&csrapproval.Reconciler{
					Client:   mgr.GetClient(),
					Config:   core.Config{Namespace: ctrltest.Namespace, Platform: platform},
					Tokens:   issuer,
					Recorder: mgr.GetEventRecorder("wmco-csr-approver"),
				}).SetupWithManager(mgr)
			})

			subj := csrtNodeSubject(p + "win")
			good := csrtCreateCSR(t, csrtBootstrapClient(t, token), p+"bootstrap", csrtClientSigner, csrtClientUsages, csrtPEM(t, subj))
			bad := csrtCreateCSR(t, ctrltest.Client, p+"admin", csrtClientSigner, csrtClientUsages, csrtPEM(t, subj))
			g.Eventually(func(g Gomega) {
				got := &certificatesv1.CertificateSigningRequest{}
				g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(good), got)).To(Succeed())
				g.Expect(csrtCondition(got, certificatesv1.CertificateApproved)).NotTo(BeNil())
				g.Expect(got.Status.Certificate).NotTo(BeEmpty())
				g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(bad), got)).To(Succeed())
				g.Expect(csrtCondition(got, certificatesv1.CertificateDenied)).NotTo(BeNil())
				g.Expect(csrtEvents(ctx, g, "WindowsInstance", wi.Name)).To(And(
					Not(ContainElement(HaveField("Message", ContainSubstring(good.Name)))),
					csrtHaveEvent(corev1.EventTypeWarning, csrapproval.EventCSRDenied, bad.Name)))
			}).WithTimeout(30 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
			g.Expect(issuer.Revoke(ctx, wi.Name)).To(Succeed())
		})
	}
}

func TestCSRApproverSetupRequiresDependencies(t *testing.T) {
	mgr, err := ctrl.NewManager(ctrltest.Cluster.Config, ctrl.Options{
		Scheme:                 ctrltest.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := mgr.GetEventRecorder("wmco-csr-approver")
	tokens := &bootstrap.Tokens{Client: mgr.GetClient(), Namespace: ctrltest.Namespace}
	cases := []struct {
		name string
		r    *csrapproval.Reconciler
		err  string
	}{
		{"no client", &csrapproval.Reconciler{Tokens: tokens, Recorder: rec}, "Client is required"},
		{"no recorder", &csrapproval.Reconciler{Client: mgr.GetClient(), Tokens: tokens}, "Recorder is required"},
		{"no tokens on Kubernetes", &csrapproval.Reconciler{Client: mgr.GetClient(), Recorder: rec, Config: core.Config{Platform: cluster.Kubernetes}}, "Tokens is required"},
		{"no tokens, platform unset", &csrapproval.Reconciler{Client: mgr.GetClient(), Recorder: rec}, "Tokens is required"},
		{"no tokens on OpenShift", &csrapproval.Reconciler{Client: mgr.GetClient(), Recorder: rec, Config: core.Config{Platform: cluster.OpenShift}}, "Tokens is required"},
		{"complete", &csrapproval.Reconciler{Client: mgr.GetClient(), Recorder: rec, Tokens: tokens, Config: core.Config{Platform: cluster.Kubernetes}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := tc.r.SetupWithManager(mgr)
			if tc.err == "" {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(tc.r.APIReader).NotTo(BeNil())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
		})
	}
	// The caller's Tokens is not changed; the approver reads tokens live.
	g := NewWithT(t)
	g.Expect(tokens.Reader).To(BeNil())
	r := cases[len(cases)-1].r
	g.Expect(csrapproval.TokensOf(r)).NotTo(BeIdenticalTo(tokens))
	g.Expect(csrapproval.TokensOf(r)).To(BeAssignableToTypeOf(tokens))
	g.Expect(csrapproval.TokensOf(r).(*bootstrap.Tokens).Reader).To(BeIdenticalTo(mgr.GetAPIReader()))
}
