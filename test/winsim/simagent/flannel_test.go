package simagent

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// kube-proxy does not start without the HNS network it is told to use,
// and starts once the network exists; flanneld creates its network.
func TestKubeProxyNeedsItsNetworkAndFlanneldCreatesIt(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	n := startNode(t, Options{RecoveryScale: 1000})
	m := n.Services

	proxy := binSvc(n, "kube-proxy")
	proxy.Args = []string{"--network-name=flannel.4096"}
	g.Expect(m.Create(ctx, proxy)).To(Succeed())
	g.Expect(m.Start(ctx, "kube-proxy")).To(MatchError(ErrProcessAborted))
	g.Expect(m.Running("kube-proxy")).To(BeFalse())
	g.Expect(m.LastError("kube-proxy")).To(MatchError(ContainSubstring(`Unable to find HNS Network specified, please check network name and CNI deployment: hnsNetworkName="flannel.4096"`)))
	g.Expect(m.StartLog()).To(BeEmpty(), "the process never reported running")

	// Its configuration file names the network just as well.
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.KubeProxyConfigPath, []byte(`{"winkernel":{"networkName":"cbr0"}}`))).To(Succeed())
	proxy.Args = []string{"--config=" + nodeconfig.KubeProxyConfigPath}
	g.Expect(m.Update(ctx, proxy)).To(Succeed())
	g.Expect(m.Start(ctx, "kube-proxy")).To(MatchError(ErrProcessAborted))
	g.Expect(m.LastError("kube-proxy")).To(MatchError(ContainSubstring(`hnsNetworkName="cbr0"`)))

	// flanneld, once its kubeconfig exists, creates the network its
	// net-conf.json names; then kube-proxy starts.
	flanneld := binSvc(n, "flanneld")
	flanneld.Args = []string{"--kube-subnet-mgr", "--kubeconfig-file=" + nodeconfig.KubeconfigPath, "--net-config-path=" + nodeconfig.FlannelNetConfPath}
	flanneld.Env = map[string]string{"NODE_NAME": "win-a"}
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.FlannelNetConfPath, []byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`))).To(Succeed())
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.KubeconfigPath, []byte("kubeconfig"))).To(Succeed())
	g.Expect(m.Create(ctx, flanneld)).To(Succeed())
	g.Expect(m.Start(ctx, "flanneld")).To(Succeed())
	g.Eventually(n.Networks).Should(ConsistOf("cbr0"))
	g.Expect(m.Start(ctx, "kube-proxy")).To(Succeed())
	g.Expect(m.StartLog()).To(Equal([]string{"flanneld", "kube-proxy"}))
}

// flanneld's network name follows flannel's Windows defaults, and its
// Windows backends' limits.
func TestFlannelNetwork(t *testing.T) {
	cases := []struct {
		conf, want, err string
	}{
		{conf: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`, want: "flannel.4096"},
		{conf: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":4097}}`, want: "flannel.4097"},
		{conf: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Name":"vxlan0"}}`, want: "vxlan0"},
		{conf: `{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`, want: "cbr0"},
		{conf: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":1}}`, err: "VNI [1] must be greater than or equal to 4096"},
		{conf: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","Port":8472}}`, err: "Port [8472] is not supported"},
		{conf: `{"Network":"10.244.0.0/16","Backend":{"Type":"wireguard"}}`, err: `backend type "wireguard" is not supported`},
		{conf: `{"Backend":{"Type":"vxlan"}}`, err: "Network"},
	}
	for _, tc := range cases {
		t.Run(tc.conf, func(t *testing.T) {
			g := NewWithT(t)
			got, err := FlannelNetwork([]byte(tc.conf))
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tc.want))
		})
	}
}

// The agent creates a host network only on an adapter the host has.
func TestCreateNetworkNeedsTheAdapter(t *testing.T) {
	g := NewWithT(t)
	n := startNode(t, Options{})
	addrs, err := n.system.Addresses()
	g.Expect(err).NotTo(HaveOccurred())
	ext := wicdapi.HostNetwork{Name: "External", Type: wicdapi.HostNetworkOverlay, AddressPrefix: "192.168.255.0/30",
		Gateway: "192.168.255.1", VSID: 9999, AdapterAddress: "203.0.113.9"}
	g.Expect(n.hns.CreateNetwork(t.Context(), ext)).To(MatchError(ContainSubstring("no network adapter holds 203.0.113.9")))
	ext.AdapterAddress = addrs[0]
	g.Expect(n.hns.CreateNetwork(t.Context(), ext)).To(Succeed())
	g.Expect(n.Networks()).To(ConsistOf("External"))
}
