package cluster_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

func TestNetworkMismatches(t *testing.T) {
	const netConf = "net-conf.json of ConfigMap kube-flannel/kube-flannel-cfg"
	// windows is a cluster whose kube-flannel is configured for Windows
	// nodes (sig-windows-tools).
	windows := nodeconfig.ClusterFacts{
		ServiceCIDR: "10.96.0.0/12", ClusterNetworkCIDR: "10.244.0.0/16",
		Flannel: nodeconfig.FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.244.0.0/16", Backend: "vxlan", VNI: 4096, Port: 4789},
	}
	// stock is kube-flannel.yml as released: vxlan with flannel's Linux
	// defaults.
	stock := cluster.CloneFacts(windows)
	stock.Flannel.VNI, stock.Flannel.Port = 0, 0
	hostGW := cluster.CloneFacts(windows)
	hostGW.Flannel.Backend, hostGW.Flannel.VNI, hostGW.Flannel.Port = "host-gw", 0, 0
	noFlannel := nodeconfig.ClusterFacts{ServiceCIDR: "10.96.0.0/12"}
	flannel := wmcov1.NetworkSpec{Type: wmcov1.NetworkFlannel}
	with := func(mutate func(*wmcov1.NetworkSpec)) wmcov1.NetworkSpec {
		s := *flannel.DeepCopy()
		mutate(&s)
		return s
	}
	with2 := func(f nodeconfig.ClusterFacts, mutate func(*nodeconfig.ClusterFacts)) nodeconfig.ClusterFacts {
		f = cluster.CloneFacts(f)
		mutate(&f)
		return f
	}

	cases := []struct {
		name    string
		spec    wmcov1.NetworkSpec
		facts   nodeconfig.ClusterFacts
		podCIDR string
		want    []string
	}{
		{name: "matches", spec: flannel, facts: windows, podCIDR: "10.244.3.0/24"},
		{name: "matches with the spec saying the same", facts: windows, podCIDR: "10.244.3.0/24", spec: with(func(s *wmcov1.NetworkSpec) {
			s.ClusterNetworkCIDR = "10.244.0.0/16"
			s.Flannel = &wmcov1.FlannelSpec{Backend: wmcov1.FlannelBackendVXLAN, VNI: ptr.To[int32](4096)}
			s.VXLANPort = ptr.To[int32](4789)
		})},
		{name: "other network types are not checked", spec: wmcov1.NetworkSpec{Type: wmcov1.NetworkNone, ClusterNetworkCIDR: "10.1.0.0/16"}, facts: stock, podCIDR: "192.168.0.0/24"},
		{name: "OVN hybrid overlay is not checked", spec: wmcov1.NetworkSpec{Type: wmcov1.NetworkOVNHybridOverlay}, facts: noFlannel},
		{
			name: "the spec's cluster network differs", facts: windows,
			spec: with(func(s *wmcov1.NetworkSpec) { s.ClusterNetworkCIDR = "10.128.0.0/14" }),
			want: []string{"the cluster network 10.128.0.0/14 (WindowsNodeConfig cluster spec.network.clusterNetworkCIDR) differs from Network 10.244.0.0/16 in " + netConf},
		},
		{
			name: "--cluster-cidr differs", spec: flannel,
			facts: with2(windows, func(f *nodeconfig.ClusterFacts) { f.ClusterNetworkCIDR = "10.245.0.0/16" }),
			want:  []string{"the cluster network 10.245.0.0/16 (the operator's --cluster-cidr) differs from Network 10.244.0.0/16 in " + netConf},
		},
		{
			name: "the same network spelled otherwise", facts: windows,
			spec: with(func(s *wmcov1.NetworkSpec) { s.ClusterNetworkCIDR = "10.244.9.9/16" }),
		},
		{
			name: "no kube-flannel and no cluster network", spec: flannel, facts: noFlannel,
			want: []string{"network type Flannel needs the cluster's pod network: no ConfigMap kube-flannel-cfg in namespace kube-flannel or kube-system, and neither WindowsNodeConfig cluster spec.network.clusterNetworkCIDR nor the operator's --cluster-cidr is set (the Nodes' podCIDRs show only the subnets allocated so far, not the network they come from)"},
		},
		{name: "no kube-flannel, the spec sets the network: Windows defaults", facts: noFlannel, podCIDR: "10.5.1.0/24", spec: with(func(s *wmcov1.NetworkSpec) { s.ClusterNetworkCIDR = "10.5.0.0/16" })},
		{name: "no kube-flannel, --cluster-cidr sets the network", spec: flannel, facts: with2(noFlannel, func(f *nodeconfig.ClusterFacts) { f.ClusterNetworkCIDR = "10.5.0.0/16" })},
		{
			name: "stock kube-flannel: Linux defaults differ from what Windows needs", spec: flannel, facts: stock,
			want: []string{
				"the VXLAN VNI 4096 (flannel's default on Windows) differs from Backend.VNI (unset: 1, flannel's default on Linux) in " + netConf,
				"the VXLAN port 4789 (flannel's default on Windows) differs from Backend.Port (unset: 8472, flannel's default on Linux) in " + netConf,
			},
		},
		{
			name: "the spec's VNI differs", facts: windows,
			spec: with(func(s *wmcov1.NetworkSpec) { s.Flannel = &wmcov1.FlannelSpec{VNI: ptr.To[int32](4097)} }),
			want: []string{"the VXLAN VNI 4097 (WindowsNodeConfig cluster spec.network.flannel.vni) differs from Backend.VNI 4096 in " + netConf},
		},
		{
			name: "the spec's port differs and Windows refuses it", facts: windows,
			spec: with(func(s *wmcov1.NetworkSpec) { s.VXLANPort = ptr.To[int32](8472) }),
			want: []string{
				"the VXLAN port 8472 (WindowsNodeConfig cluster spec.network.vxlanPort) differs from Backend.Port 4789 in " + netConf,
				"the VXLAN port 8472 (WindowsNodeConfig cluster spec.network.vxlanPort) is not 4789, the only one flannel accepts on Windows (set Backend.Port to 4789 in kube-flannel's net-conf.json)",
			},
		},
		{
			name: "the cluster's VNI and port, which Windows refuses", spec: flannel,
			facts: with2(windows, func(f *nodeconfig.ClusterFacts) { f.Flannel.VNI, f.Flannel.Port = 1, 8472 }),
			want: []string{
				"the VXLAN VNI 1 (" + netConf + ") is below 4096, the least flannel accepts on Windows (set Backend.VNI to 4096 or more in kube-flannel's net-conf.json)",
				"the VXLAN port 8472 (" + netConf + ") is not 4789, the only one flannel accepts on Windows (set Backend.Port to 4789 in kube-flannel's net-conf.json)",
			},
		},
		{
			name: "no kube-flannel, a VNI Windows refuses", facts: noFlannel,
			spec: with(func(s *wmcov1.NetworkSpec) {
				s.ClusterNetworkCIDR = "10.5.0.0/16"
				s.Flannel = &wmcov1.FlannelSpec{VNI: ptr.To[int32](7)}
			}),
			want: []string{"the VXLAN VNI 7 (WindowsNodeConfig cluster spec.network.flannel.vni) is below 4096, the least flannel accepts on Windows (set Backend.VNI to 4096 or more in kube-flannel's net-conf.json)"},
		},
		{
			name: "the spec's backend differs", facts: windows,
			spec: with(func(s *wmcov1.NetworkSpec) { s.Flannel = &wmcov1.FlannelSpec{Backend: wmcov1.FlannelBackendHostGW} }),
			want: []string{"the flannel backend host-gw (WindowsNodeConfig cluster spec.network.flannel.backend) differs from Backend.Type vxlan in " + netConf},
		},
		{name: "host-gw matches: no VXLAN settings", spec: flannel, facts: hostGW, podCIDR: "10.244.1.0/24"},
		{
			name: "host-gw cluster, the spec asks for VXLAN", facts: hostGW,
			spec: with(func(s *wmcov1.NetworkSpec) { s.Flannel = &wmcov1.FlannelSpec{Backend: wmcov1.FlannelBackendVXLAN} }),
			want: []string{"the flannel backend vxlan (WindowsNodeConfig cluster spec.network.flannel.backend) differs from Backend.Type host-gw in " + netConf},
		},
		{
			name: "host-gw cluster with a VXLAN port in the spec", facts: hostGW,
			spec: with(func(s *wmcov1.NetworkSpec) { s.VXLANPort = ptr.To[int32](4789) }),
			want: []string{"WindowsNodeConfig cluster spec.network.vxlanPort 4789 applies only to flannel's vxlan backend, and the backend is host-gw (" + netConf + ")"},
		},
		{
			name: "the Node's podCIDR outside the cluster network", spec: flannel, facts: windows, podCIDR: "10.245.1.0/24",
			want: []string{"the Node's podCIDR 10.245.1.0/24 is outside the cluster network 10.244.0.0/16 (" + netConf + ")"},
		},
		{
			name: "the Node's podCIDR larger than the cluster network", spec: flannel, facts: windows, podCIDR: "10.244.0.0/15",
			want: []string{"the Node's podCIDR 10.244.0.0/15 is outside the cluster network 10.244.0.0/16 (" + netConf + ")"},
		},
		{
			name: "host-gw: the Node's podCIDR outside the spec's network", facts: hostGW, podCIDR: "10.244.1.0/24",
			spec: with(func(s *wmcov1.NetworkSpec) { s.ClusterNetworkCIDR = "10.10.0.0/16" }),
			want: []string{
				"the cluster network 10.10.0.0/16 (WindowsNodeConfig cluster spec.network.clusterNetworkCIDR) differs from Network 10.244.0.0/16 in " + netConf,
				"the Node's podCIDR 10.244.1.0/24 is outside the cluster network 10.10.0.0/16 (WindowsNodeConfig cluster spec.network.clusterNetworkCIDR)",
			},
		},
		{
			name: "a podCIDR that is not a CIDR", spec: flannel, facts: windows, podCIDR: "garbage",
			want: []string{`the Node's podCIDR "garbage" is not a CIDR`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(cluster.NetworkMismatches(tc.spec, tc.facts, tc.podCIDR)).To(Equal(tc.want))
		})
	}
}
