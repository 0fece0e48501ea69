package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// WindowsNodeConfigName is the only name a WindowsNodeConfig may have.
const WindowsNodeConfigName = "cluster"

// NetworkType selects how Windows pods are networked.
// +kubebuilder:validation:Enum=OVNHybridOverlay;Flannel;None
type NetworkType string

const (
	// NetworkOVNHybridOverlay runs hybrid-overlay on the host and a VXLAN
	// overlay to the cluster network (OVN-Kubernetes hybrid networking).
	NetworkOVNHybridOverlay NetworkType = "OVNHybridOverlay"
	// NetworkFlannel runs flanneld on the host (plain Kubernetes with
	// kube-flannel on the Linux nodes): a VXLAN overlay with the win-overlay
	// CNI plugin, or host-gw routes with win-bridge. Pods get addresses
	// from the Node's spec.podCIDR.
	NetworkFlannel NetworkType = "Flannel"
	// NetworkNone leaves pod networking to something outside the operator;
	// the operator writes no CNI configuration.
	NetworkNone NetworkType = "None"
)

// NetworkSpec configures Windows pod and service networking.
// +kubebuilder:validation:XValidation:rule="!has(self.vxlanPort) || self.type == 'OVNHybridOverlay' || (self.type == 'Flannel' && (!has(self.flannel) || !has(self.flannel.backend) || self.flannel.backend == 'VXLAN'))",message="vxlanPort applies only to network type OVNHybridOverlay, or Flannel with the VXLAN backend"
// +kubebuilder:validation:XValidation:rule="!has(self.flannel) || self.type == 'Flannel'",message="flannel applies only to network type Flannel"
type NetworkSpec struct {
	// Type of the pod network.
	// +optional
	// +kubebuilder:default=OVNHybridOverlay
	Type NetworkType `json:"type,omitempty"`

	// VXLANPort of the VXLAN overlay (the hybrid overlay's, or flannel's
	// VXLAN backend's). When unset, the cluster's (on OpenShift,
	// OVN-Kubernetes' hybridOverlayVXLANPort; with Flannel, kube-flannel's
	// net-conf.json Backend.Port), else 4789.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	VXLANPort *int32 `json:"vxlanPort,omitempty"`

	// Flannel settings; only with type Flannel.
	// +optional
	Flannel *FlannelSpec `json:"flannel,omitempty"`

	// ClusterNetworkCIDR is the CIDR Windows pods get addresses from (the
	// hybrid overlay's cluster network; with Flannel, the cluster's pod
	// network). Read from the cluster when unset: on OpenShift from
	// OVN-Kubernetes' configuration, on plain Kubernetes from kube-flannel's
	// net-conf.json (the Nodes' podCIDRs are not used: they show the
	// subnets allocated so far, not the network).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="clusterNetworkCIDR must be a CIDR such as 10.132.0.0/14"
	ClusterNetworkCIDR string `json:"clusterNetworkCIDR,omitempty"`

	// ServiceNetworkCIDR is the cluster's service CIDR.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="serviceNetworkCIDR must be a CIDR such as 172.30.0.0/16"
	ServiceNetworkCIDR string `json:"serviceNetworkCIDR,omitempty"`

	// DNSServer is the cluster DNS address given to the kubelet.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="dnsServer must be an IP address"
	DNSServer string `json:"dnsServer,omitempty"`
}

// FlannelBackend is how flannel carries pod traffic between nodes.
// +kubebuilder:validation:Enum=VXLAN;HostGW
type FlannelBackend string

const (
	// FlannelBackendVXLAN encapsulates pod traffic in VXLAN (flannel's
	// "vxlan" backend, the win-overlay CNI plugin). Works across subnets.
	FlannelBackendVXLAN FlannelBackend = "VXLAN"
	// FlannelBackendHostGW routes pod traffic through the nodes' addresses
	// (flannel's "host-gw" backend, the win-bridge CNI plugin). Every node
	// must be on one layer-2 network.
	FlannelBackendHostGW FlannelBackend = "HostGW"
)

// FlannelSpec configures flanneld on Windows hosts. It must match the
// cluster's kube-flannel configuration (net-conf.json), which is read
// when present: a difference is reported as a condition, not applied.
// +kubebuilder:validation:XValidation:rule="!has(self.vni) || !has(self.backend) || self.backend == 'VXLAN'",message="vni applies only to the VXLAN backend"
type FlannelSpec struct {
	// Backend of flannel. When unset, the cluster's kube-flannel backend,
	// else VXLAN.
	// +optional
	Backend FlannelBackend `json:"backend,omitempty"`

	// VNI of the VXLAN backend. When unset, the cluster's (kube-flannel's
	// net-conf.json Backend.VNI), else 4096 (what Windows flannel
	// deployments configure).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16777215
	VNI *int32 `json:"vni,omitempty"`
}

// TaintEffect is the effect of a node taint.
// +kubebuilder:validation:Enum=NoSchedule;PreferNoSchedule;NoExecute
type TaintEffect string

// NodeTaint is a taint put on every Windows node.
type NodeTaint struct {
	// Key of the taint.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=316
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Key string `json:"key"`
	// Value of the taint.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`
	Value string `json:"value,omitempty"`
	// Effect of the taint.
	// +required
	Effect TaintEffect `json:"effect"`
}

// LogRotationSpec bounds the logs of the node services on the host.
type LogRotationSpec struct {
	// MaxFileSizeMiB rotates a service log when it reaches this size.
	// +optional
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10240
	MaxFileSizeMiB int32 `json:"maxFileSizeMiB,omitempty"`
	// MaxAgeDays removes rotated files older than this.
	// +optional
	// +kubebuilder:default=7
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=365
	MaxAgeDays int32 `json:"maxAgeDays,omitempty"`
	// MaxFiles is how many rotated files of each service's log are kept
	// besides the file it writes; the agent removes older ones (and
	// those older than MaxAgeDays) from C:\var\log\<service>\.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxFiles int32 `json:"maxFiles,omitempty"`
}

// RegistryMirror sends pulls for one registry to mirrors first.
type RegistryMirror struct {
	// Registry host, e.g. docker.io.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Registry string `json:"registry"`
	// Endpoints tried in order, e.g. https://mirror.example.com.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:items:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="mirror endpoints must be http:// or https:// URLs"
	Endpoints []string `json:"endpoints"`
	// NeverContactSource: pulls from the registry use the endpoints only
	// and fail rather than fall back to the registry itself.
	// +optional
	NeverContactSource bool `json:"neverContactSource,omitempty"`
}

// ProxySpec is the HTTP proxy the hosts' containerd and kubelet use. Any
// field set overrides the cluster's proxy (on OpenShift, the cluster
// Proxy's status). The cluster's service and pod networks, its internal
// DNS names, localhost and the API server's host are added to noProxy.
// A URL may hold credentials (http://user:password@proxy:3128): the
// operator and its agent never print them, and on the hosts only
// administrators can read the services' environment that holds them. The URL
// rules sit on the object, not on the fields, so that the API server's
// error does not echo a URL (and a password in it).
// +kubebuilder:validation:XValidation:rule="!has(self.httpProxy) || (isURL(self.httpProxy) && url(self.httpProxy).getScheme() in ['http', 'https'] && size(url(self.httpProxy).getHostname()) > 0)",message="httpProxy must be an http:// or https:// URL"
// +kubebuilder:validation:XValidation:rule="!has(self.httpsProxy) || (isURL(self.httpsProxy) && url(self.httpsProxy).getScheme() in ['http', 'https'] && size(url(self.httpsProxy).getHostname()) > 0)",message="httpsProxy must be an http:// or https:// URL"
type ProxySpec struct {
	// HTTPProxy is the proxy URL for http:// requests.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	HTTPProxy string `json:"httpProxy,omitempty"`
	// HTTPSProxy is the proxy URL for https:// requests.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	HTTPSProxy string `json:"httpsProxy,omitempty"`
	// NoProxy is a comma-separated list of host names, domains (.example.com),
	// IP addresses and CIDRs reached without the proxy.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^[^\s"';]*$`
	NoProxy string `json:"noProxy,omitempty"`
}

// DefaultTrustedCAKey is the ConfigMap key TrustedCASpec reads by default.
const DefaultTrustedCAKey = "ca-bundle.crt"

// TrustedCASpec names a ConfigMap in the operator's namespace holding a
// bundle of PEM certificates that every host imports into its
// LocalMachine Root store (and removes from it when they leave the
// bundle). On OpenShift the operator's injected trusted-ca ConfigMap is
// used when this is unset.
type TrustedCASpec struct {
	// ConfigMapName in the operator's namespace: trusted-ca, the one
	// ConfigMap there besides the inventory that the operator may read
	// (its RBAC names the ConfigMaps it reads).
	// +optional
	// +kubebuilder:default="trusted-ca"
	// +kubebuilder:validation:XValidation:rule="self == 'trusted-ca'",message="the operator reads the trusted CA bundle only from the ConfigMap trusted-ca of its namespace"
	ConfigMapName string `json:"configMapName,omitempty"`
	// Key of the ConfigMap holding the bundle.
	// +optional
	// +kubebuilder:default="ca-bundle.crt"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// ContainerdSpec configures containerd on the hosts.
type ContainerdSpec struct {
	// PauseImage is the sandbox image.
	// +optional
	// +kubebuilder:default="registry.k8s.io/pause:3.10"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	PauseImage string `json:"pauseImage,omitempty"`
	// RegistryMirrors per registry.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=registry
	RegistryMirrors []RegistryMirror `json:"registryMirrors,omitempty"`
}

// WindowsNodeConfigSpec holds settings shared by every Windows node.
type WindowsNodeConfigSpec struct {
	// Network settings.
	// +optional
	// +kubebuilder:default={}
	Network NetworkSpec `json:"network,omitempty"`

	// Taints put on every Windows node. Defaults to os=Windows:NoSchedule;
	// an explicit empty list means no taint.
	// +optional
	// +kubebuilder:default={{key:"os",value:"Windows",effect:"NoSchedule"}}
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Taints []NodeTaint `json:"taints,omitempty"`

	// MaxParallelConfigurations is how many hosts are configured at once.
	// The default, 50, was chosen from `make bench` joins of 50 hosts at
	// 5, 10, 20 and 50 (docs/benchmarks-goals.md): the most at once joined them
	// soonest, within the memory goal.
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=200
	MaxParallelConfigurations int32 `json:"maxParallelConfigurations,omitempty"`

	// MaxUnavailable is how many Windows nodes (a number, or a percentage
	// of the WindowsInstances, rounded down, at least 1) may be upgrading
	// at the same time: cordoned, drained and restarted on a new payload.
	// Changes that need no drain (a windows_exporter update, a service
	// setting) do not count. The bound holds across ConfigMap, Machine and
	// directly created instances together and across operator restarts.
	// +optional
	// +kubebuilder:default="25%"
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^([1-9][0-9]?|100)%$')",message="maxUnavailable must be a number of at least 1 or a percentage from 1% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// UpgradeTimeout is how long a host may take, after its new payload
	// was applied, to be Ready with the new kubelet version before the
	// upgrade is rolled back (UpgradeFailed).
	// +optional
	// +kubebuilder:default="10m"
	UpgradeTimeout *metav1.Duration `json:"upgradeTimeout,omitempty"`

	// LogRotation for the node services' logs.
	// +optional
	// +kubebuilder:default={}
	LogRotation LogRotationSpec `json:"logRotation,omitempty"`

	// Containerd settings.
	// +optional
	// +kubebuilder:default={}
	Containerd ContainerdSpec `json:"containerd,omitempty"`

	// Proxy for the hosts' containerd and kubelet; overrides the
	// cluster's.
	// +optional
	Proxy *ProxySpec `json:"proxy,omitempty"`

	// TrustedCA names the bundle of CAs the hosts trust besides their own
	// roots.
	// +optional
	TrustedCA *TrustedCASpec `json:"trustedCA,omitempty"`

	// CredentialNamespaces are the namespaces, besides the operator's own,
	// whose Secrets a WindowsInstance's spec.credentialsSecretRef may name.
	// The operator reads SSH keys from nowhere else: an instance naming
	// another namespace is Stalled (CredentialsNamespaceNotAllowed) and no
	// read is attempted. Listing a namespace here is not enough: the
	// operator's ServiceAccount also needs "get" on Secrets there (a Role
	// and a RoleBinding in that namespace; see the README).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	CredentialNamespaces []string `json:"credentialNamespaces,omitempty"`
}

// WindowsNodeConfigStatus is the observed state of the configuration.
type WindowsNodeConfigStatus struct {
	// ObservedGeneration is the generation last acted upon.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions of the configuration.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WindowsNodeConfig holds the settings for every Windows node. It is a
// singleton: the only accepted name is "cluster".
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=wnc,categories=wmco
// +kubebuilder:validation:XValidation:rule="self.metadata.name == 'cluster'",message="WindowsNodeConfig is a singleton: its name must be 'cluster'"
// +kubebuilder:printcolumn:name="Network",type=string,JSONPath=`.spec.network.type`
// +kubebuilder:printcolumn:name="Parallel",type=integer,JSONPath=`.spec.maxParallelConfigurations`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WindowsNodeConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	// +kubebuilder:default={}
	Spec WindowsNodeConfigSpec `json:"spec,omitempty"`
	// +optional
	Status WindowsNodeConfigStatus `json:"status,omitempty"`
}

// WindowsNodeConfigList is a list of WindowsNodeConfig.
//
// +kubebuilder:object:root=true
type WindowsNodeConfigList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WindowsNodeConfig `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WindowsNodeConfig{}, &WindowsNodeConfigList{})
}
