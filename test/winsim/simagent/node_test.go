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

// joinEnv is a local control plane, a simulated node host and an
// operator-like SSH session to it.
type joinEnv struct {
	cluster *localcluster.Cluster
	cs      *kubernetes.Clientset
	host    *winsim.Host
	node    *simagent.Node
	target  remote.Target
	sess    remote.Session
}

// startJoinEnv starts the control plane (with a short node monitor grace
// period), a bootstrap token the kubelet may create CSRs with, and a host
// with short agent and kubelet intervals, and connects to the host.
func startJoinEnv(t *testing.T, g Gomega, opts simagent.Options) *joinEnv {
	t.Helper()
	ctx := context.Background()
	cluster, err := localcluster.Start(ctx, localcluster.Options{NodeMonitorGracePeriod: 5 * time.Second, NodeMonitorPeriod: time.Second})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = cluster.Stop() })
	cs, err := kubernetes.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())

	h, err := winsim.Start(ctx, winsim.Options{Hostname: "WIN-AGENT-1", IPAddresses: []netip.Addr{netip.MustParseAddr(hostIP)}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	opts.AgentRunInterval, opts.KubeletLeaseDuration = 300*time.Millisecond, 2*time.Second
	opts.KubeletStatusInterval, opts.RecoveryScale, opts.Log = time.Second, 0.1, testWriter{t}
	node, err := simagent.Install(h, opts)
	g.Expect(err).NotTo(HaveOccurred())
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	sshPub, err := ssh.NewPublicKey(pub)
	g.Expect(err).NotTo(HaveOccurred())
	h.AuthorizeKey("Administrator", sshPub)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	g.Expect(err).NotTo(HaveOccurred())

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
	target := remote.Target{
		Address: h.IP(), Port: h.Port(), Username: "Administrator",
		PrivateKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), TrustOnFirstUse: true,
	}
	sess, err := (&remote.SSHDialer{}).Dial(ctx, target)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = sess.Close() })
	g.Expect(sess.HostKey()).To(Equal(h.HostKey()))
	target.TrustOnFirstUse, target.HostKey = false, sess.HostKey()
	return &joinEnv{cluster: cluster, cs: cs, host: h, node: node, target: target, sess: sess}
}

// writePayload writes a test payload of version into a temporary folder.
func writePayload(t *testing.T, g Gomega, version string) (string, *payload.Manifest) {
	dir := t.TempDir()
	m, err := testpayload.Write(dir, testpayload.Options{Version: version})
	g.Expect(err).NotTo(HaveOccurred())
	return dir, m
}

// payloadFile reads one file of a payload written by writePayload.
func payloadFile(g Gomega, dir, path string) []byte {
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
	g.Expect(err).NotTo(HaveOccurred())
	return data
}

// uploadPayload uploads every payload file into its versioned folder and,
// when agent is set, the agent to its fixed place.
func (e *joinEnv) uploadPayload(ctx context.Context, g Gomega, dir string, m *payload.Manifest, agent bool) {
	for _, f := range m.Files {
		data := payloadFile(g, dir, f.Path)
		upload(ctx, g, e.sess, m.HostPath(f.Path), data)
		if agent && f.Component == payload.ComponentWICD {
			upload(ctx, g, e.sess, wicdapi.AgentPath, data)
		}
	}
}

// renderPlan renders the host's plan for a payload, as the operator would.
func (e *joinEnv) renderPlan(g Gomega, facts wicdapi.Facts, m *payload.Manifest) *wicdapi.Plan {
	plan, err := nodeconfig.Render(nodeconfig.Inputs{
		Config: wmcov1.WindowsNodeConfigSpec{},
		Cluster: nodeconfig.ClusterFacts{APIServerURL: e.cluster.Host, CACertPEM: e.cluster.CACert, ServiceCIDR: localcluster.ServiceCIDR,
			ClusterNetworkCIDR: "10.132.0.0/14", DNSIP: "10.0.0.10", KubernetesVersion: localcluster.DefaultKubernetesVersion},
		Host:     nodeconfig.HostFactsFrom(facts),
		NodeName: nodeName, Payload: m, BootstrapToken: tokenID + "." + tokenValue,
		NodeLabels: map[string]string{"wmco.io/test": "agent"}, HostSubnet: "10.132.1.0/24",
	})
	g.Expect(err).NotTo(HaveOccurred())
	return plan
}

// approveCSRs approves the kubelet's CSRs as the operator would (only
// what the rules approve) until a client and a serving certificate were
// approved.
func (e *joinEnv) approveCSRs(ctx context.Context, g Gomega) {
	lookup := func(name string) (csr.Instance, bool) {
		if name != nodeName {
			return csr.Instance{}, false
		}
		state := csr.NodeAbsent
		if _, err := e.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err == nil {
			state = csr.NodeOwned
		}
		return csr.Instance{Name: "agent-test", NodeName: nodeName, BootstrapIdentities: []csr.BootstrapIdentity{{Username: "system:bootstrap:" + tokenID}},
			Addresses: []string{hostIP}, Hostname: "WIN-AGENT-1", Node: state}, true
	}
	approved := map[string]bool{}
	g.Eventually(func(g Gomega) {
		list, err := e.cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
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
			_, err := e.cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, c.Name, c, metav1.UpdateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			approved[c.Spec.SignerName] = true
		}
		g.Expect(approved).To(HaveKey(certificatesv1.KubeAPIServerClientKubeletSignerName))
		g.Expect(approved).To(HaveKey(certificatesv1.KubeletServingSignerName))
	}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
}

// getNode returns the host's Node.
func (e *joinEnv) getNode(ctx context.Context, g Gomega) *corev1.Node {
	n, err := e.cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return n
}

// TestAgentJoinsHostAsNode plays the operator's part by hand: upload the
// payload and a rendered plan over SSH, run `wicd apply`, approve the
// kubelet's CSRs, and watch the Node; then drift, a reboot and cleanup.
func TestAgentJoinsHostAsNode(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	e := startJoinEnv(t, g, simagent.Options{})
	h, node, sess := e.host, e.node, e.sess

	// Upload the payload: every file into its versioned directory, the
	// agent to its fixed place.
	dir, m := writePayload(t, g, "")
	e.uploadPayload(ctx, g, dir, m, true)

	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	g.Expect(facts.Hostname).To(Equal("WIN-AGENT-1"))
	g.Expect(facts.Addresses).To(Equal([]string{hostIP}))
	var pre wicdapi.PreflightResult
	run(ctx, g, sess, &pre, "preflight", "--reference-time="+time.Now().UTC().Format(time.RFC3339))
	g.Expect(pre.Passed).To(BeTrue(), "%+v", pre.Checks)

	// Render and apply the plan.
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, e.renderPlan(g, facts, m))
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply", "--plan", wicdapi.PlanPath)
	g.Expect(applied.Changed).To(BeTrue())
	g.Expect(applied.Changes).To(ContainElement(wicdapi.Change{Kind: "service", Name: "kubelet", Action: "started"}))
	e.approveCSRs(ctx, g)

	// A Ready Node with the Windows labels, the taint and the host's address.
	g.Eventually(func(g Gomega) {
		n := e.getNode(ctx, g)
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
	g.Eventually(func(g Gomega) { g.Expect(isReady(e.getNode(ctx, g))).To(BeFalse()) }).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(h.WaitUp(ctx)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(isReady(e.getNode(ctx, g))).To(BeTrue()) }).WithTimeout(30 * time.Second).Should(Succeed())

	// Cleanup leaves no service and no payload file; the caller removes
	// the agent binary once it has exited.
	sess2, err := (&remote.SSHDialer{}).Dial(ctx, e.target)
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

// A payload whose kubelet does not start: apply fails naming the kubelet,
// the emulated kubelet never runs so the Node goes NotReady, and rollback
// points the services back at the previous folder, after which the Node
// is Ready again with the previous kubelet.
func TestFailedKubeletUpgradeRollsBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	dir1, m1 := writePayload(t, g, "v1.37.2-wmco.1")
	dir2, m2 := writePayload(t, g, "v1.37.2-wmco.2")
	kubelet1 := payloadFile(g, dir1, payload.KubeletPath)
	kubelet2 := payloadFile(g, dir2, payload.KubeletPath)
	e := startJoinEnv(t, g, simagent.Options{
		KubeletBinaries: map[string]string{sha256Hex(kubelet1): "v1.37.2", sha256Hex(kubelet2): "v1.37.3"},
		FailingBinaries: map[string]string{sha256Hex(kubelet2): "panic: runtime error: invalid memory address"},
	})
	sess := e.sess

	e.uploadPayload(ctx, g, dir1, m1, true)
	var facts wicdapi.Facts
	run(ctx, g, sess, &facts, "facts")
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, e.renderPlan(g, facts, m1))
	var applied wicdapi.ApplyResult
	run(ctx, g, sess, &applied, "apply")
	e.approveCSRs(ctx, g)
	g.Eventually(func(g Gomega) {
		n := e.getNode(ctx, g)
		g.Expect(isReady(n)).To(BeTrue())
		g.Expect(n.Status.NodeInfo.KubeletVersion).To(Equal("v1.37.2"))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The upgrade: the new kubelet exits at once.
	e.uploadPayload(ctx, g, dir2, m2, false)
	uploadJSON(ctx, g, sess, wicdapi.PlanPath, e.renderPlan(g, facts, m2))
	failed := agentError(ctx, g, sess, "apply")
	g.Expect(failed.Code).To(Equal(wicdapi.CodeServiceFailed))
	g.Expect(failed.Message).To(And(ContainSubstring("start service kubelet"), ContainSubstring("exit code 1067"),
		ContainSubstring("The process terminated unexpectedly")))
	g.Expect(e.node.Services.Running(nodeconfig.ServiceKubelet)).To(BeFalse())
	g.Expect(e.node.Services.LastError(nodeconfig.ServiceKubelet)).To(MatchError(ContainSubstring("invalid memory address")))
	g.Eventually(func(g Gomega) { g.Expect(isReady(e.getNode(ctx, g))).To(BeFalse()) }).WithTimeout(30 * time.Second).Should(Succeed())
	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	g.Expect([]string{facts.AppliedPayloadVersion, facts.PreviousPayloadVersion}).To(Equal([]string{m2.Version, m1.Version}))
	g.Expect(facts.ApplyError).To(HaveField("Code", wicdapi.CodeServiceFailed), "the failed plan is applied, but not in place")

	// Rollback: the services run from the previous folder again.
	var rolled wicdapi.ApplyResult
	out, code := runAgent(ctx, g, sess, wicdapi.AgentPath, wicdapi.RollbackArg)
	g.Expect(code).To(Equal(0), "rollback: %s", out)
	g.Expect(json.Unmarshal(out, &rolled)).To(Succeed(), string(out))
	g.Expect(rolled.Changes).To(ContainElement(Or(
		Equal(wicdapi.Change{Kind: "service", Name: nodeconfig.ServiceKubelet, Action: "started"}),
		// kubelet depends on containerd, which restarts
		Equal(wicdapi.Change{Kind: "service", Name: nodeconfig.ServiceKubelet, Action: "restarted"}))))
	st, err := e.node.Services.Query(ctx, nodeconfig.ServiceKubelet)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(st.Config.Args).To(ContainElement(m1.HostPath(payload.KubeletPath)))
	g.Eventually(func(g Gomega) {
		n := e.getNode(ctx, g)
		g.Expect(isReady(n)).To(BeTrue())
		g.Expect(n.Status.NodeInfo.KubeletVersion).To(Equal("v1.37.2"))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	facts = wicdapi.Facts{}
	run(ctx, g, sess, &facts, "facts")
	g.Expect([]string{facts.AppliedPayloadVersion, facts.PreviousPayloadVersion}).To(Equal([]string{m1.Version, m2.Version}))
	g.Expect(facts.ApplyError).To(BeNil())
	g.Expect(facts.PayloadVersions).To(Equal([]string{m1.Version, m2.Version}), "the failed version stays until pruned")
}
