/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package controllers_test

import (
	"context"
	"crypto/sha1" //nolint:gosec // Windows names certificates by their SHA-1 thumbprint.
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/openshiftcrds"
	"github.com/openwmco/wmco/test/ovnsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A simulated host joins a cluster shaped like a real OpenShift cluster
// with OVN-Kubernetes and a hybrid overlay: its kubelet, kube-proxy,
// hybrid-overlay and CNI settings carry what the cluster's configuration
// objects say (the API URL of the Infrastructure, the networks of the
// Network config, the hybrid cluster network and VXLAN port of the
// Network operator config, the DNS operator's Service, the kubelet client
// CA), and the node subnet OVN's allocator (its stand-in) annotated the
// Node with. It bootstraps as the node-bootstrapper: no bootstrap token
// Secret exists.
func TestOpenShiftOVNHostJoins(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hybrid := openshiftcrds.DefaultHybridOverlay
	oc := ctrltest.OpenShift(t, openshiftcrds.OVNOptions{HybridOverlay: &hybrid})
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{Platform: cluster.OpenShift})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 2*time.Minute)

	subnet := node.Annotations[ovnsim.AnnotationHostSubnet]
	g.Expect(subnet).NotTo(BeEmpty(), "OVN's allocator gave the Node a subnet")
	hostSubnet := netip.MustParsePrefix(subnet)
	g.Expect(netip.MustParsePrefix(hybrid.HybridClusterNetwork[0].CIDR).Contains(hostSubnet.Addr())).To(BeTrue())
	g.Expect(hostSubnet.Bits()).To(Equal(int(hybrid.HybridClusterNetwork[0].HostPrefix)))
	disk := h.Host.Disk()
	readJSON := func(path string, v any) {
		t.Helper()
		data, err := disk.ReadFile(path)
		g.Expect(err).NotTo(HaveOccurred(), path)
		g.Expect(json.Unmarshal(data, v)).To(Succeed(), path)
	}

	// The CNI configuration: the node's subnet; no NAT towards the hybrid
	// cluster network, the Linux pods' network and the services.
	var cni struct {
		IPAM struct {
			Subnet string `json:"subnet"`
		} `json:"ipam"`
		Policies []struct {
			Value struct {
				Type     string         `json:"type"`
				Settings map[string]any `json:"settings"`
			} `json:"value"`
		} `json:"policies"`
	}
	readJSON(nodeconfig.CNIConfigPath, &cni)
	g.Expect(cni.IPAM.Subnet).To(Equal(subnet))
	var exceptions []any
	for _, p := range cni.Policies {
		if p.Value.Type == "OutBoundNAT" {
			exceptions = p.Value.Settings["Exceptions"].([]any)
		}
	}
	g.Expect(exceptions).To(ContainElements(hybrid.HybridClusterNetwork[0].CIDR,
		openshiftcrds.DefaultClusterNetwork.CIDR, oc.Options.ServiceNetwork[0]))

	// kube-proxy: the hybrid cluster network, its source VIP in the
	// node's subnet.
	var proxy struct {
		ClusterCIDR string `json:"clusterCIDR"`
		Winkernel   struct {
			SourceVip string `json:"sourceVip"`
		} `json:"winkernel"`
	}
	readJSON(nodeconfig.KubeProxyConfigPath, &proxy)
	g.Expect(proxy.ClusterCIDR).To(Equal(hybrid.HybridClusterNetwork[0].CIDR))
	g.Expect(hostSubnet.Contains(netip.MustParseAddr(proxy.Winkernel.SourceVip))).To(BeTrue(), proxy.Winkernel.SourceVip)

	// The kubelet: the DNS operator's Service, the kubelet client CA.
	var kubelet struct {
		ClusterDNS     []string `json:"clusterDNS"`
		Authentication struct {
			X509 struct {
				ClientCAFile string `json:"clientCAFile"`
			} `json:"x509"`
		} `json:"authentication"`
	}
	readJSON(nodeconfig.KubeletConfigPath, &kubelet)
	g.Expect(kubelet.ClusterDNS).To(Equal([]string{oc.Options.DNSIP}))
	clientCA, err := disk.ReadFile(kubelet.Authentication.X509.ClientCAFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(clientCA).To(Equal(oc.KubeletClientCAPEM))

	// The kubelet bootstrapped against the Infrastructure's internal URL.
	data, err := disk.ReadFile(nodeconfig.BootstrapKubeconfigPath)
	g.Expect(err).NotTo(HaveOccurred())
	kc, err := clientcmd.Load(data)
	g.Expect(err).NotTo(HaveOccurred())
	for _, c := range kc.Clusters {
		g.Expect(c.Server).To(Equal(oc.Options.APIServerInternalURL))
	}

	// hybrid-overlay-node: the VXLAN port, a kubeconfig of its own.
	st, err := h.Services.Query(ctx, nodeconfig.ServiceHybridOverlay)
	g.Expect(err).NotTo(HaveOccurred())
	args := st.Config.Args
	i := slices.Index(args, "--hybrid-overlay-vxlan-port")
	g.Expect(i).To(BeNumerically(">=", 0), "%v", args)
	g.Expect(args[i+1]).To(Equal("9898"))
	i = slices.Index(args, "--k8s-kubeconfig")
	g.Expect(i).To(BeNumerically(">=", 0), "%v", args)
	g.Expect(args[i+1]).NotTo(Equal(nodeconfig.KubeconfigPath), "not the kubelet's kubeconfig")
	g.Expect(h.Networks()).To(ContainElements(nodeconfig.HybridOverlayNetwork, nodeconfig.BaseHybridOverlayNetwork))

	// No bootstrap token anywhere: the node-bootstrapper's token was used.
	secrets, err := ctrltest.Clientset.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	for _, s := range secrets.Items {
		g.Expect(s.Type).NotTo(Equal(corev1.SecretTypeBootstrapToken), "%s/%s", s.Namespace, s.Name)
	}
	ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
}

// Without a hybrid overlay on OVN-Kubernetes a Windows host cannot get a
// pod network: the instance says exactly what to configure and where, and
// the operator never connects to the host. Once it is configured, the host
// joins without anything else being done.
func TestOpenShiftWithoutHybridOverlayTouchesNoHost(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	oc := ctrltest.OpenShift(t, openshiftcrds.OVNOptions{})
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	dialer := ctrltest.StartOperator(t, ctrltest.OperatorOptions{Platform: cluster.OpenShift})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(hosts[0]))).To(Succeed())
	g.Eventually(func(g Gomega) {
		wi := &wmcov1.WindowsInstance{}
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: hosts[0].Name}, wi)).To(Succeed())
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionClusterConfigCompatible)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(instance.ReasonClusterConfigIncomplete))
		g.Expect(c.Message).To(And(ContainSubstring("hybridOverlayConfig"), ContainSubstring("networks.operator.openshift.io/cluster")))
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhasePending))
		t.Logf("condition: %s", c.Message)
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Consistently(dialer.Dials.Load).WithTimeout(3*time.Second).Should(BeZero(), "no host is connected to")
	_, err := hosts[0].Host.Disk().Stat(`C:\k`)
	g.Expect(err).To(HaveOccurred(), "nothing was put on the host")

	hybrid := openshiftcrds.DefaultHybridOverlay
	g.Expect(oc.SetHybridOverlay(context.Background(), &hybrid)).To(Succeed())
	ctrltest.WaitReady(t, hosts[0].Name, 2*time.Minute)
	ctrltest.DeleteAndWait(t, hosts[0].Name, 2*time.Minute)
}

// The cluster's Proxy, its trusted CA bundle and an ImageDigestMirrorSet
// change one after the other while two hosts run: every host's plan is
// rendered again and applied; the proxy restarts containerd and the
// kubelet (and the services that depend on them) and nothing else, the
// CA and the mirrors restart nothing; no Node is ever NotReady.
func TestOpenShiftSettingsChangesRestartOnlyAffectedServices(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hybrid := openshiftcrds.DefaultHybridOverlay
	oc := ctrltest.OpenShift(t, openshiftcrds.OVNOptions{HybridOverlay: &hybrid})
	hosts := ctrltest.StartHosts(t, 2, simagent.Options{})
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{Platform: cluster.OpenShift})
	for _, h := range hosts {
		g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	}
	for _, h := range hosts {
		ctrltest.WaitReady(t, h.Name, 2*time.Minute)
	}
	notReady := watchNodesNotReady(t, hosts)

	services := []string{nodeconfig.ServiceContainerd, nodeconfig.ServiceKubelet, nodeconfig.ServiceKubeProxy,
		nodeconfig.ServiceHybridOverlay, nodeconfig.ServiceCSIProxy, nodeconfig.ServiceWindowsExporter, wicdapi.AgentServiceName}
	starts := func() map[string]int {
		out := map[string]int{}
		for _, h := range hosts {
			for _, s := range services {
				out[h.Name+"/"+s] = h.Services.Starts(s)
			}
		}
		return out
	}
	restarted := func(before, after map[string]int) []string {
		var out []string
		for k, n := range after {
			if n != before[k] {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}

	// The proxy.
	before := starts()
	proxyURL := "http://proxy.example.test:3128"
	g.Expect(oc.SetProxy(ctx, configv1.ProxyStatus{HTTPProxy: proxyURL, HTTPSProxy: proxyURL, NoProxy: ".corp.example.test"})).To(Succeed())
	var want []string
	for _, h := range hosts {
		for _, s := range []string{nodeconfig.ServiceContainerd, nodeconfig.ServiceKubelet} {
			g.Eventually(func(g Gomega) {
				st, err := h.Services.Query(ctx, s)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(st.Config.Env).To(HaveKeyWithValue("HTTPS_PROXY", proxyURL), s)
				g.Expect(st.Config.Env["NO_PROXY"]).To(And(ContainSubstring(".corp.example.test"), ContainSubstring(oc.Options.ServiceNetwork[0])), s)
				g.Expect(h.Services.Starts(s)).To(Equal(before[h.Name+"/"+s]+1), "%s restarted once", s)
			}).WithTimeout(time.Minute).Should(Succeed())
		}
		for _, s := range []string{nodeconfig.ServiceCSIProxy, nodeconfig.ServiceWindowsExporter} {
			st, err := h.Services.Query(ctx, s)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(st.Config.Env).NotTo(HaveKey("HTTPS_PROXY"), s)
		}
		// kube-proxy and hybrid-overlay depend on the kubelet: Windows
		// stops them to stop it.
		for _, s := range []string{nodeconfig.ServiceContainerd, nodeconfig.ServiceHybridOverlay, nodeconfig.ServiceKubeProxy, nodeconfig.ServiceKubelet} {
			want = append(want, h.Name+"/"+s)
		}
	}
	slices.Sort(want)
	g.Eventually(func() []string { return restarted(before, starts()) }).WithTimeout(30 * time.Second).Should(Equal(want))
	g.Consistently(func() []string { return restarted(before, starts()) }).WithTimeout(2 * time.Second).Should(Equal(want))
	t.Logf("proxy set: restarted %v", want)

	// The trusted CA bundle, injected as the Cluster Network Operator does.
	before = starts()
	caPEM, err := openshiftcrds.NewCAPEM("corp-root")
	g.Expect(err).NotTo(HaveOccurred())
	block, _ := pem.Decode(caPEM)
	thumb := sha1.Sum(block.Bytes)
	g.Expect(oc.InjectTrustedCA(ctx, ctrltest.Namespace, cluster.TrustedCAName, caPEM)).To(Succeed())
	for _, h := range hosts {
		g.Eventually(h.RootCertificates).WithTimeout(time.Minute).Should(ContainElement(MatchRegexp("(?i)^" + hex.EncodeToString(thumb[:]) + "$")))
	}
	g.Consistently(func() []string { return restarted(before, starts()) }).WithTimeout(2 * time.Second).Should(BeEmpty())
	t.Log("trusted CA injected: imported on every host, nothing restarted")

	// An ImageDigestMirrorSet.
	idms := &configv1.ImageDigestMirrorSet{
		ObjectMeta: metav1.ObjectMeta{Name: "corp-mirror"},
		Spec: configv1.ImageDigestMirrorSetSpec{ImageDigestMirrors: []configv1.ImageDigestMirrors{{
			Source: "registry.example.test/team/app", Mirrors: []configv1.ImageMirror{"mirror.example.test/team/app"},
		}}},
	}
	g.Expect(oc.Client.Create(ctx, idms)).To(Succeed())
	t.Cleanup(func() { _ = oc.Client.Delete(context.Background(), idms) })
	hostsTOML := nodeconfig.ContainerdHostsDir + `\registry.example.test\hosts.toml`
	for _, h := range hosts {
		g.Eventually(func() string {
			data, _ := h.Host.Disk().ReadFile(hostsTOML)
			return string(data)
		}).WithTimeout(time.Minute).Should(And(ContainSubstring("mirror.example.test"), ContainSubstring(`"pull"`)))
	}
	g.Consistently(func() []string { return restarted(before, starts()) }).WithTimeout(2 * time.Second).Should(BeEmpty())
	t.Log("mirror set created: hosts.toml on every host, nothing restarted")

	// The kubelet client CA rotates: the kubelet reloads the file.
	rotated, err := openshiftcrds.NewCAPEM("kube-apiserver-to-kubelet-signer-2")
	g.Expect(err).NotTo(HaveOccurred())
	bundle := append(append([]byte(nil), oc.KubeletClientCAPEM...), rotated...)
	clientCA := &corev1.ConfigMap{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: cluster.KubeletClientCANamespace, Name: cluster.KubeletClientCAName}, clientCA)).To(Succeed())
	clientCA.Data[cluster.CABundleKey] = string(bundle)
	g.Expect(ctrltest.Client.Update(ctx, clientCA)).To(Succeed())
	for _, h := range hosts {
		g.Eventually(func() []byte {
			data, _ := h.Host.Disk().ReadFile(nodeconfig.KubeletClientCAPath)
			return data
		}).WithTimeout(time.Minute).Should(Equal(bundle))
	}
	g.Consistently(func() []string { return restarted(before, starts()) }).WithTimeout(2 * time.Second).Should(BeEmpty())
	t.Log("kubelet client CA rotated: the new bundle on every host, nothing restarted")

	g.Expect(notReady()).To(BeEmpty(), "no Node was ever NotReady")
	for _, h := range hosts {
		ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
	}
}

// watchNodesNotReady watches the hosts' Nodes until the test ends and
// returns what reports every moment one of them was not Ready.
func watchNodesNotReady(t *testing.T, hosts []*ctrltest.SimHost) func() []string {
	t.Helper()
	names := map[string]bool{}
	for _, h := range hosts {
		names[h.Name] = true
	}
	w, err := ctrltest.Clientset.CoreV1().Nodes().Watch(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watch Nodes: %v", err)
	}
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			n, ok := ev.Object.(*corev1.Node)
			if !ok || !names[n.Name] || ev.Type == watch.Deleted {
				continue
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
					mu.Lock()
					seen = append(seen, n.Name+": "+string(c.Status)+" "+c.Reason)
					mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { w.Stop(); <-done })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}
