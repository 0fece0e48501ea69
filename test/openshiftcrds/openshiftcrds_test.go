package openshiftcrds

import (
	"os"
	"testing"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/test/localcluster"
)

// Every listed manifest is in the pinned module and defines the CRD its
// name promises, in the Default feature set where there is one manifest
// per feature set (else in the one manifest for all).
func TestFilesAreTheDefaultCRDs(t *testing.T) {
	allSets := map[string]bool{Proxy: true, ImageDigestMirrorSet: true, ImageTagMirrorSet: true}
	for file, name := range map[string]string{
		Machine:              "machines.machine.openshift.io",
		MachineSet:           "machinesets.machine.openshift.io",
		Infrastructure:       "infrastructures.config.openshift.io",
		Network:              "networks.config.openshift.io",
		OperatorNetwork:      "networks.operator.openshift.io",
		Proxy:                "proxies.config.openshift.io",
		ImageDigestMirrorSet: "imagedigestmirrorsets.config.openshift.io",
		ImageTagMirrorSet:    "imagetagmirrorsets.config.openshift.io",
		ClusterVersion:       "clusterversions.config.openshift.io",
		DNS:                  "dnses.config.openshift.io",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p, err := Path(file)
			g.Expect(err).NotTo(HaveOccurred())
			data, err := os.ReadFile(p)
			g.Expect(err).NotTo(HaveOccurred())
			var crd apiextensionsv1.CustomResourceDefinition
			g.Expect(yaml.Unmarshal(data, &crd)).To(Succeed())
			g.Expect(crd.Name).To(Equal(name))
			if allSets[file] {
				g.Expect(crd.Annotations).NotTo(HaveKey("release.openshift.io/feature-set"))
			} else {
				g.Expect(crd.Annotations).To(HaveKeyWithValue("release.openshift.io/feature-set", "Default"))
			}
		})
	}
	g := NewWithT(t)
	g.Expect(Files).To(ContainElements(Machine, MachineSet, Infrastructure))
	g.Expect(ClusterConfigFiles).To(ContainElements(Infrastructure, Network, OperatorNetwork, Proxy, ImageDigestMirrorSet, ImageTagMirrorSet))
	_, err := Path("config/v1/no-such.crd.yaml")
	g.Expect(err).To(HaveOccurred())
}

// The OVN cluster's objects pass the real CRDs' validation and read back
// as a real cluster has them; the stand-in injects the trusted CA only
// into a labelled ConfigMap.
func TestOVNCluster(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = c.Stop() }()
	g.Expect(Install(ctx, c.Config, ClusterConfigFiles...)).To(Succeed())

	oc, err := NewOVNCluster(ctx, c.Config, OVNOptions{
		APIServerInternalURL: c.Host, HybridOverlay: &DefaultHybridOverlay,
		Proxy: configv1.ProxyStatus{HTTPProxy: "http://proxy.example.test:3128"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	infra := &configv1.Infrastructure{}
	g.Expect(oc.Client.Get(ctx, client.ObjectKey{Name: "cluster"}, infra)).To(Succeed())
	g.Expect(infra.Status.APIServerInternalURL).To(Equal(c.Host))
	g.Expect(infra.Status.APIServerURL).To(Equal("https://api.ocp.example.test:6443"))
	network := &configv1.Network{}
	g.Expect(oc.Client.Get(ctx, client.ObjectKey{Name: "cluster"}, network)).To(Succeed())
	g.Expect(network.Status.NetworkType).To(Equal("OVNKubernetes"))
	g.Expect(network.Status.ServiceNetwork).To(Equal([]string{localcluster.ServiceCIDR}))
	g.Expect(network.Status.ClusterNetwork).To(Equal([]configv1.ClusterNetworkEntry{DefaultClusterNetwork}))
	opNet := &operatorv1.Network{}
	g.Expect(oc.Client.Get(ctx, client.ObjectKey{Name: "cluster"}, opNet)).To(Succeed())
	g.Expect(opNet.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig).To(Equal(&DefaultHybridOverlay))
	proxy := &configv1.Proxy{}
	g.Expect(oc.Client.Get(ctx, client.ObjectKey{Name: "cluster"}, proxy)).To(Succeed())
	g.Expect(proxy.Status.HTTPProxy).To(Equal("http://proxy.example.test:3128"))
	svc := &corev1.Service{}
	g.Expect(oc.Client.Get(ctx, client.ObjectKey{Namespace: "openshift-dns", Name: "dns-default"}, svc)).To(Succeed())
	g.Expect(svc.Spec.ClusterIP).To(Equal("10.0.0.10"))
	cm := &corev1.ConfigMap{}
	g.Expect(oc.Client.Get(ctx, client.ObjectKey{Namespace: "openshift-kube-apiserver-operator", Name: "kube-apiserver-to-kubelet-client-ca"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKeyWithValue("ca-bundle.crt", string(oc.KubeletClientCAPEM)))
	g.Expect(cluster.ValidateCABundle(oc.KubeletClientCAPEM)).To(Succeed())

	g.Expect(oc.SetHybridOverlay(ctx, nil)).To(Succeed())
	g.Expect(oc.Client.Get(ctx, client.ObjectKey{Name: "cluster"}, opNet)).To(Succeed())
	g.Expect(opNet.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig).To(BeNil())

	plain := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "trusted-ca"}}
	g.Expect(oc.Client.Create(ctx, plain)).To(Succeed())
	g.Expect(oc.InjectTrustedCA(ctx, "default", "trusted-ca", oc.KubeletClientCAPEM)).To(MatchError(ContainSubstring("lacks label")))
	plain.Labels = map[string]string{cluster.TrustedCAInjectLabel: "true"}
	g.Expect(oc.Client.Update(ctx, plain)).To(Succeed())
	g.Expect(oc.InjectTrustedCA(ctx, "default", "trusted-ca", oc.KubeletClientCAPEM)).To(Succeed())

	g.Expect(oc.Delete(ctx)).To(Succeed())
	g.Expect(apierrors.IsNotFound(oc.Client.Get(ctx, client.ObjectKey{Name: "cluster"}, &configv1.Infrastructure{}))).To(BeTrue())
	g.Expect(apierrors.IsNotFound(oc.Client.Get(ctx, client.ObjectKey{Name: "cluster"}, &operatorv1.Network{}))).To(BeTrue())
}
