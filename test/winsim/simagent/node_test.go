package simagent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/csr"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

const (
	nodeName   = "win-agent-1"
	hostIP     = "192.0.2.11" // TEST-NET-1: a reported fact, never dialled
	tokenID    = "wmcoab"
	tokenValue = "0123456789abcdef"
)

// run executes the agent over SSH and decodes its JSON answer.
func run(ctx context.Context, g Gomega, s remote.Session, out any, args ...string) {
	res, err := s.Run(ctx, append([]string{wicdapi.AgentPath}, args...))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.ExitCode).To(Equal(0), "wicd %v: stdout %s stderr %s", args, res.Stdout, res.Stderr)
	g.Expect(json.Unmarshal(res.Stdout, out)).To(Succeed(), string(res.Stdout))
}

func upload(ctx context.Context, g Gomega, s remote.Session, dst string, data []byte) {
	g.Expect(s.Upload(ctx, dst, bytes.NewReader(data), int64(len(data)), sha256Hex(data))).To(Succeed(), dst)
}

// TestAgentJoinsHostAsNode plays the operator's part by hand: upload the
// payload and a rendered plan over SSH, run `wicd apply`, approve the
// kubelet's CSRs, and watch the Node; then drift, a reboot and cleanup.
func TestAgentJoinsHostAsNode(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	cluster, err := localcluster.Start(ctx, localcluster.Options{NodeMonitorGracePeriod: 5 * time.Second, NodeMonitorPeriod: time.Second})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = cluster.Stop() }()
	cs, err := kubernetes.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())

	// The simulated host, with short agent and kubelet intervals.
	h, err := winsim.Start(ctx, winsim.Options{Hostname: "WIN-AGENT-1", IPAddresses: []netip.Addr{netip.MustParseAddr(hostIP)}})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = h.Close() }()
	node, err := simagent.Install(h, simagent.Options{
		AgentRunInterval: 300 * time.Millisecond, KubeletLeaseDuration: 2 * time.Second,
		KubeletStatusInterval: time.Second, RecoveryScale: 0.1, Log: testWriter{t},
	})
	g.Expect(err).NotTo(HaveOccurred())
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	sshPub, err := ssh.NewPublicKey(pub)
	g.Expect(err).NotTo(HaveOccurred())
	h.AuthorizeKey("Administrator", sshPub)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	g.Expect(err).NotTo(HaveOccurred())

	// A bootstrap token the kubelet may create CSRs with.
	_, err = cs.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + tokenID, Namespace: "kube-system"},
		Type:       corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{"token-id": tokenID, "token-secret": tokenValue, "usage-bootstrap-authentication": "true",
			"auth-extra-groups": "system:bootstrappers:wmco", "expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "wmco-bootstrappers"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:bootstrappers:wmco"}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	// Connect as the operator does.
	sess, err := (&remote.SSHDialer{}).Dial(ctx, remote.Target{
		Address: h.IP(), Port: h.Port(), Username: "Administrator",
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), TrustOnFirstUse: true,
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess.Close() }()
	g.Expect(sess.HostKey()).To(Equal(h.HostKey()))

	// Upload the payload: every file into its versioned directory, the
	// agent to its fixed place.
	dir := t.TempDir()
	m, err := testpayload.Write(dir, testpayload.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range m.Files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		g.Expect(err).NotTo(HaveOccurred())
		upload(ctx, g, sess, m.HostPath(f.Path), data)
		if f.Component == payload.ComponentWICD {
			upload(ctx, g, sess, wicdapi.AgentPath, data)
		}
	}

	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	g.Expect(facts.Hostname).To(Equal("WIN-AGENT-1"))
	g.Expect(facts.Addresses).To(Equal([]string{hostIP}))
	var pre wicdapi.PreflightResult
	run(ctx, g, sess, &pre, "preflight", "--reference-time="+time.Now().UTC().Format(time.RFC3339))
	g.Expect(pre.Passed).To(BeTrue(), "%+v", pre.Checks)

	// Render and apply the plan.
	plan, err := nodeconfig.Render(nodeconfig.Inputs{
		Config: wmcov1.WindowsNodeConfigSpec{},
		Cluster: nodeconfig.ClusterFacts{APIServerURL: cluster.Host, CACertPEM: cluster.CACert, ServiceCIDR: localcluster.ServiceCIDR,
			ClusterNetworkCIDR: "10.132.0.0/14", DNSIP: "10.0.0.10", KubernetesVersion: localcluster.DefaultKubernetesVersion},
		Host:     nodeconfig.HostFactsFrom(facts),
		NodeName: nodeName, Payload: m, BootstrapToken: tokenID + "." + tokenValue,
		NodeLabels: map[string]string{"wmco.io/test": "agent"}, HostSubnet: "10.132.1.0/24",
	})
	g.Expect(err).NotTo(HaveOccurred())
	planJSON, err := json.Marshal(plan)
	g.Expect(err).NotTo(HaveOccurred())
	upload(ctx, g, sess, wicdapi.PlanPath, planJSON)

	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(applied.Changed).To(BeTrue())
	g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "service", Name: "kubelet", Action: "started"}))

	// Approve the kubelet's CSRs as the operator would: only what the
	// rules approve.
	lookup := func(name string) (csr.Instance, bool) {
		if name != nodeName {
			return csr.Instance{}, false
		}
		state := csr.NodeAbsent
		if _, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err == nil {
			state = csr.NodeOwned
		}
		return csr.Instance{Name: "agent-test", NodeName: nodeName, BootstrapUsernames: []string{"system:bootstrap:" + tokenID},
			Addresses: []string{hostIP}, Hostname: "WIN-AGENT-1", Node: state}, true
	}
	approved := map[string]bool{}
	g.Eventually(func(g Gomega) {
		list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		for i := range list.Items {
			c := &list.Items[i]
			if len(c.Status.Conditions) > 0 {
				continue
			}
			d := csr.Evaluate(&c.Spec, lookup)
			g.Expect(d.Verdict).To(Or(Equal(csr.Approve), Equal(csr.Pending)), d.Reason)
			if d.Verdict != csr.Approve {
				continue
			}
			c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
				Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "TestApproved", Message: d.Reason})
			_, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, c.Name, c, metav1.UpdateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			approved[c.Spec.SignerName] = true
		}
		g.Expect(approved).To(HaveKey(certificatesv1.KubeAPIServerClientKubeletSignerName))
		g.Expect(approved).To(HaveKey(certificatesv1.KubeletServingSignerName))
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())

	// A Ready Node with the Windows labels, the taint and the host's address.
	g.Eventually(func(g Gomega) {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(isReady(n)).To(BeTrue())
		g.Expect(n.Labels).To(HaveKeyWithValue("kubernetes.io/os", "windows"))
		g.Expect(n.Labels).To(HaveKeyWithValue("node.kubernetes.io/windows-build", "10.0.20348"))
		g.Expect(n.Labels).To(HaveKeyWithValue("wmco.io/test", "agent"))
		g.Expect(n.Spec.Taints).To(ConsistOf(corev1.Taint{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}))
		g.Expect(n.Status.Addresses).To(ContainElement(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: hostIP}))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(node.Networks()).To(ContainElement(simagent.HybridOverlayNetwork))

	// Applying the same plan again changes nothing.
	var again wicdapi.ApplyResult
	run(ctx, g, sess, &again, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(again.Changed).To(BeFalse(), "%+v", again.Changes)

	// Drift: a stopped service is started again by the agent's service.
	starts := node.Services.Starts("kube-proxy")
	g.Expect(node.Services.Stop(ctx, "kube-proxy")).To(Succeed())
	g.Eventually(func() bool { return node.Services.Running("kube-proxy") }).WithTimeout(10 * time.Second).Should(BeTrue())
	g.Expect(node.Services.Starts("kube-proxy")).To(Equal(starts + 1))

	// A reboot: the Node goes NotReady while the host is down and comes
	// back Ready when the automatic services start again.
	g.Expect(h.Reboot(ctx, 9*time.Second)).To(Succeed())
	g.Eventually(func(g Gomega) {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(isReady(n)).To(BeFalse())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(h.WaitUp(ctx)).To(Succeed())
	g.Eventually(func(g Gomega) {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(isReady(n)).To(BeTrue())
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// Cleanup leaves no service and no payload file; the caller removes
	// the agent binary once it has exited.
	sess2, err := (&remote.SSHDialer{}).Dial(ctx, remote.Target{
		Address: h.IP(), Port: h.Port(), Username: "Administrator",
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), HostKey: sess.HostKey(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess2.Close() }()
	var cleaned wicdapi.CleanupResult
	run(ctx, g, sess2, &cleaned, "cleanup")
	g.Expect(cleaned.Changes).NotTo(BeEmpty())
	g.Expect(sess2.Remove(ctx, wicdapi.AgentPath)).To(Succeed())

	names, err := node.Services.List(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(names).To(BeEmpty())
	g.Expect(node.Networks()).To(BeEmpty())
	var left []string
	for _, root := range []string{wicdapi.InstallRoot, `C:\var\lib\kubelet`} {
		_ = walk(h.Disk(), root, func(p string) { left = append(left, p) })
	}
	g.Expect(left).To(BeEmpty(), "files left behind")
}

func isReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func walk(d *winsim.Disk, root string, fn func(string)) error {
	infos, err := d.List(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, fi := range infos {
		p := root + `\` + fi.Name()
		if fi.IsDir() {
			if err := walk(d, p, fn); err != nil {
				return err
			}
			continue
		}
		fn(p)
	}
	return nil
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
