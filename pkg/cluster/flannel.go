package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/openwmco/wmco/pkg/bounded"
	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// Where plain Kubernetes clusters keep their network settings.
const (
	// FlannelConfigMapName is kube-flannel's ConfigMap (kube-flannel.yml
	// of flannel's releases, and sig-windows-tools' variant of it).
	FlannelConfigMapName = "kube-flannel-cfg"
	// FlannelNetConfKey is its key holding flannel's network
	// configuration (flanneld reads it as /etc/kube-flannel/net-conf.json).
	FlannelNetConfKey = "net-conf.json"
	// ServiceCIDRName is the networking.k8s.io/v1 ServiceCIDR the API
	// server keeps for its --service-cluster-ip-range.
	ServiceCIDRName = "kubernetes"
	// DefaultServiceCIDR is the service CIDR assumed when neither
	// --service-cidr, the cluster's configuration nor the ServiceCIDR
	// object tells one: kubeadm's default.
	DefaultServiceCIDR = "10.96.0.0/12"
)

// FlannelNamespaces are the namespaces searched for FlannelConfigMapName,
// in order: flannel's own manifests use kube-flannel, older ones and
// sig-windows-tools' kube-system.
var FlannelNamespaces = []string{"kube-flannel", "kube-system"}

// The defaults flannel applies to a VXLAN backend that sets no VNI or
// port (Documentation/backends.md of flannel): Linux nodes use VNI 1 and
// the kernel's VXLAN port, Windows nodes VNI 4096 and port 4789, the only
// port flannel accepts on Windows, with no VNI below 4096.
const (
	FlannelLinuxDefaultVNI  = 1
	FlannelLinuxDefaultPort = 8472
	FlannelWindowsMinVNI    = nodeconfig.DefaultFlannelVNI
	FlannelWindowsPort      = nodeconfig.DefaultVXLANPort
)

// maxVNI is the largest VXLAN network identifier (24 bits).
const maxVNI = 1<<24 - 1

// quoteJSON quotes a raw JSON value for a message, bounded.
func quoteJSON(raw json.RawMessage) string { return bounded.Quote(string(bytes.TrimSpace(raw))) }

// netConf is the part of flannel's net-conf.json the operator reads; the
// other keys (SubnetLen, EnableIPv6, ...) concern flanneld alone. Keys
// match case-insensitively, as flanneld's encoding/json matches them.
type netConf struct {
	Network json.RawMessage
	Backend json.RawMessage
}

// netConfBackend is net-conf.json's Backend.
type netConfBackend struct {
	Type json.RawMessage
	VNI  json.RawMessage
	Port json.RawMessage
}

// ParseFlannelNetConf reads kube-flannel's net-conf.json: Network (an
// IPv4 CIDR, as flannel requires; returned masked), Backend.Type (vxlan
// or host-gw, the backends flannel has on Windows), and for vxlan
// Backend.VNI (1 to 16777215) and Backend.Port (0 to 65535; 0 is unset,
// as for flannel). The result has no Source. An error names the field
// (net-conf.json Backend.VNI, ...) and quotes at most a few dozen bytes
// of the input.
func ParseFlannelNetConf(data []byte) (nodeconfig.FlannelFacts, error) {
	var out nodeconfig.FlannelFacts
	var conf netConf
	if err := decodeObject(data, &conf); err != nil {
		return out, fmt.Errorf("net-conf.json: %w", err)
	}
	if isNull(conf.Network) {
		return out, errors.New("net-conf.json Network is missing (flannel on Windows needs an IPv4 pod network)")
	}
	var network string
	if err := json.Unmarshal(conf.Network, &network); err != nil {
		return out, fmt.Errorf("net-conf.json Network %s is not a string", quoteJSON(conf.Network))
	}
	p, err := netip.ParsePrefix(network)
	if err != nil || !p.Addr().Is4() {
		return out, fmt.Errorf("net-conf.json Network %s is not an IPv4 CIDR", bounded.Quote(network))
	}
	out.Network = p.Masked().String()

	if isNull(conf.Backend) {
		// flanneld's default backend is udp, which Windows lacks.
		return out, errors.New("net-conf.json Backend is missing (flannel then uses udp; Windows nodes need vxlan or host-gw)")
	}
	var backend netConfBackend
	if err := decodeObject(conf.Backend, &backend); err != nil {
		return out, fmt.Errorf("net-conf.json Backend: %w", err)
	}
	var typ string
	if isNull(backend.Type) || json.Unmarshal(backend.Type, &typ) != nil {
		return out, fmt.Errorf("net-conf.json Backend.Type %s is not a string", quoteJSON(backend.Type))
	}
	switch typ {
	case nodeconfig.FlannelBackendTypeVXLAN:
	case nodeconfig.FlannelBackendTypeHostGW:
		out.Backend = typ
		return out, nil
	default:
		return out, fmt.Errorf("net-conf.json Backend.Type %s is not supported for Windows nodes (%s or %s)", bounded.Quote(typ),
			nodeconfig.FlannelBackendTypeVXLAN, nodeconfig.FlannelBackendTypeHostGW)
	}
	out.Backend = typ
	if out.VNI, err = intField("net-conf.json Backend.VNI", backend.VNI, 1, maxVNI); err != nil {
		return out, err
	}
	if out.Port, err = intField("net-conf.json Backend.Port", backend.Port, 0, 65535); err != nil {
		return out, err
	}
	return out, nil
}

// decodeObject decodes data, which must be one JSON object, into v.
func decodeObject(data []byte, v any) error {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("%s is not a JSON object", bounded.Quote(string(trimmed)))
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return fmt.Errorf("not valid JSON at byte %d", syntax.Offset)
		}
		return errors.New("not valid JSON")
	}
	return nil
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// intField is the integer raw holds, from min to max; 0 when raw is
// absent or null.
func intField(name string, raw json.RawMessage, minimum, maximum int64) (int32, error) {
	if isNull(raw) {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s %s is not an integer", name, quoteJSON(raw))
	}
	if n < minimum || n > maximum {
		return 0, fmt.Errorf("%s %d is not from %d to %d", name, n, minimum, maximum)
	}
	return int32(n), nil
}

// flannelFacts reads net-conf.json of cm (nil: no facts); a problem
// names the ConfigMap and the field.
func flannelFacts(cm *corev1.ConfigMap) (nodeconfig.FlannelFacts, string) {
	if cm == nil {
		return nodeconfig.FlannelFacts{}, ""
	}
	where := fmt.Sprintf("ConfigMap %s/%s", cm.Namespace, cm.Name)
	data, ok := cm.Data[FlannelNetConfKey]
	if !ok {
		return nodeconfig.FlannelFacts{}, where + " has no key " + FlannelNetConfKey
	}
	f, err := ParseFlannelNetConf([]byte(data))
	if err != nil {
		return nodeconfig.FlannelFacts{}, fmt.Sprintf("%s: %v", where, err)
	}
	f.Source = cm.Namespace + "/" + cm.Name
	return f, ""
}

// serviceCIDRFrom is the first IPv4 CIDR of the ServiceCIDR (Windows
// services are IPv4), else its first; "" for nil.
func serviceCIDRFrom(s *networkingv1.ServiceCIDR) string {
	if s == nil || len(s.Spec.CIDRs) == 0 {
		return ""
	}
	for _, c := range s.Spec.CIDRs {
		if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
			return c
		}
	}
	return s.Spec.CIDRs[0]
}
