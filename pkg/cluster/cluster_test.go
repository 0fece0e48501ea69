package cluster_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/test/localcluster"
)

const machineCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: machines.machine.openshift.io
spec:
  group: machine.openshift.io
  names: {kind: Machine, listKind: MachineList, plural: machines, singular: machine}
  scope: Namespaced
  versions:
  - name: v1beta1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

const openshiftConfigCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: networks.config.openshift.io
spec:
  group: config.openshift.io
  names: {kind: Network, listKind: NetworkList, plural: networks, singular: network}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// One control plane: first as plain Kubernetes, then with the OpenShift
// APIs installed.
func TestDetect(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c.Stop() }()
	cs, err := kubernetes.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())

	info, err := cluster.Detect(cs.Discovery())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info).To(Equal(cluster.Info{Platform: cluster.Kubernetes, Version: localcluster.DefaultKubernetesVersion}))

	// The operator's narrow clients answer as the Clientset does.
	cl, err := cluster.NewClients(c.Config)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cluster.Detect(cl.Discovery())).To(Equal(info))
	_, err = cl.PolicyV1().PodDisruptionBudgets(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	ip, err := cluster.DNSServiceIP(ctx, cl)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ip).To(BeEmpty(), "no kube-dns Service in the local cluster")

	dir := t.TempDir()
	for name, body := range map[string]string{"machine.yaml": machineCRD, "network.yaml": openshiftConfigCRD} {
		g.Expect(os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)).To(Succeed())
	}
	g.Expect(localcluster.InstallCRDs(ctx, c.Config, dir)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cs, err := kubernetes.NewForConfig(c.Config) // fresh discovery, no cache
		g.Expect(err).NotTo(HaveOccurred())
		info, err := cluster.Detect(cs.Discovery())
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(info.Platform).To(Equal(cluster.OpenShift))
		g.Expect(info.MachineAPI).To(BeTrue())
	}).Should(Succeed())
}

// The API server URL for kubelets comes from kube-public/cluster-info on a
// cluster whose RBAC for it is kubeadm's: readable by system:anonymous
// only, so the operator's service account is Forbidden and must read it
// anonymously, as `kubeadm join` does.
func TestDiscoverEndpointKubeadmRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c.Stop() }()
	admin, err := kubernetes.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())

	// The operator's identity, without any grant in kube-public.
	saCfg, err := c.UserConfig("system:serviceaccount:wmco-system:wmco-manager", "system:serviceaccounts", "system:serviceaccounts:wmco-system", "system:authenticated")
	g.Expect(err).NotTo(HaveOccurred())
	sa, err := kubernetes.NewForConfig(saCfg)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = sa.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, cluster.ClusterInfoName, metav1.GetOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "kubeadm's RBAC: a service account may not read cluster-info, got %v", err)

	ep, err := cluster.DiscoverEndpoint(ctx, sa, saCfg, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ep.Source).To(Equal("kube-public/cluster-info (read anonymously)"))
	g.Expect(ep.URL).To(Equal(c.Host))
	g.Expect(ep.CACert).To(Equal(c.CACert))

	// The override wins.
	ep, err = cluster.DiscoverEndpoint(ctx, sa, saCfg, "https://api.example.test:6443")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ep).To(Equal(cluster.Endpoint{URL: "https://api.example.test:6443", CACert: c.CACert, Source: "--api-server-url"}))

	// Anonymous access withdrawn: the operator falls back to its own
	// client config...
	g.Expect(admin.RbacV1().RoleBindings(metav1.NamespacePublic).Delete(ctx, localcluster.ClusterInfoRBACName, metav1.DeleteOptions{})).To(Succeed())
	g.Eventually(func(g Gomega) {
		ep, err := cluster.DiscoverEndpoint(ctx, sa, saCfg, "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ep.Source).To(Equal("client config"))
	}).WithTimeout(10 * time.Second).Should(Succeed())

	// ...unless an admin granted the operator itself.
	_, err = admin.RbacV1().RoleBindings(metav1.NamespacePublic).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "wmco-cluster-info", Namespace: metav1.NamespacePublic},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: localcluster.ClusterInfoRBACName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "system:serviceaccount:wmco-system:wmco-manager"}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		ep, err := cluster.DiscoverEndpoint(ctx, sa, saCfg, "")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ep.Source).To(Equal("kube-public/cluster-info (read as the operator)"))
		g.Expect(ep.URL).To(Equal(c.Host))
	}).WithTimeout(10 * time.Second).Should(Succeed())
}

// At start-up the operator waits for an API server that does not answer
// yet: DetectRetrying tries again until it does. The API server sits
// behind a loopback relay that drops connections until the second retry
// notice.
func TestDetectWaitsForTheAPIServer(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c.Stop() }()

	relayed := func(up *atomic.Bool) kubernetes.Interface {
		cfg := rest.CopyConfig(c.Config)
		cfg.Host = "https://" + relay(t, c.Config.Host, up)
		cs, err := kubernetes.NewForConfig(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		return cs
	}
	var up atomic.Bool
	var notices []string
	info, err := cluster.DetectRetrying(ctx, relayed(&up).Discovery(), time.Minute, func(err error, _ time.Duration) {
		notices = append(notices, err.Error())
		if len(notices) == 2 {
			up.Store(true)
		}
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Version).To(Equal(localcluster.DefaultKubernetesVersion))
	g.Expect(notices).To(HaveLen(2), "one notice per failed try")

	// A relay that never comes up: it gives up, naming the error.
	_, err = cluster.DetectRetrying(ctx, relayed(new(atomic.Bool)).Discovery(), 0, nil)
	g.Expect(err).To(MatchError(ContainSubstring("did not answer within 0s")))
	g.Expect(err).To(MatchError(ContainSubstring("read server version")))
}

// relay listens on a loopback port and, while up is true, relays each
// connection to the host of url; otherwise it closes it at once.
func relay(t *testing.T, rawURL string, up *atomic.Bool) string {
	t.Helper()
	target, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if !up.Load() {
				_ = conn.Close()
				continue
			}
			go func() {
				defer conn.Close()
				back, err := net.Dial("tcp", target.Host)
				if err != nil {
					return
				}
				defer back.Close()
				go func() { _, _ = io.Copy(back, conn) }()
				_, _ = io.Copy(conn, back)
			}()
		}
	}()
	return ln.Addr().String()
}
