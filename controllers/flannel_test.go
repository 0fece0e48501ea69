/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package controllers_test

import (
	"slices"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// A simulated host joins a plain Kubernetes cluster with network type
// Flannel: the local control plane's node IPAM gives its Node a podCIDR,
// the host's win-overlay configuration hands pods addresses from it on
// flannel's network, flanneld started before kube-proxy (which the
// simulator refuses to start without flannel's HNS network), and
// deleting the instance removes flannel's networks.
func TestFlannelHostJoinsWithNodeIPAMPodCIDR(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ctrltest.HostFixture(t)
	ctrltest.SetNodeConfig(t, func(spec *wmcov1.WindowsNodeConfigSpec) {
		spec.Network = wmcov1.NetworkSpec{Type: wmcov1.NetworkFlannel}
	})
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{RecoveryScale: 0.1})
	h := hosts[0]
	g.Expect(ctrltest.NodeMayListNodes(g, h.Name)).To(BeFalse(), "the Node authorizer lets a node read only its own Node")
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{})
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(h))).To(Succeed())
	node := ctrltest.WaitReady(t, h.Name, 2*time.Minute)

	// The CNI configuration and kube-proxy follow once node IPAM has
	// assigned the podCIDR.
	vxlan := nodeconfig.FlannelVXLANNetwork(nodeconfig.DefaultFlannelVNI)
	g.Eventually(func(g Gomega) {
		g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, node)).To(Succeed())
		g.Expect(node.Spec.PodCIDR).NotTo(BeEmpty(), "node IPAM assigns a podCIDR")
		g.Expect(h.CheckCNISubnet(node.Spec.PodCIDR)).To(Succeed())
		g.Expect(h.Services.Running(nodeconfig.ServiceKubeProxy)).To(BeTrue())
	}).WithTimeout(2 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	cni, err := h.CNIConfig()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cni).To(Equal(simagent.CNIConfig{Name: vxlan, Type: "win-overlay", Subnet: node.Spec.PodCIDR}))
	g.Expect(h.Networks()).To(ConsistOf(nodeconfig.FlannelExternalNetwork, vxlan))
	g.Expect(h.Services.Running(nodeconfig.ServiceFlanneld)).To(BeTrue())
	// flanneld runs under the service host, with the node's credentials,
	// which may list Nodes as its kube subnet manager does.
	svc, err := h.Services.Query(ctx, nodeconfig.ServiceFlanneld)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(wicdapi.IsServiceHost(svc.Config)).To(BeTrue(), "%+v", svc.Config)
	g.Eventually(func(g Gomega) bool { return ctrltest.NodeMayListNodes(g, node.Name) }).WithTimeout(30 * time.Second).Should(BeTrue())

	// A podCIDR other than the Node's is told apart.
	g.Expect(h.CheckCNISubnet("10.132.200.0/24")).To(MatchError(ContainSubstring("but the Node's podCIDR is 10.132.200.0/24")))

	// flanneld's first start came before kube-proxy's first start.
	log := h.Services.StartLog()
	flannel, proxy := slices.Index(log, nodeconfig.ServiceFlanneld), slices.Index(log, nodeconfig.ServiceKubeProxy)
	g.Expect(flannel).To(BeNumerically(">=", 0), "start log %v", log)
	g.Expect(proxy).To(BeNumerically(">", flannel), "start log %v", log)

	ctrltest.DeleteAndWait(t, h.Name, 2*time.Minute)
	ctrltest.ExpectHostClean(g, h)
	g.Eventually(func(g Gomega) bool { return ctrltest.NodeMayListNodes(g, node.Name) }).WithTimeout(30*time.Second).Should(BeFalse(),
		"no Node of network type Flannel remains: the binding is gone")
}
