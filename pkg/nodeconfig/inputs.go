/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/apimachinery/pkg/util/intstr"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Inputs is everything a host's plan is rendered from.
type Inputs struct {
	// Config is the cluster-wide WindowsNodeConfig spec. API defaults are
	// expected but not required: zero values get the same defaults
	// (see [Defaulted]).
	Config wmcov1alpha1.WindowsNodeConfigSpec
	// Cluster holds facts about the cluster.
	Cluster ClusterFacts
	// Host holds facts the agent reported about the host.
	Host HostFacts
	// NodeName the kubelet registers as; a DNS subdomain.
	NodeName string
	// Payload is the manifest of the payload version the services run
	// from; it must be valid.
	Payload *payload.Manifest
	// BootstrapToken is the credential the kubelet presents for its first
	// certificate request: a bootstrap token on plain Kubernetes, the
	// node-bootstrapper service account's token on OpenShift. It lands in
	// the Sensitive bootstrap kubeconfig and never in an error.
	BootstrapToken string
	// NodeLabels the kubelet registers the Node with (--node-labels).
	// Labels under kubernetes.io and k8s.io must be ones a kubelet may set
	// on its own Node; others, such as node-role.kubernetes.io/worker,
	// must be set by the operator after the join.
	NodeLabels map[string]string
	// HostSubnet is the pod subnet the cluster assigned to this node, e.g.
	// 10.132.1.0/24: for OVNHybridOverlay the Node's
	// k8s.ovn.org/hybrid-overlay-node-subnet annotation, for Flannel the
	// Node's spec.podCIDR (node IPAM). Empty until known: the plan then
	// has no CNI configuration and no kube-proxy, and the Node stays
	// NotReady. Must be empty for network type None.
	HostSubnet string
	// CloudProvider is the kubelet's --cloud-provider: CloudProviderExternal
	// where a cloud controller manager initialises the Node (the kubelet
	// then registers it with the node.cloudprovider.kubernetes.io/uninitialized
	// taint), "" for none.
	CloudProvider string
	// ExporterTLS is windows_exporter's serving certificate; zero, it
	// serves plain HTTP.
	ExporterTLS ExporterTLS
}

// ExporterTLS is a serving certificate of windows_exporter: on plain
// Kubernetes one the operator's CA issued for the host (its addresses and
// node name), on OpenShift the node metrics Service's from the service CA.
type ExporterTLS struct {
	// CertPEM is the certificate, optionally followed by intermediates.
	CertPEM []byte
	// KeyPEM is its private key: a credential, written only to a file
	// restricted to administrators and never into an error.
	KeyPEM []byte
}

// CloudProviderExternal is the only kubelet --cloud-provider the operator
// sets: the in-tree cloud providers are gone from the kubelet.
const CloudProviderExternal = "external"

// ClusterFacts are facts about the cluster the node joins.
type ClusterFacts struct {
	// APIServerURL the kubelet bootstraps against, https://host:port.
	APIServerURL string
	// CACertPEM is the cluster CA bundle (PEM certificates) that signed
	// the API server's serving certificate and the clients' certificates.
	CACertPEM []byte
	// ServiceCIDR is the service network. Config.Network.ServiceNetworkCIDR
	// overrides it when set.
	ServiceCIDR string
	// ClusterNetworkCIDR is the pod network Windows pods get addresses
	// from (the hybrid overlay's cluster network); required for
	// OVNHybridOverlay. Config.Network.ClusterNetworkCIDR overrides it
	// when set.
	ClusterNetworkCIDR string
	// DNSIP is the cluster DNS service's address.
	// Config.Network.DNSServer overrides it when set.
	DNSIP string
	// Domain is the cluster's DNS domain; DefaultClusterDomain when empty.
	Domain string
	// KubernetesVersion of the API server, e.g. v1.37.2. The payload's
	// kubelet may be up to three minor versions older, never newer.
	KubernetesVersion string
	// PodNetworkCIDRs are the cluster's other pod networks (on OpenShift
	// the OVN-Kubernetes clusterNetwork CIDRs of the Linux nodes): Windows
	// pods reach them without outbound NAT, like ClusterNetworkCIDR.
	PodNetworkCIDRs []string
	// VXLANPort of the hybrid overlay as the cluster configures it
	// (OVN-Kubernetes' hybridOverlayVXLANPort); 0 when the cluster says
	// nothing. Config.Network.VXLANPort overrides it, DefaultVXLANPort
	// applies when neither is set.
	VXLANPort int32
	// Proxy the host's containerd and kubelet use (the cluster Proxy's
	// status on OpenShift). Config.Proxy, when set, overrides it.
	Proxy Proxy
	// TrustedCAPEM is the bundle of CAs (PEM certificates) the host
	// trusts besides its own roots, imported into its LocalMachine Root
	// store: OpenShift's injected trusted-ca ConfigMap, or the ConfigMap
	// WindowsNodeConfig names. Empty: nothing is imported, and what an
	// earlier plan imported is removed.
	TrustedCAPEM []byte
	// KubeletClientCAPEM is the CA bundle the kubelet verifies client
	// certificates with (the API server's kubelet client certificate:
	// OpenShift's kube-apiserver-to-kubelet-client-ca). CACertPEM when
	// empty.
	KubeletClientCAPEM []byte
	// ImageMirrors from the cluster's ImageDigestMirrorSets and
	// ImageTagMirrorSets; Config.Containerd.RegistryMirrors are added.
	ImageMirrors []ImageMirror
	// Flannel is the cluster's kube-flannel configuration; zero when none
	// was found. Config.Network.Flannel and VXLANPort override it (a
	// difference is a mismatch the operator reports, see
	// cluster.NetworkMismatches).
	Flannel FlannelFacts
}

// FlannelFacts are what the cluster's kube-flannel ConfigMap
// (kube-flannel-cfg in kube-flannel or kube-system, key net-conf.json)
// says.
type FlannelFacts struct {
	// Source names the ConfigMap read, namespace/name; empty when none
	// was found (then every other field is zero).
	Source string
	// Network is net-conf.json's Network: the cluster's pod CIDR.
	Network string
	// Backend is net-conf.json's Backend.Type as flannel spells it:
	// FlannelBackendTypeVXLAN or FlannelBackendTypeHostGW.
	Backend string
	// VNI and Port are net-conf.json's Backend.VNI and Backend.Port
	// (vxlan); 0 when unset there.
	VNI  int32
	Port int32
}

// Backend types as kube-flannel's net-conf.json spells them.
const (
	FlannelBackendTypeVXLAN  = "vxlan"
	FlannelBackendTypeHostGW = "host-gw"
)

// Proxy is the HTTP proxy of a host's services. All empty: no proxy.
type Proxy struct {
	// HTTPProxy and HTTPSProxy are proxy URLs.
	HTTPProxy  string
	HTTPSProxy string
	// NoProxy is a comma-separated list of hosts, domains and CIDRs
	// reached directly; the cluster's internal names and networks are
	// added to it.
	NoProxy string
}

// ImageMirror is where images of one source are pulled from instead.
type ImageMirror struct {
	// Source is the registry, or a repository in it
	// (registry.example.com/team/app), whose images are mirrored.
	Source string
	// Mirrors in order of preference, each a registry or repository.
	Mirrors []string
	// Resolve: the mirrors may also resolve tags (an ImageTagMirrorSet);
	// else they serve pulls by digest only (an ImageDigestMirrorSet).
	Resolve bool
	// NeverContactSource: pulls fail rather than fall back to Source.
	NeverContactSource bool
}

// HostFacts are facts the agent reported about the host.
type HostFacts struct {
	// Hostname of the host. Informational: the node registers as
	// Inputs.NodeName.
	Hostname string
	// OSBuild is the Windows build number, e.g. 20348; it must be one of
	// SupportedOSBuilds.
	OSBuild int
	// Addresses of the host; the first one is the node IP.
	Addresses []string
}

// HostFactsFrom takes the facts a plan needs from what `wicd facts` printed.
func HostFactsFrom(f wicdapi.Facts) HostFacts {
	return HostFacts{Hostname: f.Hostname, OSBuild: f.OSBuild, Addresses: slices.Clone(f.Addresses)}
}

// Windows Server builds the operator supports.
const (
	OSBuildServer2019 = wicdapi.OSBuildServer2019
	OSBuildServer2022 = wicdapi.OSBuildServer2022
	OSBuildServer2025 = wicdapi.OSBuildServer2025
)

// SupportedOSBuilds returns the Windows Server builds the operator
// supports, in ascending order.
func SupportedOSBuilds() []int {
	builds := make([]int, 0, len(wicdapi.SupportedOSBuilds))
	for b := range wicdapi.SupportedOSBuilds {
		builds = append(builds, b)
	}
	slices.Sort(builds)
	return builds
}

// Defaults applied to zero values of the WindowsNodeConfig spec and the
// cluster facts; the spec's are the same as the API's.
const (
	DefaultNetworkType = wmcov1alpha1.NetworkOVNHybridOverlay
	DefaultVXLANPort   = 4789
	// DefaultFlannelVNI is the VNI of flannel's VXLAN backend when neither
	// the config nor the cluster sets one: what sig-windows-tools' kube-flannel
	// configuration for Windows uses.
	DefaultFlannelVNI                = 4096
	DefaultPauseImage                = "registry.k8s.io/pause:3.10"
	DefaultLogMaxFileSizeMiB         = 100
	DefaultLogMaxAgeDays             = 7
	DefaultMaxParallelConfigurations = 50
	// DefaultMaxUnavailable: a quarter of the Windows nodes upgrade at
	// once (at least one).
	DefaultMaxUnavailable = "25%"
	// DefaultUpgradeTimeout is how long a host may take to be Ready on a
	// new payload before it is rolled back.
	DefaultUpgradeTimeout = 10 * time.Minute
	DefaultClusterDomain  = "cluster.local"
)

// DefaultTaints returns the taint every Windows node gets unless the
// config says otherwise: os=Windows:NoSchedule.
func DefaultTaints() []wmcov1alpha1.NodeTaint {
	return []wmcov1alpha1.NodeTaint{{Key: "os", Value: "Windows", Effect: "NoSchedule"}}
}

// MaxUnavailable is how many of instances hosts may upgrade at once under
// spec.maxUnavailable (defaulted): a number, or a percentage of instances
// rounded down; at least 1.
func MaxUnavailable(spec wmcov1alpha1.WindowsNodeConfigSpec, instances int) int {
	mu := spec.MaxUnavailable
	if mu == nil {
		d := intstr.FromString(DefaultMaxUnavailable)
		mu = &d
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(mu, instances, false)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// Defaulted returns a copy of spec with the API's defaults applied to
// zero values. Taints follow the API: nil means the default taint, an
// empty non-nil list means no taint. The VXLAN port stays unset: the
// cluster's (ClusterFacts.VXLANPort) applies then, else DefaultVXLANPort.
func Defaulted(spec wmcov1alpha1.WindowsNodeConfigSpec) wmcov1alpha1.WindowsNodeConfigSpec {
	out := *spec.DeepCopy()
	if out.Network.Type == "" {
		out.Network.Type = DefaultNetworkType
	}
	if out.Taints == nil {
		out.Taints = DefaultTaints()
	}
	if out.MaxParallelConfigurations == 0 {
		out.MaxParallelConfigurations = DefaultMaxParallelConfigurations
	}
	if out.MaxUnavailable == nil {
		mu := intstr.FromString(DefaultMaxUnavailable)
		out.MaxUnavailable = &mu
	}
	if out.UpgradeTimeout == nil || out.UpgradeTimeout.Duration <= 0 {
		out.UpgradeTimeout = &metav1.Duration{Duration: DefaultUpgradeTimeout}
	}
	if out.LogRotation.MaxFileSizeMiB == 0 {
		out.LogRotation.MaxFileSizeMiB = DefaultLogMaxFileSizeMiB
	}
	if out.LogRotation.MaxAgeDays == 0 {
		out.LogRotation.MaxAgeDays = DefaultLogMaxAgeDays
	}
	if out.LogRotation.MaxFiles == 0 {
		out.LogRotation.MaxFiles = DefaultLogMaxFiles
	}
	if out.Containerd.PauseImage == "" {
		out.Containerd.PauseImage = DefaultPauseImage
	}
	return out
}
