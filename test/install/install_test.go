// Package install_test proves the kustomize install: a namespace overlay
// renders with the pinned kustomize, and the operator runs from that
// rendering with nothing but the rendered RBAC.
package install_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
)

const (
	overlay      = "config/samples/overlay-namespace"
	overlayNS    = "windows-nodes"
	operatorSA   = "wmco"
	defaultNS    = "wmco-system"
	joinDeadline = 2 * time.Minute
)

// kustomize is the pinned kustomize binary (hack/tools/go.mod), built into
// bin/ as the Makefile does when it is missing; $WMCO_KUSTOMIZE overrides.
func kustomize(t *testing.T, root string) string {
	t.Helper()
	if p := os.Getenv("WMCO_KUSTOMIZE"); p != "" {
		return p
	}
	data, err := os.ReadFile(filepath.Join(root, "hack", "tools", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	version := ""
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "sigs.k8s.io/kustomize/kustomize/v5" && strings.HasPrefix(f[1], "v") {
			version = f[1]
		}
	}
	if version == "" {
		t.Fatal("hack/tools/go.mod does not pin sigs.k8s.io/kustomize/kustomize/v5")
	}
	bin := filepath.Join(root, "bin", "kustomize-"+version)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("Building kustomize %s into %s (make kustomize does the same)", version, bin)
	cmd := exec.CommandContext(t.Context(), "go", "build", "-C", filepath.Join(root, "hack", "tools"), "-o", bin, "sigs.k8s.io/kustomize/kustomize/v5")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kustomize: %v\n%s", err, out)
	}
	return bin
}

// render runs kustomize build on dir and decodes the objects.
func render(t *testing.T, kustomizeBin, dir string) ([]byte, []*unstructured.Unstructured) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), kustomizeBin, "build", dir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kustomize build %s: %v\n%s", dir, err, ee.Stderr)
		}
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	docs, err := localenv.YAMLDocuments(out)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range docs {
		u := &unstructured.Unstructured{}
		if err := sigsyaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return out, objs
}

// The namespace overlay renders into windows-nodes and nowhere else, and
// the operator, run as a process with the rendered ServiceAccount's
// identity (a TokenRequest token, never admin credentials) in that
// namespace, joins a simulated host: every permission it needs is in the
// rendered RBAC, or the host never becomes Ready.
func TestNamespaceOverlayJoinsAHostWithTheRenderedRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	root, err := proc.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	bin := kustomize(t, root)

	text, objs := render(t, bin, filepath.Join(root, overlay))
	t.Logf("kustomize build %s: %d objects", overlay, len(objs))
	g.Expect(string(text)).NotTo(ContainSubstring(defaultNS), "nothing left in the default namespace")
	g.Expect(string(text)).NotTo(ContainSubstring("kube-system"))
	kinds := map[string]int{}
	var install []*unstructured.Unstructured
	for _, o := range objs {
		kinds[o.GetKind()]++
		t.Logf("  %s %s %s", o.GetKind(), o.GetNamespace(), o.GetName())
		switch o.GetKind() {
		case "Namespace":
			g.Expect(o.GetName()).To(Equal(overlayNS))
		case "CustomResourceDefinition", "ClusterRole":
		case "ClusterRoleBinding", "RoleBinding":
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subjects {
				g.Expect(s).To(HaveKeyWithValue("namespace", overlayNS), "%s %s", o.GetKind(), o.GetName())
			}
		case "Deployment":
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			g.Expect(containers).To(HaveLen(1))
			image, _, _ := unstructured.NestedString(containers[0].(map[string]any), "image")
			g.Expect(image).To(HavePrefix("ghcr.io/openwmco/wmco:v"), "a version tag, not latest")
			continue // the operator runs as a process below
		}
		if o.GetKind() != "Namespace" && o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetKind(), "Cluster") {
			g.Expect(o.GetNamespace()).To(Equal(overlayNS), "%s %s", o.GetKind(), o.GetName())
		}
		install = append(install, o)
	}
	g.Expect(kinds).To(And(HaveKeyWithValue("Role", 1), HaveKeyWithValue("RoleBinding", 1), HaveKeyWithValue("ServiceAccount", 1),
		HaveKeyWithValue("CustomResourceDefinition", 2), HaveKeyWithValue("Deployment", 1)))

	var installed []*unstructured.Unstructured
	env, err := localenv.Start(ctx, localenv.Options{
		Hosts: 1, Namespace: overlayNS, Log: testWriter{t},
		Install: func(ctx context.Context, c *localcluster.Cluster, namespace string) (string, error) {
			if err := apply(ctx, t, c, install); err != nil {
				return "", err
			}
			installed = install
			path := filepath.Join(t.TempDir(), "operator.kubeconfig")
			return path, localenv.ServiceAccountKubeconfig(ctx, c, namespace, operatorSA, path)
		},
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("operator log:\n%s", proc.TailFile(env.OperatorLog, 60))
		}
		_ = env.Stop()
	})
	g.Expect(installed).NotTo(BeEmpty())

	// The operator's identity is the ServiceAccount: not an admin.
	kc, err := clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kc.CertData).To(BeEmpty())
	g.Expect(kc.BearerToken).NotTo(BeEmpty())
	asOperator, err := kubernetes.NewForConfig(kc)
	g.Expect(err).NotTo(HaveOccurred())
	who, err := asOperator.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(who.Status.UserInfo.Username).To(Equal(bootstrap.Username(overlayNS, operatorSA)))
	g.Expect(who.Status.UserInfo.Groups).NotTo(ContainElement("system:masters"))
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		_, err := asOperator.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "Secrets of %s must be out of the operator's reach: %v", ns, err)
	}

	h := env.Hosts[0]
	g.Expect(env.SetInventory(ctx, h)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var list wmcov1.WindowsInstanceList
		g.Expect(env.Client.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(1))
		wi := list.Items[0]
		g.Expect(meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReady)).To(BeTrue(), "phase %s: %s", wi.Status.Phase, wi.Status.Message)
		node := &corev1.Node{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: h.Name}, node)).To(Succeed())
		g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, wi.Name))
	}).WithTimeout(joinDeadline).WithPolling(500 * time.Millisecond).Should(Succeed())

	// The kubelet bootstrapped as a per-host ServiceAccount of the
	// operator's namespace, approved by the operator.
	var csrs certificatesv1.CertificateSigningRequestList
	g.Expect(env.Client.List(ctx, &csrs)).To(Succeed())
	var bootstrapped bool
	for _, c := range csrs.Items {
		if strings.HasPrefix(c.Spec.Username, bootstrap.ServiceAccountUserPrefix+overlayNS+":"+bootstrap.NamePrefix) {
			bootstrapped = true
			g.Expect(c.Status.Certificate).NotTo(BeEmpty())
		}
	}
	g.Expect(bootstrapped).To(BeTrue(), "a CSR requested by a bootstrap ServiceAccount of %s", overlayNS)

	// Nothing the operator asked for was refused.
	log, err := os.ReadFile(env.OperatorLog)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(log)).NotTo(ContainSubstring("forbidden"))

	// make deploy / undeploy (hack/deploy.sh) render what the overlay
	// does, the API server accepts it (server-side dry run), and undeploy
	// refuses while a WindowsInstance exists.
	deploy := func(action string, extraEnv ...string) (string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "deploy.sh"), action)
		cmd.Env = append(os.Environ(), "KUSTOMIZE="+bin, "NAMESPACE="+overlayNS, "DRY_RUN=server", "IMG=", "FORCE=",
			"KUBECTL="+env.Cluster.Kubectl(), "KUBECONFIG="+env.Cluster.KubeconfigPath)
		cmd.Env = append(cmd.Env, extraEnv...)
		out, err := cmd.CombinedOutput()
		t.Logf("hack/deploy.sh %s %v: %v\n%s", action, extraEnv, err, tail(string(out), 12))
		return string(out), err
	}
	rendered, err := deploy("render")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rendered).To(Equal(string(text)), "make installer NAMESPACE=%s renders what the sample overlay does", overlayNS)
	out, err := deploy("apply")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("deployment.apps/wmco created (server dry run)"))
	out, err = deploy("delete")
	g.Expect(err).To(HaveOccurred())
	g.Expect(out).To(ContainSubstring("WindowsInstances exist"))
	out, err = deploy("delete", "FORCE=1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("deleted (server dry run)"))
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: bootstrap.BindingName}, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
	}})).To(Succeed(), "a dry run deletes nothing")
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: overlayNS}, &corev1.Namespace{})).To(Succeed())
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// apply creates the objects as the cluster admin, as `kubectl apply -f`
// of the rendering does, and waits for the CRDs.
func apply(ctx context.Context, t *testing.T, c *localcluster.Cluster, objs []*unstructured.Unstructured) error {
	var buf bytes.Buffer
	for _, o := range objs {
		data, err := sigsyaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(data)
	}
	file := filepath.Join(t.TempDir(), "install.yaml")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"apply", "-f", file},
		{"wait", "--for=condition=Established", "--timeout=30s", "crd/windowsinstances.wmco.io", "crd/windowsnodeconfigs.wmco.io"},
	} {
		cmd := exec.CommandContext(ctx, c.Kubectl(), append([]string{"--kubeconfig", c.KubeconfigPath}, args...)...)
		out, err := cmd.CombinedOutput()
		t.Logf("kubectl %s:\n%s", args[0], out)
		if err != nil {
			return err
		}
	}
	return nil
}

// testWriter sends the environment's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
