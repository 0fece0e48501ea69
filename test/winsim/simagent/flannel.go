package simagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// startCheck is what a program checks before it reports running; an
// error makes the process exit at once, and the service manager reports
// the start failed (ERROR_PROCESS_ABORTED) and schedules recovery.
type startCheck func(ProcessInfo) error

// startChecks are the programs whose start depends on the host's state.
func (n *Node) startChecks() map[string]startCheck {
	return map[string]startCheck{"kube-proxy.exe": n.checkKubeProxy}
}

// checkKubeProxy refuses to start kube-proxy when the HNS network it is
// told to use (--network-name, or winkernel.networkName of its --config
// file) does not exist. The real kube-proxy waits for it and never
// reports running meanwhile; the simulator is stricter so that a plan
// that starts kube-proxy before its network exists is caught.
func (n *Node) checkKubeProxy(p ProcessInfo) error {
	name := flagValue(p.Args, "--network-name")
	if path := flagValue(p.Args, "--config"); name == "" && path != "" {
		data, err := n.Host.Disk().ReadFile(path)
		if err != nil {
			return fmt.Errorf("kube-proxy: read %s: %w", path, err)
		}
		var c struct {
			Winkernel struct {
				NetworkName string `json:"networkName"`
			} `json:"winkernel"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("kube-proxy: %s: %w", path, err)
		}
		name = c.Winkernel.NetworkName
	}
	// Without a network name (tests' plans without a pod network) the
	// simulator does not check.
	if name != "" && !n.hns.has(name) {
		return fmt.Errorf("kube-proxy: Unable to find HNS Network specified, please check network name and CNI deployment: hnsNetworkName=%q", name)
	}
	return nil
}

// FlannelNetwork is the HNS network flanneld creates for a
// net-conf.json: Backend.Name, else flannel's Windows defaults
// ("flannel.<VNI>" for vxlan, "cbr0" for host-gw).
func FlannelNetwork(netConf []byte) (string, error) {
	var c struct {
		Network string
		Backend struct {
			Type string
			Name string
			VNI  int
			Port int
		}
	}
	if err := json.Unmarshal(netConf, &c); err != nil {
		return "", fmt.Errorf("parse net-conf.json: %w", err)
	}
	if _, err := netip.ParsePrefix(c.Network); err != nil {
		return "", fmt.Errorf("net-conf.json: Network %q: %w", c.Network, err)
	}
	switch c.Backend.Type {
	case "vxlan":
		// flannel's Windows vxlan backend's own checks.
		vni := c.Backend.VNI
		if vni == 0 {
			vni = 4096
		}
		if vni < 4096 {
			return "", fmt.Errorf("invalid VXLAN backend config. VNI [%d] must be greater than or equal to 4096 on Windows", vni)
		}
		if c.Backend.Port != 0 && c.Backend.Port != 4789 {
			return "", fmt.Errorf("invalid VXLAN backend config. Port [%d] is not supported on Windows", c.Backend.Port)
		}
		if c.Backend.Name == "" {
			return "flannel." + strconv.Itoa(vni), nil
		}
	case "host-gw":
		if c.Backend.Name == "" {
			return "cbr0", nil
		}
	default:
		return "", fmt.Errorf("net-conf.json: backend type %q is not supported on Windows", c.Backend.Type)
	}
	return c.Backend.Name, nil
}

// runFlanneld is flanneld as the plan runs it (--kube-subnet-mgr with
// NODE_NAME, a kubeconfig and a net-conf.json): it exits as flanneld
// does when one is missing, else creates its HNS network and idles.
func (n *Node) runFlanneld(ctx context.Context, p ProcessInfo) error {
	if !slices.Contains(p.Args, "--kube-subnet-mgr") {
		return errors.New("flanneld: only --kube-subnet-mgr is simulated")
	}
	if p.Service.Env["NODE_NAME"] == "" {
		return errors.New("flanneld: env variables POD_NAME and POD_NAMESPACE must be set")
	}
	kubeconfig := flagValue(p.Args, "--kubeconfig-file")
	if kubeconfig == "" {
		return errors.New("flanneld: no --kubeconfig-file")
	}
	if _, err := n.Host.Disk().Stat(kubeconfig); err != nil {
		return fmt.Errorf("flanneld: kubeconfig %s: %w", kubeconfig, err)
	}
	path := flagValue(p.Args, "--net-config-path")
	data, err := n.Host.Disk().ReadFile(path)
	if err != nil {
		return fmt.Errorf("flanneld: failed to read net conf: %w", err)
	}
	name, err := FlannelNetwork(data)
	if err != nil {
		return fmt.Errorf("flanneld: %w", err)
	}
	n.hns.create(name)
	<-ctx.Done()
	return nil
}

// CNIConfig is what the host's CNI configuration (nodeconfig.CNIConfigPath)
// says, as the CNI plugin reads it.
type CNIConfig struct {
	// Name is the HNS network the plugin attaches pods to.
	Name string
	// Type is the plugin: win-overlay or win-bridge.
	Type string
	// Subnet is the host-local IPAM subnet pods get addresses from.
	Subnet string
}

// CNIConfig reads the host's CNI configuration; an error wraps
// fs.ErrNotExist when there is none.
func (n *Node) CNIConfig() (CNIConfig, error) {
	data, err := n.Host.Disk().ReadFile(nodeconfig.CNIConfigPath)
	if err != nil {
		return CNIConfig{}, err
	}
	var c struct {
		Name string `json:"name"`
		Type string `json:"type"`
		IPAM struct {
			Type   string `json:"type"`
			Subnet string `json:"subnet"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return CNIConfig{}, fmt.Errorf("%s: %w", nodeconfig.CNIConfigPath, err)
	}
	if c.IPAM.Type != "host-local" {
		return CNIConfig{}, fmt.Errorf("%s: IPAM %q, not host-local", nodeconfig.CNIConfigPath, c.IPAM.Type)
	}
	return CNIConfig{Name: c.Name, Type: c.Type, Subnet: c.IPAM.Subnet}, nil
}

// CheckCNISubnet fails unless the host's CNI configuration gives pods
// addresses from podCIDR (the Node's spec.podCIDR) on an HNS network
// that exists.
func (n *Node) CheckCNISubnet(podCIDR string) error {
	c, err := n.CNIConfig()
	if err != nil {
		return err
	}
	if c.Subnet != podCIDR {
		return fmt.Errorf("CNI configuration %s (%s) gives pods addresses from %s, but the Node's podCIDR is %s", nodeconfig.CNIConfigPath, c.Type, c.Subnet, podCIDR)
	}
	if !n.hns.has(c.Name) {
		return fmt.Errorf("CNI configuration %s names HNS network %s, which does not exist", nodeconfig.CNIConfigPath, c.Name)
	}
	return nil
}

// has reports whether an HNS network exists.
func (n *hns) has(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.networks[name]
}

// CreateNetwork implements wicd.NetworkCreator. Like HNS, it refuses a
// network on an adapter the host does not have.
func (n *hns) CreateNetwork(_ context.Context, net wicdapi.HostNetwork) error {
	a, err := netip.ParseAddr(net.AdapterAddress)
	if err != nil || !slices.Contains(n.host.Facts().IPAddresses, a) {
		return fmt.Errorf("no network adapter holds %s", net.AdapterAddress)
	}
	n.create(net.Name)
	return nil
}

// flagValue is the value of --name=value or --name value in args.
func flagValue(args []string, name string) string {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
