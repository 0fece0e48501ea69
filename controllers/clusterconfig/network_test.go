package clusterconfig_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/clusterconfig"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/localcluster"
)

// flannelConfigMap creates kube-flannel's ConfigMap in ns with netConf
// (creating ns when it does not exist; namespaces are left, the local
// control plane runs no namespace controller) and deletes it when the
// test ends.
func flannelConfigMap(t *testing.T, ns, netConf string) *corev1.ConfigMap {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	err := ctrltest.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if !apierrors.IsAlreadyExists(err) {
		g.Expect(err).NotTo(HaveOccurred())
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cluster.FlannelConfigMapName},
		Data:       map[string]string{cluster.FlannelNetConfKey: netConf, "cni-conf.json": "{}"},
	}
	g.Expect(ctrltest.Client.Create(ctx, cm)).To(Succeed())
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), cm) })
	return cm
}

// On plain Kubernetes, with no network flag given, the Source reads the
// pod network and flannel's settings from kube-flannel's net-conf.json
// (kube-flannel's namespace before kube-system's) and the service CIDR
// from the API server's ServiceCIDR, as the operator's generated RBAC
// allows; a net-conf.json it cannot read is a problem naming the
// ConfigMap and the field for network type Flannel only.
func TestPlainKubernetesNetworkDiscovered(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	noFlags := nodeconfig.ClusterFacts{APIServerURL: base.APIServerURL, CACertPEM: base.CACertPEM, DNSIP: base.DNSIP, KubernetesVersion: base.KubernetesVersion}
	system := flannelConfigMap(t, "kube-system", `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}`)
	flannelNS := flannelConfigMap(t, "kube-flannel", `{"Network": "10.132.0.0/14", "Backend": {"Type": "vxlan", "VNI": 4096, "Port": 4789}}`)

	src := clusterconfig.New(noFlags, core.Config{Namespace: ctrltest.Namespace, Platform: cluster.Kubernetes})
	ctrltest.StartManagerWithGeneratedRBAC(t, "system:serviceaccount:wmco-system:clusterconfig-network", func(mgr ctrl.Manager) error {
		return src.SetupWithManager(mgr)
	})
	want := cluster.CloneFacts(noFlags)
	want.ServiceCIDR, want.ClusterNetworkCIDR = localcluster.ServiceCIDR, "10.132.0.0/14"
	want.Flannel = nodeconfig.FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: "vxlan", VNI: 4096, Port: 4789}
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })

	// Without kube-flannel's namespace's, kube-system's.
	g.Expect(ctrltest.Client.Delete(ctx, flannelNS)).To(Succeed())
	want.ClusterNetworkCIDR = "10.244.0.0/16"
	want.Flannel = nodeconfig.FlannelFacts{Source: "kube-system/kube-flannel-cfg", Network: "10.244.0.0/16", Backend: "vxlan"}
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })

	// A backend Windows lacks: ignored for network type None...
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) { spec.Network.Type = wmcov1.NetworkNone })
	system.Data[cluster.FlannelNetConfKey] = `{"Network": "10.244.0.0/16", "Backend": {"Type": "wireguard"}}`
	g.Expect(ctrltest.Client.Update(ctx, system)).To(Succeed())
	want.ClusterNetworkCIDR, want.Flannel = "", nodeconfig.FlannelFacts{}
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })
	// ...a problem for Flannel.
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) { spec.Network.Type = wmcov1.NetworkFlannel })
	facts(g, src, `ConfigMap kube-system/kube-flannel-cfg: net-conf.json Backend.Type "wireguard" is not supported for Windows nodes (vxlan or host-gw)`,
		func(Gomega, nodeconfig.ClusterFacts) {})

	// No kube-flannel at all.
	g.Expect(ctrltest.Client.Delete(ctx, system)).To(Succeed())
	facts(g, src, "", func(g Gomega, f nodeconfig.ClusterFacts) { g.Expect(f).To(Equal(want)) })
}
