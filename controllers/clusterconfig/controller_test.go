package clusterconfig_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/openwmco/wmco/controllers/clusterconfig"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/openshiftcrds"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) {
	SetDefaultEventuallyTimeout(30 * time.Second)
	os.Exit(ctrltest.Run(m))
}

// base is what flags and discovery tell the operator.
var base = nodeconfig.ClusterFacts{
	APIServerURL: "https://flag.example.test:6443", CACertPEM: []byte("cluster CA"), ServiceCIDR: "10.96.0.0/12",
	ClusterNetworkCIDR: "10.244.0.0/16", DNSIP: "10.96.0.10", KubernetesVersion: localcluster.DefaultKubernetesVersion,
}

// counter counts a Source's OnChange calls.
func counter(s *clusterconfig.Source) *atomic.Int32 {
	var n atomic.Int32
	s.OnChange(func() { n.Add(1) })
	return &n
}

// facts polls s until its facts pass match and its problem is problem,
// and returns them.
func facts(g Gomega, s *clusterconfig.Source, problem string, match func(g Gomega, f nodeconfig.ClusterFacts)) nodeconfig.ClusterFacts {
	var out nodeconfig.ClusterFacts
	g.Eventually(func(g Gomega) {
		f, p := s.ClusterFacts()
		g.Expect(p).To(Equal(problem))
		match(g, f)
		out = f
	}).Should(Succeed())
	return out
}

func mirrorSet(name string, policy configv1.MirrorSourcePolicy, mirrors ...configv1.ImageMirror) *configv1.ImageDigestMirrorSet {
	return &configv1.ImageDigestMirrorSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: configv1.ImageDigestMirrorSetSpec{ImageDigestMirrors: []configv1.ImageDigestMirrors{{
			Source: "quay.io/openshift-release-dev/ocp-release", Mirrors: mirrors, MirrorSourcePolicy: policy,
		}}},
	}
}

// An OVN-Kubernetes OpenShift cluster, its configuration objects from the
// real CRDs; the operator runs with exactly its generated RBAC. The
// Source tells the cluster's settings, follows a new Proxy, trusted CA
// and mirror set (one OnChange each), ignores an edit that changes
// nothing, and without the hybrid overlay tells what to configure.
func TestOpenShiftOVN(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	g.Expect(openshiftcrds.Install(ctx, ctrltest.Cluster.Config, openshiftcrds.ClusterConfigFiles...)).To(Succeed())
	oc, err := openshiftcrds.NewOVNCluster(ctx, ctrltest.Cluster.Config, openshiftcrds.OVNOptions{
		APIServerInternalURL: ctrltest.Cluster.Host, HybridOverlay: &openshiftcrds.DefaultHybridOverlay,
		Proxy: configv1.ProxyStatus{HTTPProxy: "http://proxy.example.test:3128", NoProxy: ".cluster.local"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = oc.Delete(context.Background()) })
	idms := mirrorSet("release", configv1.NeverContactSource, "mirror-1.example.test/ocp")
	g.Expect(ctrltest.Client.Create(ctx, idms)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), idms) })

	src := clusterconfig.New(base, core.Config{Namespace: ctrltest.Namespace, Platform: cluster.OpenShift})
	f, problem := src.ClusterFacts()
	g.Expect(problem).To(Equal(clusterconfig.ProblemReading), "no host is configured before the configuration was read")
	g.Expect(f).To(Equal(base))
	calls := counter(src)
	// Runs after the manager stopped (cleanups run last first).
	t.Cleanup(func() {
		_ = ctrltest.Client.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ctrltest.Namespace, Name: cluster.TrustedCAName}})
	})
	ctrltest.StartManagerWithGeneratedRBAC(t, "system:serviceaccount:wmco-system:clusterconfig", func(mgr ctrl.Manager) error {
		return src.SetupWithManager(mgr)
	})

	// The trusted-ca ConfigMap appears, labelled, empty.
	trustedCA := &corev1.ConfigMap{}
	g.Eventually(func() error {
		return ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: cluster.TrustedCAName}, trustedCA)
	}).Should(Succeed())
	g.Expect(trustedCA.Labels).To(HaveKeyWithValue(cluster.TrustedCAInjectLabel, "true"))
	g.Expect(trustedCA.Data).To(BeEmpty())

	want := nodeconfig.ClusterFacts{
		APIServerURL: ctrltest.Cluster.Host, CACertPEM: base.CACertPEM, ServiceCIDR: localcluster.ServiceCIDR,
		ClusterNetworkCIDR: "10.132.0.0/14", DNSIP: "10.0.0.10", KubernetesVersion: base.KubernetesVersion,
		PodNetworkCIDRs: []string{"10.128.0.0/14"}, VXLANPort: 9898,
		Proxy:              nodeconfig.Proxy{HTTPProxy: "http://proxy.example.test:3128", NoProxy: ".cluster.local"},
		KubeletClientCAPEM: oc.KubeletClientCAPEM,
		ImageMirrors:       []nodeconfig.ImageMirror{{Source: "quay.io/openshift-release-dev/ocp-release", Mirrors: []string{"mirror-1.example.test/ocp"}, NeverContactSource: true}},
	}
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })
	g.Eventually(calls.Load).Should(Equal(int32(1)), "one change: from nothing read to the cluster's settings")

	// The network operator injects the bundle.
	bundle, err := openshiftcrds.NewCAPEM("corporate proxy CA")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(oc.InjectTrustedCA(ctx, ctrltest.Namespace, cluster.TrustedCAName, bundle)).To(Succeed())
	want.TrustedCAPEM = bundle
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })
	g.Eventually(calls.Load).Should(Equal(int32(2)))

	// An edit that changes no setting, then a new proxy: one call.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &configv1.Proxy{}
		if err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: cluster.ConfigName}, p); err != nil {
			return err
		}
		p.Annotations = map[string]string{"example.test/note": "no setting"}
		return ctrltest.Client.Update(ctx, p)
	})).To(Succeed())
	newProxy := configv1.ProxyStatus{HTTPProxy: "http://proxy-2.example.test:3128", HTTPSProxy: "http://proxy-2.example.test:3128", NoProxy: ".cluster.local,.svc"}
	g.Expect(oc.SetProxy(ctx, newProxy)).To(Succeed())
	want.Proxy = nodeconfig.Proxy{HTTPProxy: newProxy.HTTPProxy, HTTPSProxy: newProxy.HTTPSProxy, NoProxy: newProxy.NoProxy}
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })
	g.Eventually(calls.Load).Should(Equal(int32(3)))

	// A second mirror set: merged per source.
	second := mirrorSet("release-2", configv1.AllowContactingSource, "mirror-2.example.test/ocp")
	g.Expect(ctrltest.Client.Create(ctx, second)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), second) })
	want.ImageMirrors[0].Mirrors = []string{"mirror-1.example.test/ocp", "mirror-2.example.test/ocp"}
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })
	g.Eventually(calls.Load).Should(Equal(int32(4)))

	// Someone takes the label off trusted-ca: it is put back.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm := &corev1.ConfigMap{}
		if err := ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: cluster.TrustedCAName}, cm); err != nil {
			return err
		}
		delete(cm.Labels, cluster.TrustedCAInjectLabel)
		return ctrltest.Client.Update(ctx, cm)
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		cm := &corev1.ConfigMap{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: cluster.TrustedCAName}, cm)).To(Succeed())
		g.Expect(cm.Labels).To(HaveKeyWithValue(cluster.TrustedCAInjectLabel, "true"))
		g.Expect(cm.Data).To(HaveKeyWithValue(cluster.CABundleKey, string(bundle)), "its data is never written")
	}).Should(Succeed())

	// Without the hybrid overlay: the sentence that says what to set.
	g.Expect(oc.SetHybridOverlay(ctx, nil)).To(Succeed())
	facts(g, src, "OVN-Kubernetes has no hybrid overlay: set spec.defaultNetwork.ovnKubernetesConfig.hybridOverlayConfig.hybridClusterNetwork in networks.operator.openshift.io/cluster (Windows nodes need it)",
		func(Gomega, nodeconfig.ClusterFacts) {})
	g.Eventually(calls.Load).Should(Equal(int32(5)))
	g.Expect(oc.SetHybridOverlay(ctx, &openshiftcrds.DefaultHybridOverlay)).To(Succeed())
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })

	// The trusted-ca ConfigMap is the operator's to create again.
	g.Expect(ctrltest.Client.Delete(ctx, trustedCA)).To(Succeed())
	g.Eventually(func(g Gomega) {
		cm := &corev1.ConfigMap{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: cluster.TrustedCAName}, cm)).To(Succeed())
		g.Expect(cm.Labels).To(HaveKeyWithValue(cluster.TrustedCAInjectLabel, "true"))
	}).Should(Succeed())
	want.TrustedCAPEM = nil
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })
}

// On plain Kubernetes OpenShift's objects are not read, even where their
// kinds are served (the local control plane serves Infrastructure): the
// Source tells the base facts with no problem, and creates no trusted-ca
// ConfigMap.
func TestPlainKubernetes(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	src := clusterconfig.New(base, core.Config{Namespace: ctrltest.Namespace, Platform: cluster.Kubernetes})
	calls := counter(src)
	ctrltest.StartManagerWithGeneratedRBAC(t, "system:serviceaccount:wmco-system:clusterconfig-plain", func(mgr ctrl.Manager) error {
		return src.SetupWithManager(mgr)
	})
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(base)) })
	g.Eventually(calls.Load).Should(Equal(int32(1)))
	err := ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: cluster.TrustedCAName}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "got %v", err)
}
