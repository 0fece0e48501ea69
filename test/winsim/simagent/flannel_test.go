package simagent

import (
	"encoding/json"
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
	proxy.Args = []string{"--network-name=flannel.4096", "--windows-service"}
	g.Expect(m.Create(ctx, proxy)).To(Succeed())
	g.Expect(m.Start(ctx, "kube-proxy")).To(MatchError(ErrProcessAborted))
	g.Expect(m.Running("kube-proxy")).To(BeFalse())
	g.Expect(m.LastError("kube-proxy")).To(MatchError(ContainSubstring(`Unable to find HNS Network specified, please check network name and CNI deployment: hnsNetworkName="flannel.4096"`)))
	g.Expect(m.StartLog()).To(BeEmpty(), "the process never reported running")

	// Its configuration file names the network just as well.
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.KubeProxyConfigPath, []byte(`{"winkernel":{"networkName":"cbr0"}}`))).To(Succeed())
	proxy.Args = []string{"--config=" + nodeconfig.KubeProxyConfigPath, "--windows-service"}
	g.Expect(m.Update(ctx, proxy)).To(Succeed())
	g.Expect(m.Start(ctx, "kube-proxy")).To(MatchError(ErrProcessAborted))
	g.Expect(m.LastError("kube-proxy")).To(MatchError(ContainSubstring(`hnsNetworkName="cbr0"`)))

	// flanneld, once its kubeconfig exists, creates the network its
	// net-conf.json names; then kube-proxy starts. flanneld is no
	// Windows service: it runs under the service host.
	flanneld := binSvc(n, "flanneld")
	flanneldArgs := []string{"--kube-subnet-mgr", "--kubeconfig-file=" + nodeconfig.KubeconfigPath, "--net-config-path=" + nodeconfig.FlannelNetConfPath}
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.FlannelNetConfPath, []byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}`))).To(Succeed())
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.KubeconfigPath, []byte("kubeconfig"))).To(Succeed())
	g.Expect(m.Create(ctx, hostedFlanneld(g, n, flanneld.Binary, flanneldArgs))).To(Succeed())
	g.Expect(m.Start(ctx, "flanneld")).To(Succeed())
	g.Eventually(n.Networks).Should(ConsistOf("cbr0"))
	g.Expect(m.Start(ctx, "kube-proxy")).To(Succeed())
	g.Expect(m.StartLog()).To(Equal([]string{"flanneld", "kube-proxy"}))
}

// hostedFlanneld is the flanneld service under the service host, the
// payload's wicd.exe, with its configuration written to the disk.
func hostedFlanneld(g Gomega, n *Node, binary string, args []string) wicdapi.Service {
	host := `C:\k\payload\v1\wicd.exe`
	g.Expect(n.Host.Disk().WriteFile(host, AgentImage("v1"))).To(Succeed())
	cfg, err := json.Marshal(wicdapi.ServiceHostConfig{Binary: binary, Args: args})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n.Host.Disk().MkdirAll(wicdapi.ServiceHostDir)).To(Succeed())
	g.Expect(n.Host.Disk().WriteFile(wicdapi.ServiceHostConfigPath("flanneld"), cfg)).To(Succeed())
	return wicdapi.Service{Name: "flanneld", Binary: host, Args: wicdapi.ServiceHostArgs("flanneld"),
		Env: map[string]string{"NODE_NAME": "win-a"}, StartType: wicdapi.StartAutomatic}
}

// A service whose program never connects to the service control manager
// fails to start, as Windows fails it with error 1053: flanneld
// registered as the service's binary does. Under the service host it
// starts, and the service host, kube-log-runner and flanneld hold their
// images and log until it stops.
func TestFlanneldRunsOnlyUnderTheServiceHost(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	n := startNode(t, Options{RecoveryScale: 1000})
	m := n.Services
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.FlannelNetConfPath, []byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`))).To(Succeed())
	g.Expect(n.Host.Disk().WriteFile(nodeconfig.KubeconfigPath, []byte("kubeconfig"))).To(Succeed())
	args := []string{"--kube-subnet-mgr", "--kubeconfig-file=" + nodeconfig.KubeconfigPath, "--net-config-path=" + nodeconfig.FlannelNetConfPath}

	direct := binSvc(n, "flanneld")
	direct.Args, direct.Env = args, map[string]string{"NODE_NAME": "win-a"}
	g.Expect(m.Create(ctx, direct)).To(Succeed())
	err := m.Start(ctx, "flanneld")
	g.Expect(err).To(MatchError(ErrServiceStartFail))
	g.Expect(err).To(MatchError(ContainSubstring("error 1053")))
	g.Expect(m.LastError("flanneld")).To(MatchError(ContainSubstring("flanneld.exe never connected to the service control manager")))
	g.Expect(m.Running("flanneld")).To(BeFalse())
	g.Expect(n.Networks()).To(BeEmpty(), "flanneld never ran")

	// Under kube-log-runner it does not connect either.
	runner := binSvc(n, "kube-log-runner")
	wrapped := direct
	wrapped.Binary, wrapped.Args = runner.Binary, append([]string{`-log-file=C:\var\log\flanneld\flanneld.log`, direct.Binary}, args...)
	g.Expect(m.Update(ctx, wrapped)).To(Succeed())
	g.Expect(m.Start(ctx, "flanneld")).To(MatchError(ContainSubstring("flanneld.exe (under kube-log-runner) never connected")))

	// The service host without its configuration stops at once.
	hosted := hostedFlanneld(g, n, runner.Binary, wrapped.Args)
	g.Expect(n.Host.Disk().Remove(wicdapi.ServiceHostConfigPath("flanneld"))).To(Succeed())
	g.Expect(m.Update(ctx, hosted)).To(Succeed())
	g.Expect(m.Start(ctx, "flanneld")).To(MatchError(ContainSubstring("does not exist")))
	g.Expect(m.Running("flanneld")).To(BeFalse())

	hosted = hostedFlanneld(g, n, runner.Binary, wrapped.Args)
	g.Expect(n.Host.Disk().MkdirAll(`C:\var\log\flanneld`)).To(Succeed())
	g.Expect(m.Start(ctx, "flanneld")).To(Succeed())
	g.Expect(m.Running("flanneld")).To(BeTrue())
	g.Eventually(n.Networks).Should(ConsistOf("flannel.4096"))
	for _, img := range []string{hosted.Binary, runner.Binary, direct.Binary, `C:\var\log\flanneld\flanneld.log`} {
		g.Expect(n.Host.Disk().Holders(img)).NotTo(BeEmpty(), "%s is held", img)
	}
	g.Expect(m.Stop(ctx, "flanneld")).To(Succeed())
	g.Eventually(func() []string { return n.Host.Disk().Holders(direct.Binary) }).Should(BeEmpty())
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
