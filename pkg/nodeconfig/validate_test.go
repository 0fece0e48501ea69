/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
)

func TestValidation(t *testing.T) {
	port := func(p int32) *int32 { return &p }
	cases := []struct {
		name   string
		mutate func(in *Inputs)
		// want are substrings of the error; none means the inputs render.
		want []string
	}{
		{name: "valid", mutate: func(*Inputs) {}},
		{name: "valid without labels", mutate: func(in *Inputs) { in.NodeLabels = nil }},
		{name: "valid service account token", mutate: func(in *Inputs) {
			in.BootstrapToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl"
		}},
		{name: "valid kubelet two minors older", mutate: func(in *Inputs) { in.Payload.KubernetesVersion = "v1.35.4" }},
		{name: "valid API server URL with trailing slash", mutate: func(in *Inputs) { in.Cluster.APIServerURL = "https://10.0.0.1:6443/" }},

		// Network.
		{name: "unknown network type", mutate: func(in *Inputs) { in.Config.Network.Type = "Calico" },
			want: []string{`config.network.type: "Calico" is not one of OVNHybridOverlay, Flannel, None`}},
		{name: "vxlan port out of range", mutate: func(in *Inputs) { in.Config.Network.VXLANPort = port(70000) },
			want: []string{"config.network.vxlanPort: 70000 must be between 1 and 65535"}},
		{name: "vxlan port with network None", mutate: func(in *Inputs) {
			in.Config.Network = wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkNone, VXLANPort: port(4789)}
			in.HostSubnet = ""
		}, want: []string{"config.network.vxlanPort: applies only to network types OVNHybridOverlay and Flannel"}},
		{name: "custom vxlan port on Windows Server 2019", mutate: func(in *Inputs) {
			in.Host.OSBuild = OSBuildServer2019
			in.Config.Network.VXLANPort = port(9898)
		}, want: []string{"config.network.vxlanPort: 9898 is not supported on Windows Server 2019 (build 17763)"}},
		{name: "default vxlan port on Windows Server 2019", mutate: func(in *Inputs) { in.Host.OSBuild = OSBuildServer2019 }},
		{name: "custom vxlan port on Windows Server 2025", mutate: func(in *Inputs) {
			in.Host.OSBuild = OSBuildServer2025
			in.Config.Network.VXLANPort = port(9898)
		}},

		// Flannel.
		{name: "flannel with the cluster network from the config", mutate: withFlannel},
		{name: "flannel with the cluster network from kube-flannel", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.ClusterNetworkCIDR = ""
			in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: "vxlan", VNI: 4096, Port: 4789}
		}},
		{name: "flannel without a cluster network", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.ClusterNetworkCIDR = ""
			in.Cluster.Flannel = FlannelFacts{}
		}, want: []string{"cluster.clusterNetworkCIDR: must be set"}},
		{name: "flannel host subnet outside kube-flannel's network", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.ClusterNetworkCIDR = ""
			in.Cluster.Flannel = FlannelFacts{Source: "kube-system/kube-flannel-cfg", Network: "10.244.0.0/16", Backend: "vxlan"}
		}, want: []string{"hostSubnet: 10.132.4.0/24 is not inside the cluster network 10.244.0.0/16"}},
		{name: "flannel host subnet outside the config's network", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Config.Network.ClusterNetworkCIDR = "10.244.0.0/16"
		}, want: []string{"hostSubnet: 10.132.4.0/24 is not inside the cluster network 10.244.0.0/16"}},
		{name: "flannel VNI below 4096 from kube-flannel", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: "vxlan", VNI: 1}
		}, want: []string{"cluster.flannel.vni: 1 must be between 4096 and 16777215"}},
		{name: "flannel VNI from the config overrides kube-flannel's", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: "vxlan", VNI: 1}
			in.Config.Network.Flannel = &wmcov1alpha1.FlannelSpec{VNI: port(4097)}
		}},
		{name: "flannel port other than 4789", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Config.Network.VXLANPort = port(8472)
		}, want: []string{"config.network.vxlanPort: 8472 is not supported: flannel on Windows only uses VXLAN port 4789"}},
		{name: "flannel port 8472 from kube-flannel", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: "vxlan", Port: 8472}
		}, want: []string{"cluster.flannel.port: 8472 is not supported"}},
		{name: "flannel backend wireguard from kube-flannel", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: "wireguard"}
		}, want: []string{`cluster.flannel.backend: kube-flannel's backend "wireguard" (kube-flannel/kube-flannel-cfg) is not supported on Windows`}},
		{name: "flannel host-gw from kube-flannel", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Cluster.Flannel = FlannelFacts{Source: "kube-flannel/kube-flannel-cfg", Network: "10.132.0.0/14", Backend: "host-gw"}
		}},
		{name: "flannel VNI with host-gw", mutate: func(in *Inputs) {
			withFlannelHostGW(in)
			in.Config.Network.Flannel.VNI = port(4096)
		}, want: []string{"config.network.flannel.vni: applies only to the VXLAN backend"}},
		{name: "flannel settings with another network type", mutate: func(in *Inputs) {
			in.Config.Network.Flannel = &wmcov1alpha1.FlannelSpec{Backend: wmcov1alpha1.FlannelBackendVXLAN}
		}, want: []string{"config.network.flannel: applies only to network type Flannel"}},
		{name: "flannel with a payload without flanneld", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Payload = testManifest()
		}, want: []string{"payload: holds no flanneld.exe, which network type Flannel needs"}},
		{name: "flannel host-gw with a payload without win-bridge", mutate: func(in *Inputs) {
			withFlannelHostGW(in)
			in.Payload = withFlannelPayload(testManifest(), false)
		}, want: []string{"payload: holds no cni/win-bridge.exe"}},
		{name: "flannel with an IPv6 node IP", mutate: func(in *Inputs) {
			withFlannel(in)
			in.Host.Addresses = []string{"fd00::1234"}
		}, want: []string{"host.addresses[0]: fd00::1234: the node IP must be IPv4"}},

		// Cluster facts.
		{name: "no API server", mutate: func(in *Inputs) { in.Cluster.APIServerURL = "" },
			want: []string{"cluster.apiServerURL: must be set"}},
		{name: "http API server", mutate: func(in *Inputs) { in.Cluster.APIServerURL = "http://api:6443" },
			want: []string{`cluster.apiServerURL: "http://api:6443" must be an https:// URL`}},
		{name: "API server with path", mutate: func(in *Inputs) { in.Cluster.APIServerURL = "https://api:6443/k8s?x=1" },
			want: []string{"must be scheme, host and port only"}},
		{name: "API server with credentials", mutate: func(in *Inputs) { in.Cluster.APIServerURL = "https://user:pw@api:6443" },
			want: []string{"cluster.apiServerURL: must not hold credentials"}},
		{name: "no CA", mutate: func(in *Inputs) { in.Cluster.CACertPEM = nil },
			want: []string{"cluster.caCertPEM: must be set"}},
		{name: "CA not PEM", mutate: func(in *Inputs) { in.Cluster.CACertPEM = []byte("hello") },
			want: []string{"cluster.caCertPEM: holds no PEM certificate"}},
		{name: "CA is a key", mutate: func(in *Inputs) {
			in.Cluster.CACertPEM = []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, want: []string{`cluster.caCertPEM: PEM block 1 is a "PRIVATE KEY", not a CERTIFICATE`}},
		{name: "CA garbage certificate", mutate: func(in *Inputs) {
			in.Cluster.CACertPEM = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}, want: []string{"cluster.caCertPEM: certificate 1 is not a valid X.509 certificate"}},
		{name: "CA with trailing data", mutate: func(in *Inputs) { in.Cluster.CACertPEM = append(testCA(t), "junk"...) },
			want: []string{"cluster.caCertPEM: holds data after the last PEM certificate"}},
		{name: "no service CIDR", mutate: func(in *Inputs) { in.Cluster.ServiceCIDR = "" },
			want: []string{"cluster.serviceCIDR: must be set"}},
		{name: "service CIDR with host bits", mutate: func(in *Inputs) { in.Cluster.ServiceCIDR = "172.30.0.1/16" },
			want: []string{`cluster.serviceCIDR: "172.30.0.1/16" has host bits set; did you mean 172.30.0.0/16?`}},
		{name: "bad service CIDR in config", mutate: func(in *Inputs) { in.Config.Network.ServiceNetworkCIDR = "nope" },
			want: []string{`config.network.serviceNetworkCIDR: "nope" is not a CIDR`}},
		{name: "IPv6 service CIDR with hybrid overlay", mutate: func(in *Inputs) { in.Cluster.ServiceCIDR = "fd00::/108" },
			want: []string{"cluster.serviceCIDR: fd00::/108 must be IPv4"}},
		{name: "no cluster network with hybrid overlay", mutate: func(in *Inputs) { in.Cluster.ClusterNetworkCIDR = "" },
			want: []string{"cluster.clusterNetworkCIDR: must be set"}},
		{name: "cluster network overlaps services", mutate: func(in *Inputs) { in.Config.Network.ClusterNetworkCIDR = "172.16.0.0/12" },
			want: []string{"config.network.clusterNetworkCIDR: 172.16.0.0/12 overlaps the service network 172.30.0.0/16"}},
		{name: "no DNS", mutate: func(in *Inputs) { in.Cluster.DNSIP = "" },
			want: []string{"cluster.dnsIP: must be set"}},
		{name: "bad DNS in config", mutate: func(in *Inputs) { in.Config.Network.DNSServer = "dns.local" },
			want: []string{`config.network.dnsServer: "dns.local" is not an IP address`}},
		{name: "bad cluster domain", mutate: func(in *Inputs) { in.Cluster.Domain = "Cluster_Local" },
			want: []string{`cluster.domain: "Cluster_Local"`}},
		{name: "bad cluster version", mutate: func(in *Inputs) { in.Cluster.KubernetesVersion = "1.37" },
			want: []string{`cluster.kubernetesVersion: "1.37": must be a Kubernetes version such as v1.37.2`}},
		{name: "kubelet newer than API server", mutate: func(in *Inputs) { in.Cluster.KubernetesVersion = "v1.36.9" },
			want: []string{"payload.kubernetesVersion: kubelet v1.37.2 is newer than the API server v1.36.9"}},
		{name: "kubelet too old", mutate: func(in *Inputs) { in.Payload.KubernetesVersion = "v1.33.0" },
			want: []string{"payload.kubernetesVersion: kubelet v1.33.0 is more than 3 minor versions older than the API server v1.37.2"}},

		// Payload.
		{name: "no payload", mutate: func(in *Inputs) { in.Payload = nil },
			want: []string{"payload: must be set"}},
		{name: "invalid payload", mutate: func(in *Inputs) { in.Payload.Files = in.Payload.Files[1:] },
			want: []string{`payload: invalid payload manifest: files: missing "cni/host-local.exe"`}},

		// Host.
		{name: "unsupported OS build", mutate: func(in *Inputs) { in.Host.OSBuild = 14393 },
			want: []string{"host.osBuild: Windows build 14393 is not supported (supported: 17763, 20348, 26100)"}},
		{name: "no addresses", mutate: func(in *Inputs) { in.Host.Addresses = nil },
			want: []string{"host.addresses: must list the host's addresses"}},
		{name: "bad address", mutate: func(in *Inputs) { in.Host.Addresses = []string{"10.0.0.1", "host.local"} },
			want: []string{`host.addresses[1]: "host.local" is not an IP address`}},
		{name: "loopback node IP", mutate: func(in *Inputs) { in.Host.Addresses = []string{"127.0.0.1"} },
			want: []string{"host.addresses[0]: 127.0.0.1 cannot be the node IP"}},
		{name: "link-local node IP", mutate: func(in *Inputs) { in.Host.Addresses = []string{"169.254.10.1", "10.0.0.1"} },
			want: []string{"host.addresses[0]: 169.254.10.1 cannot be the node IP"}},
		{name: "IPv6 node IP with hybrid overlay", mutate: func(in *Inputs) { in.Host.Addresses = []string{"fd00::1"} },
			want: []string{"host.addresses[0]: fd00::1: the node IP must be IPv4 for the hybrid overlay"}},
		{name: "zoned address", mutate: func(in *Inputs) { in.Host.Addresses = []string{"fe80::1%eth0"} },
			want: []string{`host.addresses[0]: "fe80::1%eth0" is not an IP address`}},

		// Node.
		{name: "no node name", mutate: func(in *Inputs) { in.NodeName = "" },
			want: []string{"nodeName: must be set"}},
		{name: "upper-case node name", mutate: func(in *Inputs) { in.NodeName = "WIN-2022-A" },
			want: []string{`nodeName: "WIN-2022-A": a lowercase RFC 1123 subdomain`}},
		{name: "external cloud provider", mutate: func(in *Inputs) { in.CloudProvider = CloudProviderExternal }},
		{name: "in-tree cloud provider", mutate: func(in *Inputs) { in.CloudProvider = "aws" },
			want: []string{`cloudProvider: "aws": only "external"`}},
		{name: "bad label key", mutate: func(in *Inputs) { in.NodeLabels = map[string]string{"-bad": "x"} },
			want: []string{`nodeLabels["-bad"]: invalid key`}},
		{name: "bad label value", mutate: func(in *Inputs) { in.NodeLabels = map[string]string{"a": "has space"} },
			want: []string{`nodeLabels["a"]: invalid value "has space"`}},
		{name: "label the kubelet may not set", mutate: func(in *Inputs) {
			in.NodeLabels = map[string]string{"node-role.kubernetes.io/worker": ""}
		}, want: []string{`nodeLabels["node-role.kubernetes.io/worker"]: a kubelet may not set this label on its own Node`}},
		{name: "k8s.io label the kubelet may not set", mutate: func(in *Inputs) {
			in.NodeLabels = map[string]string{"example.k8s.io/x": "y"}
		}, want: []string{`nodeLabels["example.k8s.io/x"]: a kubelet may not set`}},
		{name: "labels the kubelet may set", mutate: func(in *Inputs) {
			in.NodeLabels = map[string]string{
				"kubernetes.io/os": "windows", "node.kubernetes.io/instance-type": "m5.large",
				"kubelet.kubernetes.io/pool": "a", "topology.kubernetes.io/region": "r",
			}
		}},

		// Bootstrap token.
		{name: "no token", mutate: func(in *Inputs) { in.BootstrapToken = "" },
			want: []string{"bootstrapToken: must be set"}},
		{name: "token with space", mutate: func(in *Inputs) { in.BootstrapToken = "SECRET-abcdef 0123456789abcdef" },
			want: []string{"bootstrapToken: must be printable ASCII without spaces (value not shown)"}},
		{name: "token with newline", mutate: func(in *Inputs) { in.BootstrapToken = "SECRET-abcdef\n0123456789abcdef" },
			want: []string{"bootstrapToken: must be printable ASCII"}},
		{name: "token too long", mutate: func(in *Inputs) { in.BootstrapToken = "SECRET-" + strings.Repeat("x", MaxBootstrapTokenBytes) },
			want: []string{"bootstrapToken: is 16391 bytes, at most 16384 allowed"}},

		// Host subnet.
		{name: "host subnet with network None", mutate: func(in *Inputs) {
			in.Config.Network = wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkNone}
		}, want: []string{"hostSubnet: applies only to network types OVNHybridOverlay and Flannel"}},
		{name: "host subnet outside the cluster network", mutate: func(in *Inputs) { in.HostSubnet = "10.200.0.0/24" },
			want: []string{"hostSubnet: 10.200.0.0/24 is not inside the cluster network 10.132.0.0/14"}},
		{name: "host subnet larger than the cluster network", mutate: func(in *Inputs) { in.HostSubnet = "10.128.0.0/12" },
			want: []string{"hostSubnet: 10.128.0.0/12 is not inside the cluster network"}},
		{name: "host subnet too small", mutate: func(in *Inputs) { in.HostSubnet = "10.132.4.0/30" },
			want: []string{"hostSubnet: 10.132.4.0/30 is too small"}},
		{name: "host subnet not a CIDR", mutate: func(in *Inputs) { in.HostSubnet = "10.132.4.0" },
			want: []string{`hostSubnet: "10.132.4.0" is not a CIDR`}},
		{name: "host subnet with host bits", mutate: func(in *Inputs) { in.HostSubnet = "10.132.4.7/24" },
			want: []string{"hostSubnet: \"10.132.4.7/24\" has host bits set"}},

		// The rest of the config.
		{name: "bad taint", mutate: func(in *Inputs) {
			in.Config.Taints = []wmcov1alpha1.NodeTaint{{Key: "", Effect: "NoSchedule"}, {Key: "a", Value: "b c", Effect: "Sometimes"}}
		}, want: []string{`config.taints[0]: invalid key ""`, `config.taints[1]: invalid value "b c"`, `config.taints[1]: effect "Sometimes" is not one of`}},
		{name: "duplicate taint", mutate: func(in *Inputs) {
			in.Config.Taints = []wmcov1alpha1.NodeTaint{{Key: "a", Effect: "NoSchedule"}, {Key: "a", Value: "x", Effect: "NoSchedule"}}
		}, want: []string{"config.taints[1]: same key and effect as config.taints[0]"}},
		{name: "same taint key, other effect", mutate: func(in *Inputs) {
			in.Config.Taints = []wmcov1alpha1.NodeTaint{{Key: "a", Effect: "NoSchedule"}, {Key: "a", Effect: "NoExecute"}}
		}},
		{name: "mirror registry path traversal", mutate: func(in *Inputs) {
			in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{{Registry: `..\..\Windows`, Endpoints: []string{"https://m"}}}
		}, want: []string{`config.containerd.registryMirrors[0]: registry "..\\..\\Windows": must be a host name`}},
		{name: "mirror registry IPv6", mutate: func(in *Inputs) {
			in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{{Registry: "[fd00::1]:5000", Endpoints: []string{"https://m"}}}
		}, want: []string{`registry "[fd00::1]:5000"`}},
		{name: "mirror registry bad port", mutate: func(in *Inputs) {
			in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{{Registry: "reg:0", Endpoints: []string{"https://m"}}}
		}, want: []string{`registry "reg:0": must be a host name or IPv4 address with an optional :port`}},
		{name: "mirror registries differing in case", mutate: func(in *Inputs) {
			in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{
				{Registry: "docker.io", Endpoints: []string{"https://m"}}, {Registry: "Docker.IO", Endpoints: []string{"https://n"}},
			}
		}, want: []string{`config.containerd.registryMirrors[1]: registry "Docker.IO" is the same as registryMirrors[0]`}},
		{name: "mirror without endpoints", mutate: func(in *Inputs) {
			in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{{Registry: "docker.io"}}
		}, want: []string{`registry "docker.io": endpoints must list at least one mirror`}},
		{name: "mirror endpoint not http", mutate: func(in *Inputs) {
			in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{{Registry: "docker.io", Endpoints: []string{"ftp://m"}}}
		}, want: []string{`config.containerd.registryMirrors[0].endpoints[0]: "ftp://m" must be an http:// or https:// URL`}},
		{name: "mirror endpoint with credentials", mutate: func(in *Inputs) {
			in.Config.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{{Registry: "docker.io", Endpoints: []string{"https://u:p@m"}}}
		}, want: []string{"endpoints[0]: must not hold credentials"}},
		{name: "pause image with a quote", mutate: func(in *Inputs) { in.Config.Containerd.PauseImage = `pause"3` },
			want: []string{`config.containerd.pauseImage: "pause\"3" is not an image reference`}},
		{name: "log rotation out of range", mutate: func(in *Inputs) {
			in.Config.LogRotation = wmcov1alpha1.LogRotationSpec{MaxFileSizeMiB: -1, MaxAgeDays: 366, MaxFiles: 1001}
		}, want: []string{
			"config.logRotation.maxFileSizeMiB: -1 must be between 1 and 10240",
			"config.logRotation.maxAgeDays: 366 must be between 1 and 365",
			"config.logRotation.maxFiles: 1001 must be between 1 and 1000",
		}},

		{name: "every problem is reported", mutate: func(in *Inputs) {
			in.NodeName = ""
			in.Cluster.DNSIP = ""
			in.Host.OSBuild = 1
		}, want: []string{"nodeName: must be set", "cluster.dnsIP: must be set", "host.osBuild: Windows build 1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			in := testInputs(t)
			tc.mutate(&in)
			plan, err := Render(in)
			if len(tc.want) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(plan).NotTo(BeNil())
				return
			}
			g.Expect(err).To(MatchError(ErrInvalidInputs))
			g.Expect(plan).To(BeNil())
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			// The token never appears in an error, valid or not.
			g.Expect(err.Error()).NotTo(ContainSubstring(testToken))
			g.Expect(err.Error()).NotTo(ContainSubstring("SECRET"))
			if in.BootstrapToken != "" {
				g.Expect(err.Error()).NotTo(ContainSubstring(in.BootstrapToken))
			}
		})
	}
}

// CheckConfig finds what keeps every host from rendering, and nothing of a
// good configuration.
func TestCheckConfig(t *testing.T) {
	g := NewWithT(t)
	in := testInputs(t)
	g.Expect(CheckConfig(in.Config, in.Cluster, in.Payload)).To(Succeed())

	bad := in.Config
	bad.Network.ClusterNetworkCIDR = in.Cluster.ServiceCIDR
	err := CheckConfig(bad, in.Cluster, in.Payload)
	g.Expect(err).To(MatchError(ErrInvalidInputs))
	g.Expect(err.Error()).To(ContainSubstring("config.network.clusterNetworkCIDR"))

	g.Expect(CheckConfig(in.Config, in.Cluster, nil)).To(MatchError(ContainSubstring("payload: must be set")))
}
