package cluster

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
	operatorv1 "github.com/openshift/api/operator/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// Names of the OpenShift objects the cluster's settings are read from.
const (
	// ConfigName is the name of every cluster configuration singleton
	// (Infrastructure, Network, Proxy, networks.operator.openshift.io).
	ConfigName = "cluster"
	// DNSNamespace and DNSServiceName are the DNS operator's Service; its
	// ClusterIP is the cluster DNS server.
	DNSNamespace   = "openshift-dns"
	DNSServiceName = "dns-default"
	// KubeletClientCANamespace and KubeletClientCAName are the ConfigMap
	// of the CA bundle that signs the API server's client certificate for
	// kubelets.
	KubeletClientCANamespace = "openshift-kube-apiserver-operator"
	KubeletClientCAName      = "kube-apiserver-to-kubelet-client-ca"
	// TrustedCAName is the ConfigMap in the operator's namespace into
	// which OpenShift's Cluster Network Operator injects the cluster's
	// trusted CA bundle (the proxy's CAs included) when it carries
	// TrustedCAInjectLabel=true.
	TrustedCAName = "trusted-ca"
	// TrustedCAInjectLabel asks the Cluster Network Operator to inject
	// the trusted CA bundle into a ConfigMap.
	TrustedCAInjectLabel = "config.openshift.io/inject-trusted-cabundle"
	// CABundleKey is the key of the CA bundles in those ConfigMaps.
	CABundleKey = "ca-bundle.crt"
	// NetworkTypeOVNKubernetes is the only OpenShift network type that
	// gives Windows nodes a pod network (through its hybrid overlay).
	NetworkTypeOVNKubernetes = "OVNKubernetes"
)

// ConfigMapKey names one key of a ConfigMap.
type ConfigMapKey struct {
	Namespace, Name, Key string
}

// String is namespace/name key k, for messages.
func (k ConfigMapKey) String() string {
	return fmt.Sprintf("ConfigMap %s/%s key %s", k.Namespace, k.Name, k.Key)
}

// ConfigObjects are the objects the cluster's settings are read from, as
// a controller found them; nil is an object that does not exist (or whose
// kind the cluster does not serve).
type ConfigObjects struct {
	// Infrastructure is infrastructures.config.openshift.io/cluster.
	Infrastructure *configv1.Infrastructure
	// Network is networks.config.openshift.io/cluster.
	Network *configv1.Network
	// OperatorNetwork is networks.operator.openshift.io/cluster.
	OperatorNetwork *operatorv1.Network
	// Proxy is proxies.config.openshift.io/cluster.
	Proxy *configv1.Proxy
	// DNSService is openshift-dns/dns-default.
	DNSService *corev1.Service
	// KubeletClientCA is openshift-kube-apiserver-operator/kube-apiserver-to-kubelet-client-ca.
	KubeletClientCA *corev1.ConfigMap
	// TrustedCARef names the trusted CA bundle: on OpenShift the
	// operator's trusted-ca ConfigMap, elsewhere the ConfigMap the
	// WindowsNodeConfig names; zero when none is named.
	TrustedCARef ConfigMapKey
	// TrustedCA is the ConfigMap TrustedCARef names.
	TrustedCA *corev1.ConfigMap
	// DigestMirrorSets and TagMirrorSets are every ImageDigestMirrorSet
	// and ImageTagMirrorSet, in any order.
	DigestMirrorSets []configv1.ImageDigestMirrorSet
	TagMirrorSets    []configv1.ImageTagMirrorSet

	// On plain Kubernetes:

	// FlannelConfig is kube-flannel's ConfigMap (FlannelConfigMapName in
	// the first of FlannelNamespaces that has it).
	FlannelConfig *corev1.ConfigMap
	// ServiceCIDR is the networking.k8s.io/v1 ServiceCIDR named
	// ServiceCIDRName (nil also where the cluster does not serve the kind).
	ServiceCIDR *networkingv1.ServiceCIDR
	// NetworkType is the WindowsNodeConfig's network type, defaulted: a
	// net-conf.json that cannot be read is a problem only for Flannel.
	NetworkType wmcov1.NetworkType
}

// FactsFrom returns what kubelets need to know about the cluster: base
// (from flags and discovery) with what the cluster's configuration says
// on top, and a problem when that configuration does not let a Windows
// host join (a sentence saying what to set where; the facts are then not
// to be used). On plain Kubernetes base's values come from flags and
// stand; what they leave empty is read from the cluster:
//
//   - Flannel, and ClusterNetworkCIDR: kube-flannel's net-conf.json
//     (ParseFlannelNetConf). A net-conf.json that cannot be read is a
//     problem naming the ConfigMap and the field for network type
//     Flannel, and is ignored for the others. Nodes' podCIDRs are never
//     used: they show the subnets allocated so far, not the network
//     they are allocated from;
//   - ServiceCIDR: the ServiceCIDR object, else DefaultServiceCIDR;
//   - TrustedCAPEM: the ConfigMap the WindowsNodeConfig names.
//
// On OpenShift:
//
//   - APIServerURL: Infrastructure status.apiServerInternalURI;
//   - ServiceCIDR, PodNetworkCIDRs: the Network config's status (its spec
//     while the status is empty; DefaultServiceCIDR when neither says);
//   - ClusterNetworkCIDR, VXLANPort: OVN-Kubernetes' hybrid overlay in the
//     operator Network's spec (required: a problem without it);
//   - DNSIP: the ClusterIP of openshift-dns/dns-default;
//   - Proxy: the Proxy's status;
//   - KubeletClientCAPEM: kube-apiserver-to-kubelet-client-ca;
//   - TrustedCAPEM: the injected trusted-ca bundle (empty until injected);
//   - ImageMirrors: every ImageDigestMirrorSet and ImageTagMirrorSet.
//
// What the objects leave unsaid keeps base's value.
func FactsFrom(platform Platform, base nodeconfig.ClusterFacts, in ConfigObjects) (nodeconfig.ClusterFacts, string) {
	f := CloneFacts(base)
	if in.TrustedCARef != (ConfigMapKey{}) {
		pemBytes, problem := bundle(in.TrustedCARef, in.TrustedCA, platform != OpenShift)
		if problem != "" {
			return f, problem
		}
		if pemBytes != nil {
			f.TrustedCAPEM = pemBytes
		}
	}
	if platform != OpenShift {
		flannel, problem := flannelFacts(in.FlannelConfig)
		if problem != "" && in.NetworkType == wmcov1.NetworkFlannel {
			return f, problem
		}
		f.Flannel = flannel
		if f.ClusterNetworkCIDR == "" {
			f.ClusterNetworkCIDR = flannel.Network
		}
		if f.ServiceCIDR == "" {
			f.ServiceCIDR = serviceCIDRFrom(in.ServiceCIDR)
		}
		if f.ServiceCIDR == "" {
			f.ServiceCIDR = DefaultServiceCIDR
		}
		return f, ""
	}

	if in.Infrastructure != nil && in.Infrastructure.Status.APIServerInternalURL != "" {
		f.APIServerURL = in.Infrastructure.Status.APIServerInternalURL
	}
	if problem := networkFacts(&f, in.Network, in.OperatorNetwork); problem != "" {
		return f, problem
	}
	if s := in.DNSService; s != nil && s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
		f.DNSIP = s.Spec.ClusterIP
	}
	if p := in.Proxy; p != nil {
		f.Proxy = nodeconfig.Proxy{HTTPProxy: p.Status.HTTPProxy, HTTPSProxy: p.Status.HTTPSProxy, NoProxy: p.Status.NoProxy}
	}
	if in.KubeletClientCA != nil {
		ref := ConfigMapKey{Namespace: KubeletClientCANamespace, Name: KubeletClientCAName, Key: CABundleKey}
		pemBytes, problem := bundle(ref, in.KubeletClientCA, true)
		if problem != "" {
			return f, problem
		}
		f.KubeletClientCAPEM = pemBytes
	}
	f.ImageMirrors = ImageMirrors(in.DigestMirrorSets, in.TagMirrorSets)
	if f.ServiceCIDR == "" {
		f.ServiceCIDR = DefaultServiceCIDR
	}
	return f, ""
}

// networkFacts sets the networks of f from the Network config and the
// operator's Network; a problem when Windows nodes cannot join them.
func networkFacts(f *nodeconfig.ClusterFacts, network *configv1.Network, operator *operatorv1.Network) string {
	const where = "networks.config.openshift.io/" + ConfigName
	if network == nil {
		return "The cluster's network is unknown: " + where + " does not exist"
	}
	serviceNetwork := network.Status.ServiceNetwork
	if len(serviceNetwork) == 0 {
		serviceNetwork = network.Spec.ServiceNetwork
	}
	if len(serviceNetwork) > 0 {
		f.ServiceCIDR = serviceNetwork[0]
	}
	clusterNetwork := network.Status.ClusterNetwork
	if len(clusterNetwork) == 0 {
		clusterNetwork = network.Spec.ClusterNetwork
	}
	if len(clusterNetwork) > 0 {
		f.PodNetworkCIDRs = make([]string, 0, len(clusterNetwork))
		for _, n := range clusterNetwork {
			f.PodNetworkCIDRs = append(f.PodNetworkCIDRs, n.CIDR)
		}
	}
	networkType := network.Status.NetworkType
	if networkType == "" {
		networkType = network.Spec.NetworkType
	}
	switch networkType {
	case NetworkTypeOVNKubernetes:
	case "":
		return "The cluster's network type is not known yet: " + where + " has no networkType"
	default:
		return fmt.Sprintf("Network type %q (%s) is not supported for Windows nodes: only %s with its hybrid overlay is", networkType, where, NetworkTypeOVNKubernetes)
	}
	const noHybrid = "OVN-Kubernetes has no hybrid overlay: set spec.defaultNetwork.ovnKubernetesConfig.hybridOverlayConfig.hybridClusterNetwork in networks.operator.openshift.io/" + ConfigName + " (Windows nodes need it)"
	if operator == nil || operator.Spec.DefaultNetwork.OVNKubernetesConfig == nil {
		return noHybrid
	}
	hybrid := operator.Spec.DefaultNetwork.OVNKubernetesConfig.HybridOverlayConfig
	if hybrid == nil || len(hybrid.HybridClusterNetwork) == 0 || hybrid.HybridClusterNetwork[0].CIDR == "" {
		return noHybrid
	}
	f.ClusterNetworkCIDR = hybrid.HybridClusterNetwork[0].CIDR
	f.VXLANPort = 0
	if p := hybrid.HybridOverlayVXLANPort; p != nil {
		if *p == 0 || *p > math.MaxUint16 {
			return fmt.Sprintf("spec.defaultNetwork.ovnKubernetesConfig.hybridOverlayConfig.hybridOverlayVXLANPort %d in networks.operator.openshift.io/%s is not a port number", *p, ConfigName)
		}
		f.VXLANPort = int32(*p)
	}
	return ""
}

// bundle returns the CA bundle in key ref.Key of cm: nil when cm is nil
// or lacks the key and required is false, else a problem naming ref.
func bundle(ref ConfigMapKey, cm *corev1.ConfigMap, required bool) ([]byte, string) {
	var data string
	var ok bool
	if cm != nil {
		data, ok = cm.Data[ref.Key]
	}
	switch {
	case cm == nil && required:
		return nil, ref.String() + " does not exist"
	case !ok && required:
		return nil, ref.String() + " is missing"
	case !ok:
		return nil, ""
	}
	if err := ValidateCABundle([]byte(data)); err != nil {
		return nil, fmt.Sprintf("%s is not a CA bundle: %v", ref, err)
	}
	return []byte(data), ""
}

// ValidateCABundle accepts PEM data of one or more CERTIFICATE blocks
// (text between blocks, such as comments, is ignored): anything else,
// a private key above all, must never travel to hosts as a CA bundle.
// Errors never quote the data.
func ValidateCABundle(data []byte) error {
	ders, rest, err := nodeconfig.Certificates(data)
	if err != nil {
		return err
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return fmt.Errorf("a PEM block after certificate %d is malformed", len(ders))
	}
	return nil
}

// ImageMirrors merges the mirror sets into one entry per source and kind
// (digest mirrors: Resolve false; tag mirrors: Resolve true), sorted by
// source, digest before tag. Sets are taken in order of name, so a
// source's mirrors keep the order the first set gives them and later
// sets add theirs after, without duplicates. A source is never
// contacted when any set says NeverContactSource for it.
func ImageMirrors(digest []configv1.ImageDigestMirrorSet, tag []configv1.ImageTagMirrorSet) []nodeconfig.ImageMirror {
	type key struct {
		source  string
		resolve bool
	}
	merged := map[key]*nodeconfig.ImageMirror{}
	add := func(source string, resolve bool, mirrors []configv1.ImageMirror, policy configv1.MirrorSourcePolicy) {
		if source == "" {
			return
		}
		k := key{source, resolve}
		m := merged[k]
		if m == nil {
			m = &nodeconfig.ImageMirror{Source: source, Resolve: resolve}
			merged[k] = m
		}
		for _, mirror := range mirrors {
			if s := string(mirror); s != "" && !slices.Contains(m.Mirrors, s) {
				m.Mirrors = append(m.Mirrors, s)
			}
		}
		if policy == configv1.NeverContactSource {
			m.NeverContactSource = true
		}
	}
	digest = slices.SortedFunc(slices.Values(digest), func(a, b configv1.ImageDigestMirrorSet) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range digest {
		for _, e := range s.Spec.ImageDigestMirrors {
			add(e.Source, false, e.Mirrors, e.MirrorSourcePolicy)
		}
	}
	tag = slices.SortedFunc(slices.Values(tag), func(a, b configv1.ImageTagMirrorSet) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range tag {
		for _, e := range s.Spec.ImageTagMirrors {
			add(e.Source, true, e.Mirrors, e.MirrorSourcePolicy)
		}
	}
	if len(merged) == 0 {
		return nil
	}
	out := make([]nodeconfig.ImageMirror, 0, len(merged))
	for _, m := range merged {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b nodeconfig.ImageMirror) int {
		if c := strings.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return cmp.Compare(boolInt(a.Resolve), boolInt(b.Resolve))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CloneFacts is a deep copy of f: a caller may change it without
// changing f.
func CloneFacts(f nodeconfig.ClusterFacts) nodeconfig.ClusterFacts {
	out := f
	out.CACertPEM = bytes.Clone(f.CACertPEM)
	out.PodNetworkCIDRs = slices.Clone(f.PodNetworkCIDRs)
	out.TrustedCAPEM = bytes.Clone(f.TrustedCAPEM)
	out.KubeletClientCAPEM = bytes.Clone(f.KubeletClientCAPEM)
	if f.ImageMirrors != nil {
		out.ImageMirrors = make([]nodeconfig.ImageMirror, len(f.ImageMirrors))
		for i, m := range f.ImageMirrors {
			m.Mirrors = slices.Clone(m.Mirrors)
			out.ImageMirrors[i] = m
		}
	}
	return out
}

// FactsChanges lists what differs from old to cur, one short phrase per
// field, for a log line: CIDRs, URLs, addresses and ports are named with
// their new values; proxy settings and CA bundles only as changed (a
// proxy URL may carry credentials; a bundle is long).
func FactsChanges(old, cur nodeconfig.ClusterFacts) []string {
	var out []string
	str := func(name, a, b string) {
		if a != b {
			out = append(out, fmt.Sprintf("%s=%q", name, b))
		}
	}
	str("apiServerURL", old.APIServerURL, cur.APIServerURL)
	str("serviceCIDR", old.ServiceCIDR, cur.ServiceCIDR)
	str("clusterNetworkCIDR", old.ClusterNetworkCIDR, cur.ClusterNetworkCIDR)
	str("dnsIP", old.DNSIP, cur.DNSIP)
	str("domain", old.Domain, cur.Domain)
	str("kubernetesVersion", old.KubernetesVersion, cur.KubernetesVersion)
	if !slices.Equal(old.PodNetworkCIDRs, cur.PodNetworkCIDRs) {
		out = append(out, fmt.Sprintf("podNetworkCIDRs=%q", cur.PodNetworkCIDRs))
	}
	if old.VXLANPort != cur.VXLANPort {
		out = append(out, fmt.Sprintf("vxlanPort=%d", cur.VXLANPort))
	}
	if old.Flannel != cur.Flannel {
		fl := cur.Flannel
		out = append(out, fmt.Sprintf("flannel={source:%q network:%q backend:%q vni:%d port:%d}", fl.Source, fl.Network, fl.Backend, fl.VNI, fl.Port))
	}
	if old.Proxy != cur.Proxy {
		out = append(out, "proxy changed")
	}
	for _, b := range []struct {
		name     string
		old, cur []byte
	}{{"caCert", old.CACertPEM, cur.CACertPEM}, {"trustedCA", old.TrustedCAPEM, cur.TrustedCAPEM}, {"kubeletClientCA", old.KubeletClientCAPEM, cur.KubeletClientCAPEM}} {
		if !bytes.Equal(b.old, b.cur) {
			out = append(out, fmt.Sprintf("%s changed (%d bytes)", b.name, len(b.cur)))
		}
	}
	if !slices.EqualFunc(old.ImageMirrors, cur.ImageMirrors, equalMirror) {
		out = append(out, fmt.Sprintf("imageMirrors changed (%d sources)", len(cur.ImageMirrors)))
	}
	return out
}

// EqualFacts reports whether a and b say the same (nil and empty alike).
func EqualFacts(a, b nodeconfig.ClusterFacts) bool { return len(FactsChanges(a, b)) == 0 }

func equalMirror(a, b nodeconfig.ImageMirror) bool {
	return a.Source == b.Source && a.Resolve == b.Resolve && a.NeverContactSource == b.NeverContactSource && slices.Equal(a.Mirrors, b.Mirrors)
}
