package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

// Files of this directory (hack/kind) the script and the tests read.
const (
	// ClusterFile is the kind cluster configuration.
	ClusterFile = "cluster.yaml"
	// NetConfFile is kube-flannel's net-conf.json, merged into the
	// kube-flannel-cfg ConfigMap by the kube-flannel overlay.
	NetConfFile = "kube-flannel/net-conf.json"
	// FlannelDir is the kustomize overlay of kube-flannel's manifest.
	FlannelDir = "kube-flannel"
)

// What Windows flannel expects of kube-flannel's VXLAN backend: the VNI
// and UDP port sig-windows-tools and flannel's Windows documentation
// configure, and the defaults of WindowsNodeConfig's Flannel settings.
const (
	WindowsVXLANVNI  = 4096
	WindowsVXLANPort = 4789
)

// clusterNameRE is what kind accepts as a cluster name
// (sigs.k8s.io/kind/pkg/internal/apis/config.validate.go).
var clusterNameRE = regexp.MustCompile(`^[a-z0-9.-]+$`)

// imageRE is a pinned kindest/node image: a version tag and a digest.
var imageRE = regexp.MustCompile(`^kindest/node:v(\d+)\.(\d+)\.(\d+)@sha256:[0-9a-f]{64}$`)

// LoadCluster decodes a kind cluster configuration the way kind does
// (sigs.k8s.io/kind/pkg/internal/apis/config/encoding.Parse, which is
// internal): apiVersion kind.x-k8s.io/v1alpha4, kind Cluster, then a strict
// decoding that refuses unknown fields, then kind's defaults.
func LoadCluster(raw []byte) (*v1alpha4.Cluster, error) {
	var tm struct {
		Kind       string `yaml:"kind"`
		APIVersion string `yaml:"apiVersion"`
	}
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("kind config: read kind and apiVersion: %w", err)
	}
	if tm.APIVersion != "kind.x-k8s.io/v1alpha4" || tm.Kind != "Cluster" {
		return nil, fmt.Errorf("kind config: want apiVersion kind.x-k8s.io/v1alpha4, kind Cluster; got %q, %q", tm.APIVersion, tm.Kind)
	}
	c := &v1alpha4.Cluster{}
	d := yaml.NewDecoder(bytes.NewReader(raw))
	d.KnownFields(true)
	if err := d.Decode(c); err != nil {
		return nil, fmt.Errorf("kind config: %w", err)
	}
	v1alpha4.SetDefaultsCluster(c)
	return c, nil
}

// NetConf is kube-flannel's net-conf.json (flannel's pkg/subnet.Config),
// decoded strictly so a misspelt key is an error, not a default.
type NetConf struct {
	Network        string
	IPv6Network    string `json:",omitempty"`
	EnableIPv4     *bool  `json:",omitempty"`
	EnableIPv6     bool   `json:",omitempty"`
	EnableNFTables bool
	SubnetLen      uint   `json:",omitempty"`
	SubnetMin      string `json:",omitempty"`
	SubnetMax      string `json:",omitempty"`
	Backend        NetConfBackend
}

// NetConfBackend is net-conf.json's Backend: Type and the vxlan backend's
// settings (flannel's pkg/backend/vxlan).
type NetConfBackend struct {
	Type          string
	VNI           int    `json:",omitempty"`
	Port          int    `json:",omitempty"`
	GBP           bool   `json:",omitempty"`
	Learning      bool   `json:",omitempty"`
	DirectRouting bool   `json:",omitempty"`
	MTU           int    `json:",omitempty"`
	MacPrefix     string `json:",omitempty"`
}

// ParseNetConf decodes net-conf.json strictly.
func ParseNetConf(raw []byte) (NetConf, error) {
	var nc NetConf
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&nc); err != nil {
		return NetConf{}, fmt.Errorf("net-conf.json: %w", err)
	}
	if d.More() {
		return NetConf{}, errors.New("net-conf.json: more than one JSON value")
	}
	return nc, nil
}

// Check reports every way the kind configuration c and kube-flannel's nc
// would not give Windows flannel nodes a working cluster: kind's own
// validation rules that matter here, the default CNI disabled, the pod
// subnet equal to flannel's Network, the VXLAN backend with Windows' VNI
// and port, node images pinned to the Kubernetes minor the payload's
// kubelet has (k8sVersion, e.g. v1.37.2: a kubelet may not be newer than
// the API server), and kubeadm patches that are YAML objects kind can
// match.
func Check(c *v1alpha4.Cluster, nc NetConf, k8sVersion string) error {
	var errs []error
	if !clusterNameRE.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("cluster name %q: kind wants %s", c.Name, clusterNameRE))
	}
	n := c.Networking
	if n.IPFamily != v1alpha4.IPv4Family {
		errs = append(errs, fmt.Errorf("networking.ipFamily %q: Windows flannel nodes need ipv4", n.IPFamily))
	}
	if !n.DisableDefaultCNI {
		errs = append(errs, errors.New("networking.disableDefaultCNI must be true: kindnet has no Windows side, kube-flannel replaces it"))
	}
	if n.APIServerPort < 0 || n.APIServerPort > 65535 {
		errs = append(errs, fmt.Errorf("networking.apiServerPort %d is not a port", n.APIServerPort))
	}
	pod, podErr := netip.ParsePrefix(n.PodSubnet)
	if podErr != nil {
		errs = append(errs, fmt.Errorf("networking.podSubnet: %w", podErr))
	}
	svc, svcErr := netip.ParsePrefix(n.ServiceSubnet)
	if svcErr != nil {
		errs = append(errs, fmt.Errorf("networking.serviceSubnet: %w", svcErr))
	}
	if podErr == nil && svcErr == nil && pod.Overlaps(svc) {
		errs = append(errs, fmt.Errorf("networking.podSubnet %s overlaps serviceSubnet %s", pod, svc))
	}
	flannelNet, err := netip.ParsePrefix(nc.Network)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("net-conf.json Network: %w", err))
	case podErr == nil && flannelNet.Masked() != pod.Masked():
		errs = append(errs, fmt.Errorf("net-conf.json Network %s differs from kind's networking.podSubnet %s: flannel would hand out subnets the controller manager does not", flannelNet, pod))
	}
	if nc.Backend.Type != "vxlan" {
		errs = append(errs, fmt.Errorf("net-conf.json Backend.Type %q: want vxlan (the Windows VMs are not on the kind nodes' layer-2 network, so host-gw cannot work)", nc.Backend.Type))
	}
	if nc.Backend.VNI != WindowsVXLANVNI {
		errs = append(errs, fmt.Errorf("net-conf.json Backend.VNI %d: Windows flannel needs %d", nc.Backend.VNI, WindowsVXLANVNI))
	}
	if nc.Backend.Port != WindowsVXLANPort {
		errs = append(errs, fmt.Errorf("net-conf.json Backend.Port %d: Windows flannel needs %d", nc.Backend.Port, WindowsVXLANPort))
	}
	errs = append(errs, checkNodes(c, k8sVersion)...)
	errs = append(errs, checkPatches("kubeadmConfigPatches", c.KubeadmConfigPatches)...)
	return errors.Join(errs...)
}

func checkNodes(c *v1alpha4.Cluster, k8sVersion string) []error {
	var errs []error
	wantMinor, err := minorOf(k8sVersion)
	if err != nil {
		errs = append(errs, err)
	}
	controlPlanes := 0
	for i, node := range c.Nodes {
		switch node.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
		case v1alpha4.WorkerRole:
		default:
			errs = append(errs, fmt.Errorf("nodes[%d].role %q: want control-plane or worker", i, node.Role))
		}
		m := imageRE.FindStringSubmatch(node.Image)
		switch {
		case m == nil:
			errs = append(errs, fmt.Errorf("nodes[%d].image %q: want kindest/node:vX.Y.Z@sha256:<digest>, pinned", i, node.Image))
		case wantMinor != "" && m[1]+"."+m[2] != wantMinor:
			errs = append(errs, fmt.Errorf("nodes[%d].image %q: Kubernetes %s.%s, but the payload's kubelet is %s (K8S_VERSION): the operator would find no compatible payload, or the cluster would be newer than the kubelets", i, node.Image, m[1], m[2], k8sVersion))
		}
		if i > 0 && node.Image != c.Nodes[0].Image {
			errs = append(errs, fmt.Errorf("nodes[%d].image %q differs from nodes[0]'s %q", i, node.Image, c.Nodes[0].Image))
		}
		errs = append(errs, checkPatches(fmt.Sprintf("nodes[%d].kubeadmConfigPatches", i), node.KubeadmConfigPatches)...)
	}
	if controlPlanes == 0 {
		errs = append(errs, errors.New("nodes: no control-plane node"))
	}
	return errs
}

// minorOf is "1.37" of "v1.37.2".
func minorOf(version string) (string, error) {
	parts := strings.Split(strings.TrimPrefix(version, "v"), ".")
	if len(parts) != 3 || !strings.HasPrefix(version, "v") {
		return "", fmt.Errorf("kubernetes version %q: want vX.Y.Z", version)
	}
	return parts[0] + "." + parts[1], nil
}

// checkPatches requires every kubeadm patch to be a YAML object naming
// apiVersion and kind: kind merges a patch into the kubeadm document of
// that apiVersion and kind, and silently drops one that matches none.
func checkPatches(field string, patches []string) []error {
	var errs []error
	for i, p := range patches {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(p), &obj); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", field, i, err))
			continue
		}
		apiVersion, _ := obj["apiVersion"].(string)
		kind, _ := obj["kind"].(string)
		if !strings.HasPrefix(apiVersion, "kubeadm.k8s.io/") && !strings.HasPrefix(apiVersion, "kubelet.config.k8s.io/") &&
			!strings.HasPrefix(apiVersion, "kubeproxy.config.k8s.io/") {
			errs = append(errs, fmt.Errorf("%s[%d]: apiVersion %q is not a kubeadm, kubelet or kube-proxy configuration", field, i, apiVersion))
		}
		if kind == "" {
			errs = append(errs, fmt.Errorf("%s[%d]: no kind", field, i))
		}
	}
	return errs
}

// Render returns the kind configuration raw, which must load, with
// networking.apiServerAddress and apiServerPort set, comments kept. The address is where the Windows
// VMs reach the API server (kind adds it to the serving certificate), so
// loopback, unspecified, link-local and multicast addresses are refused.
func Render(raw []byte, addr netip.Addr, port int) ([]byte, error) {
	switch {
	case !addr.Is4():
		return nil, fmt.Errorf("API server address %s: want an IPv4 address the Windows VMs can reach", addr)
	case addr.IsLoopback(), addr.IsUnspecified(), addr.IsLinkLocalUnicast(), addr.IsMulticast():
		return nil, fmt.Errorf("API server address %s: the Windows VMs cannot reach a loopback, unspecified, link-local or multicast address; use this machine's address on their network", addr)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("API server port %d: want 1-65535", port)
	}
	want, err := LoadCluster(raw)
	if err != nil {
		return nil, err
	}
	want.Networking.APIServerAddress, want.Networking.APIServerPort = addr.String(), int32(port)
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("kind config: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("kind config: not one YAML object")
	}
	networking := mappingValue(doc.Content[0], "networking")
	if networking == nil {
		networking = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		doc.Content[0].Content = append(doc.Content[0].Content,
			&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "networking"}, networking)
	}
	if networking.Kind != yaml.MappingNode {
		return nil, errors.New("kind config: networking is not an object")
	}
	setScalar(networking, "apiServerAddress", "!!str", addr.String())
	setScalar(networking, "apiServerPort", "!!int", fmt.Sprint(port))
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	// YAML does not always survive a round trip (an anchored null key
	// comes back as an empty string): what kind would load must be the
	// input with the two values set, nothing else.
	got, err := LoadCluster(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("kind config: the rendering does not load: %w", err)
	}
	if !reflect.DeepEqual(got, want) {
		return nil, errors.New("kind config: the rendering changes more than networking.apiServerAddress and apiServerPort")
	}
	return out.Bytes(), nil
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setScalar(m *yaml.Node, key, tag, value string) {
	if v := mappingValue(m, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, tag, value, 0
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value})
}
