/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	kubeletapis "k8s.io/kubelet/pkg/apis"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
)

// ErrInvalidInputs wraps every error Render returns for inputs it cannot
// render a plan from.
var ErrInvalidInputs = errors.New("invalid node configuration inputs")

// MaxBootstrapTokenBytes bounds Inputs.BootstrapToken; a service account
// token is a JWT of a few kilobytes.
const MaxBootstrapTokenBytes = 16 << 10

// Allowed kubelet/kube-proxy version skew: the kubelet may be up to this
// many minor versions older than the API server, never newer.
const maxKubeletSkew = 3

var (
	kubeVersionRE = regexp.MustCompile(`^v([0-9]+)\.([0-9]+)\.([0-9]+)([-+][0-9A-Za-z.+-]*)?$`)
	// imageRE is a loose image reference check: the characters a
	// reference may hold and nothing that needs quoting.
	imageRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$`)
)

// resolved is the validated, defaulted view of Inputs that rendering uses.
type resolved struct {
	spec          wmcov1alpha1.WindowsNodeConfigSpec
	network       wmcov1alpha1.NetworkType
	vxlanPort     int32
	apiServer     string
	caPEM         []byte
	serviceCIDR   netip.Prefix
	clusterCIDR   netip.Prefix // invalid when not known (network None)
	dnsIP         netip.Addr
	domain        string
	nodeName      string
	nodeIP        netip.Addr
	hostSubnet    netip.Prefix // invalid when not known
	cloudProvider string
	payload       *payload.Manifest
	token         string
	labels        map[string]string
	taints        []wmcov1alpha1.NodeTaint
	mirrors       []mirror
	// podCIDRs are the cluster's other pod networks, without those
	// already in clusterCIDR or serviceCIDR.
	podCIDRs []netip.Prefix
	// proxy is the services' proxy environment, nil for none.
	proxy *proxyEnv
	// trustedRoots are the PEM certificates of the trusted CA bundle,
	// one each, sorted by thumbprint.
	trustedRoots []string
	// clientCAPEM is the kubelet's client CA bundle.
	clientCAPEM []byte
	// flannel holds the flannel settings, nil unless network type Flannel.
	flannel *flannelSettings
	// exporterTLS is windows_exporter's certificate and key, nil for
	// plain HTTP.
	exporterTLS *ExporterTLS
}

func (r *resolved) ovn() bool { return r.network == wmcov1alpha1.NetworkOVNHybridOverlay }

// podNetwork reports whether the plan sets up the pod network (an IPv4
// overlay or bridge): OVNHybridOverlay or Flannel.
func (r *resolved) podNetwork() bool { return r.ovn() || r.flannel != nil }

// resolve defaults and validates the inputs. The error lists every problem
// found, each prefixed with the input it concerns, and wraps
// ErrInvalidInputs. No message ever holds the bootstrap token.
func resolve(in Inputs) (*resolved, error) {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	r := &resolved{spec: Defaulted(in.Config)}
	spec := &r.spec

	// Network type and VXLAN port.
	vxlanField := "config.network.vxlanPort"
	r.network = spec.Network.Type
	switch r.network {
	case wmcov1alpha1.NetworkOVNHybridOverlay:
		r.vxlanPort, vxlanField = Setting[int32]{
			Config: spec.Network.VXLANPort, ConfigFrom: vxlanField,
			Cluster: in.Cluster.VXLANPort, ClusterFrom: "cluster.vxlanPort",
			Default: DefaultVXLANPort, DefaultFrom: vxlanField,
		}.Resolve()
		if r.vxlanPort < 1 || r.vxlanPort > 65535 {
			fail(vxlanField, "%d must be between 1 and 65535", r.vxlanPort)
		}
	case wmcov1alpha1.NetworkFlannel:
		r.flannel = resolveFlannel(spec.Network, in.Cluster.Flannel, fail)
		r.vxlanPort = r.flannel.port
	case wmcov1alpha1.NetworkNone:
		if spec.Network.VXLANPort != nil {
			fail("config.network.vxlanPort", "applies only to network types %s and %s", wmcov1alpha1.NetworkOVNHybridOverlay, wmcov1alpha1.NetworkFlannel)
		}
	default:
		fail("config.network.type", "%q is not one of %s, %s, %s", r.network, wmcov1alpha1.NetworkOVNHybridOverlay, wmcov1alpha1.NetworkFlannel, wmcov1alpha1.NetworkNone)
	}
	if spec.Network.Flannel != nil && r.network != wmcov1alpha1.NetworkFlannel {
		fail("config.network.flannel", "applies only to network type %s", wmcov1alpha1.NetworkFlannel)
	}

	// Cluster facts, with the config's overrides.
	r.apiServer = validateAPIServerURL(in.Cluster.APIServerURL, fail)
	r.caPEM = validateCA("cluster.caCertPEM", in.Cluster.CACertPEM, fail)
	r.clientCAPEM = r.caPEM
	if len(in.Cluster.KubeletClientCAPEM) > 0 {
		r.clientCAPEM = validateCA("cluster.kubeletClientCAPEM", in.Cluster.KubeletClientCAPEM, fail)
	}
	r.trustedRoots = validateTrustedCAs(in.Cluster.TrustedCAPEM, fail)

	serviceField, serviceCIDR := "cluster.serviceCIDR", in.Cluster.ServiceCIDR
	if spec.Network.ServiceNetworkCIDR != "" {
		serviceField, serviceCIDR = "config.network.serviceNetworkCIDR", spec.Network.ServiceNetworkCIDR
	}
	r.serviceCIDR = parseCIDR(serviceField, serviceCIDR, true, r.podNetwork(), fail)

	clusterField, clusterCIDR := "cluster.clusterNetworkCIDR", in.Cluster.ClusterNetworkCIDR
	switch {
	case spec.Network.ClusterNetworkCIDR != "":
		clusterField, clusterCIDR = "config.network.clusterNetworkCIDR", spec.Network.ClusterNetworkCIDR
	case clusterCIDR == "" && r.flannel != nil && in.Cluster.Flannel.Network != "":
		// kube-flannel's net-conf.json Network.
		clusterField, clusterCIDR = "cluster.flannel.network", in.Cluster.Flannel.Network
	}
	r.clusterCIDR = parseCIDR(clusterField, clusterCIDR, r.podNetwork(), r.podNetwork(), fail)
	if r.serviceCIDR.IsValid() && r.clusterCIDR.IsValid() && r.serviceCIDR.Overlaps(r.clusterCIDR) {
		fail(clusterField, "%s overlaps the service network %s", r.clusterCIDR, r.serviceCIDR)
	}
	r.podCIDRs = validatePodCIDRs(in.Cluster.PodNetworkCIDRs, r, fail)

	dnsField, dns := "cluster.dnsIP", in.Cluster.DNSIP
	if spec.Network.DNSServer != "" {
		dnsField, dns = "config.network.dnsServer", spec.Network.DNSServer
	}
	if dns == "" {
		fail(dnsField, "must be set")
	} else if a, err := netip.ParseAddr(dns); err != nil || a.Zone() != "" {
		fail(dnsField, "%q is not an IP address", dns)
	} else if r.podNetwork() && !a.Is4() {
		fail(dnsField, "%s must be IPv4: the hybrid overlay is IPv4 only", a)
	} else {
		r.dnsIP = a
	}

	r.domain = in.Cluster.Domain
	if r.domain == "" {
		r.domain = DefaultClusterDomain
	}
	if msgs := validation.IsDNS1123Subdomain(r.domain); len(msgs) > 0 {
		fail("cluster.domain", "%q: %s", r.domain, strings.Join(msgs, "; "))
	}

	// Payload and version skew.
	r.payload = in.Payload
	if in.Payload == nil {
		fail("payload", "must be set")
	} else if err := in.Payload.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("payload: %w", err))
	} else {
		validateFlannelPayload(in.Payload, r.flannel, fail)
	}
	clusterVersion, err := parseKubeVersion(in.Cluster.KubernetesVersion)
	if err != nil {
		fail("cluster.kubernetesVersion", "%q: %v", in.Cluster.KubernetesVersion, err)
	} else if in.Payload != nil {
		if kubelet, err := parseKubeVersion(in.Payload.KubernetesVersion); err == nil {
			switch {
			case kubelet[0] != clusterVersion[0] || kubelet[1] > clusterVersion[1]:
				fail("payload.kubernetesVersion", "kubelet %s is newer than the API server %s; a kubelet must not be newer than its API server",
					in.Payload.KubernetesVersion, in.Cluster.KubernetesVersion)
			case clusterVersion[1]-kubelet[1] > maxKubeletSkew:
				fail("payload.kubernetesVersion", "kubelet %s is more than %d minor versions older than the API server %s",
					in.Payload.KubernetesVersion, maxKubeletSkew, in.Cluster.KubernetesVersion)
			}
		}
	}

	// Host.
	if !slices.Contains(SupportedOSBuilds(), in.Host.OSBuild) {
		fail("host.osBuild", "Windows build %d is not supported (supported: %s)", in.Host.OSBuild, joinInts(SupportedOSBuilds()))
	} else if in.Host.OSBuild == OSBuildServer2019 && r.ovn() && r.vxlanPort != DefaultVXLANPort {
		fail(vxlanField, "%d is not supported on Windows Server 2019 (build %d), which only uses VXLAN port %d",
			r.vxlanPort, OSBuildServer2019, DefaultVXLANPort)
	}
	r.nodeIP = validateAddresses(in.Host.Addresses, r.podNetwork(), fail)

	// Node.
	r.nodeName = in.NodeName
	if in.NodeName == "" {
		fail("nodeName", "must be set")
	} else if msgs := validation.IsDNS1123Subdomain(in.NodeName); len(msgs) > 0 {
		fail("nodeName", "%q: %s", in.NodeName, strings.Join(msgs, "; "))
	}
	r.labels = validateLabels(in.NodeLabels, fail)
	switch in.CloudProvider {
	case "", CloudProviderExternal:
		r.cloudProvider = in.CloudProvider
	default:
		fail("cloudProvider", "%q: only %q (a cloud controller manager initialises the Node) or empty", in.CloudProvider, CloudProviderExternal)
	}
	validateToken(in.BootstrapToken, fail)
	r.token = in.BootstrapToken
	r.exporterTLS = validateExporterTLS(in.ExporterTLS, fail)

	// Host subnet.
	if in.HostSubnet != "" {
		if !r.podNetwork() {
			fail("hostSubnet", "applies only to network types %s and %s", wmcov1alpha1.NetworkOVNHybridOverlay, wmcov1alpha1.NetworkFlannel)
		} else if p := parseCIDR("hostSubnet", in.HostSubnet, true, true, fail); p.IsValid() {
			switch {
			case p.Bits() > 29:
				fail("hostSubnet", "%s is too small: at least a /29 is needed for the gateway, pods and kube-proxy's source VIP", p)
			case r.clusterCIDR.IsValid() && (p.Bits() < r.clusterCIDR.Bits() || !r.clusterCIDR.Contains(p.Addr())):
				fail("hostSubnet", "%s is not inside the cluster network %s", p, r.clusterCIDR)
			default:
				r.hostSubnet = p
			}
		}
	}

	// The rest of the config.
	r.taints = validateTaints(spec.Taints, fail)
	r.mirrors = validateMirrors(in.Cluster.ImageMirrors, spec.Containerd.RegistryMirrors, fail)
	r.proxy = resolveProxy(in.Cluster.Proxy, spec.Proxy, r, fail)
	if img := spec.Containerd.PauseImage; len(img) > 512 || !imageRE.MatchString(img) {
		fail("config.containerd.pauseImage", "%q is not an image reference", img)
	}
	lr := spec.LogRotation
	checkRange := func(field string, v, lo, hi int32) {
		if v < lo || v > hi {
			fail(field, "%d must be between %d and %d", v, lo, hi)
		}
	}
	checkRange("config.logRotation.maxFileSizeMiB", lr.MaxFileSizeMiB, 1, 10240)
	checkRange("config.logRotation.maxAgeDays", lr.MaxAgeDays, 1, 365)
	checkRange("config.logRotation.maxFiles", lr.MaxFiles, 1, 1000)

	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInputs, errors.Join(errs...))
	}
	return r, nil
}

type failFunc func(field, format string, args ...any)

func validateAPIServerURL(s string, fail failFunc) string {
	const field = "cluster.apiServerURL"
	if s == "" {
		fail(field, "must be set")
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		fail(field, "%q is not a URL", s)
	case u.Scheme != "https":
		fail(field, "%q must be an https:// URL", s)
	case u.Host == "" || u.Hostname() == "":
		fail(field, "%q has no host", s)
	case u.User != nil:
		fail(field, "must not hold credentials")
	case u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		fail(field, "%q must be scheme, host and port only", s)
	default:
		return "https://" + u.Host
	}
	return ""
}

func validateCA(field string, data []byte, fail failFunc) []byte {
	if len(data) == 0 {
		fail(field, "must be set")
		return nil
	}
	_, rest, err := Certificates(data)
	if err != nil {
		fail(field, "%v", err)
		return nil
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		fail(field, "holds data after the last PEM certificate")
		return nil
	}
	out := slices.Clone(data)
	if out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out
}

// validateExporterTLS checks that the certificate and key, when set,
// belong together. Its messages never quote the key.
func validateExporterTLS(t ExporterTLS, fail failFunc) *ExporterTLS {
	switch {
	case len(t.CertPEM) == 0 && len(t.KeyPEM) == 0:
		return nil
	case len(t.CertPEM) == 0 || len(t.KeyPEM) == 0:
		fail("exporterTLS", "needs both a certificate and a key")
		return nil
	}
	if _, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM); err != nil {
		// Not wrapped: a parse error may quote what it read.
		fail("exporterTLS", "the certificate and key cannot be parsed or do not belong together")
		return nil
	}
	return &ExporterTLS{CertPEM: slices.Clone(t.CertPEM), KeyPEM: slices.Clone(t.KeyPEM)}
}

// parseCIDR parses a canonical CIDR (no host bits set). required: must be
// non-empty; v4: must be IPv4 (the hybrid overlay is IPv4 only).
func parseCIDR(field, s string, required, v4 bool, fail failFunc) netip.Prefix {
	if s == "" {
		if required {
			fail(field, "must be set")
		}
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		fail(field, "%q is not a CIDR such as 10.132.0.0/14", s)
	case p.Masked() != p:
		fail(field, "%q has host bits set; did you mean %s?", s, p.Masked())
	case v4 && !p.Addr().Is4():
		fail(field, "%s must be IPv4: the hybrid overlay is IPv4 only", p)
	default:
		return p
	}
	return netip.Prefix{}
}

func validateAddresses(addrs []string, v4 bool, fail failFunc) netip.Addr {
	if len(addrs) == 0 {
		fail("host.addresses", "must list the host's addresses; the first one is the node IP")
		return netip.Addr{}
	}
	var first netip.Addr
	for i, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			fail(fmt.Sprintf("host.addresses[%d]", i), "%q is not an IP address", s)
			continue
		}
		if i > 0 {
			continue
		}
		switch {
		case a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a.IsLinkLocalUnicast():
			fail("host.addresses[0]", "%s cannot be the node IP (unspecified, loopback, multicast or link-local)", a)
		case v4 && !a.Is4():
			fail("host.addresses[0]", "%s: the node IP must be IPv4 for the hybrid overlay", a)
		default:
			first = a
		}
	}
	return first
}

func validateLabels(labels map[string]string, fail failFunc) map[string]string {
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		field := fmt.Sprintf("nodeLabels[%q]", k)
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			fail(field, "invalid key: %s", strings.Join(msgs, "; "))
			continue
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			fail(field, "invalid value %q: %s", v, strings.Join(msgs, "; "))
		}
		if isKubernetesLabel(k) && !kubeletapis.IsKubeletLabel(k) {
			fail(field, "a kubelet may not set this label on its own Node (allowed under kubernetes.io and k8s.io: %s, and keys under %s); the operator must set it after the join",
				strings.Join(kubeletapis.KubeletLabels(), ", "), strings.Join(kubeletapis.KubeletLabelNamespaces(), ", "))
		}
	}
	return labels
}

// isKubernetesLabel reports whether a label key is in a namespace
// reserved to Kubernetes, as the kubelet checks --node-labels.
func isKubernetesLabel(key string) bool {
	ns, _, ok := strings.Cut(key, "/")
	if !ok {
		return false
	}
	return ns == "kubernetes.io" || strings.HasSuffix(ns, ".kubernetes.io") ||
		ns == "k8s.io" || strings.HasSuffix(ns, ".k8s.io")
}

// validateToken checks the bootstrap token without ever printing it.
func validateToken(token string, fail failFunc) {
	const field = "bootstrapToken"
	switch {
	case token == "":
		fail(field, "must be set")
	case len(token) > MaxBootstrapTokenBytes:
		fail(field, "is %d bytes, at most %d allowed", len(token), MaxBootstrapTokenBytes)
	case strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
		fail(field, "must be printable ASCII without spaces (value not shown)")
	}
}

func validateTaints(taints []wmcov1alpha1.NodeTaint, fail failFunc) []wmcov1alpha1.NodeTaint {
	type keyEffect struct{ key, effect string }
	seen := map[keyEffect]int{}
	for i, t := range taints {
		field := fmt.Sprintf("config.taints[%d]", i)
		if msgs := validation.IsQualifiedName(t.Key); len(msgs) > 0 {
			fail(field, "invalid key %q: %s", t.Key, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(t.Value); len(msgs) > 0 {
			fail(field, "invalid value %q: %s", t.Value, strings.Join(msgs, "; "))
		}
		switch t.Effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			fail(field, "effect %q is not one of NoSchedule, PreferNoSchedule, NoExecute", t.Effect)
		}
		ke := keyEffect{t.Key, string(t.Effect)}
		if j, dup := seen[ke]; dup {
			fail(field, "same key and effect as config.taints[%d]", j)
		}
		seen[ke] = i
	}
	return taints
}

// registryDir checks a registry host[:port] and returns the directory
// containerd looks for its hosts.toml in: ":port" becomes "_port_", as
// Windows file names cannot hold a colon. Lower case, as registry names
// are host names.
func registryDir(registry string) (string, error) {
	if registry == "" {
		return "", errors.New("must not be empty")
	}
	host, port, hasPort := strings.Cut(registry, ":")
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return "", errors.New("must be a host name or IPv4 address with an optional :port")
		}
	}
	host = strings.ToLower(host)
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Is4() {
			return "", errors.New("IPv6 registry addresses are not supported")
		}
	} else if msgs := validation.IsDNS1123Subdomain(host); len(msgs) > 0 {
		return "", fmt.Errorf("must be a host name or IPv4 address with an optional :port: %s", strings.Join(msgs, "; "))
	}
	if hasPort {
		return host + "_" + port + "_", nil
	}
	return host, nil
}

func validateMirrorURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case len(s) > 2048:
		return errors.New("must be at most 2048 characters")
	case err != nil:
		return fmt.Errorf("%q is not a URL", s)
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Errorf("%q must be an http:// or https:// URL", s)
	case u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return errors.New("must not hold credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q must not have a query or fragment", s)
	case strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return errors.New("must not contain control characters")
	}
	return nil
}

// parseKubeVersion returns major, minor and patch of a version such as
// v1.37.2.
func parseKubeVersion(s string) ([3]int, error) {
	m := kubeVersionRE.FindStringSubmatch(s)
	if m == nil {
		return [3]int{}, errors.New("must be a Kubernetes version such as v1.37.2")
	}
	var v [3]int
	for i := range v {
		n, err := strconv.Atoi(m[i+1])
		if err != nil {
			return [3]int{}, errors.New("must be a Kubernetes version such as v1.37.2")
		}
		v[i] = n
	}
	return v, nil
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
