package machinesim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/test/firstboot"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// VSphereTemplateHostname is the computer name every vSphere VM boots
// with: the template's, which the operator must change to the Machine's
// name for the vSphere cloud controller manager to find the VM.
const VSphereTemplateHostname = "WIN-TEMPLATE"

const (
	awsRegion = "us-east-1"
	awsZone   = "us-east-1a"
	// infraName is the cluster's infrastructure name in the
	// Infrastructure object and in Azure resource IDs.
	infraName = "sim-cluster"
	// azureSubscription is the subscription in Azure provider IDs.
	azureSubscription = "00000000-0000-4000-8000-000000000000"
	// userDataKey is the key of the userData Secret that holds the script.
	userDataKey = "userData"
)

// vm is one simulated instance.
type vm struct {
	machine    string
	uid        types.UID
	octet      int
	ip         string
	node       *simagent.Node
	providerID string
	// addresses are the Machine's (status.addresses): the InternalIP is
	// the loopback address the VM's sshd listens on.
	addresses []corev1.NodeAddress
	// nodeAddresses are what the VM's network card has, as the cloud
	// controller manager reports them on the Node: the InternalIP is
	// NICAddress (a documentation address, never dialled).
	nodeAddresses []corev1.NodeAddress
	// baseline holds the files on the disk right after first boot, in
	// lower case.
	baseline map[string]bool
}

// providerSpec is the part of every platform's providerSpec.value the
// cloud reads.
type providerSpec struct {
	UserDataSecret *struct {
		Name string `json:"name"`
	} `json:"userDataSecret,omitempty"`
	Placement struct {
		AvailabilityZone string `json:"availabilityZone,omitempty"`
	} `json:"placement"`
}

// userDataSecretName returns the name of the Machine's userData Secret.
func userDataSecretName(m *machinev1beta1.Machine) (string, error) {
	if m.Spec.ProviderSpec.Value == nil || len(m.Spec.ProviderSpec.Value.Raw) == 0 {
		return "", fmt.Errorf("the Machine has no providerSpec.value")
	}
	var ps providerSpec
	if err := json.Unmarshal(m.Spec.ProviderSpec.Value.Raw, &ps); err != nil {
		return "", fmt.Errorf("providerSpec.value: %w", err)
	}
	if ps.UserDataSecret == nil || ps.UserDataSecret.Name == "" {
		return "", fmt.Errorf("providerSpec.value names no userDataSecret")
	}
	return ps.UserDataSecret.Name, nil
}

// addresses are the VM addresses in use in this process, by IPPrefix and
// last octet: Clouds that run at the same time never share one, even with
// the same prefix (their Nodes would otherwise match each other's
// Machines by address).
var addresses = struct {
	sync.Mutex
	used map[string]map[int]bool
	next map[string]int
}{used: map[string]map[int]bool{}, next: map[string]int{}}

// allocateIP takes the next free address, from IPPrefix + "2" to
// IPPrefix + "254" and round again.
func (c *Cloud) allocateIP() (int, error) {
	addresses.Lock()
	defer addresses.Unlock()
	p := c.opts.IPPrefix
	if addresses.used[p] == nil {
		addresses.used[p] = map[int]bool{}
	}
	for range 253 {
		o := max(addresses.next[p], 2)
		addresses.next[p] = o + 1
		if o+1 > 254 {
			addresses.next[p] = 2
		}
		if !addresses.used[p][o] {
			addresses.used[p][o] = true
			return o, nil
		}
	}
	return 0, fmt.Errorf("machinesim: no free address in %s2-254", p)
}

func (c *Cloud) releaseIP(o int) {
	addresses.Lock()
	defer addresses.Unlock()
	delete(addresses.used[c.opts.IPPrefix], o)
}

// hostname is the computer name a Machine's VM boots with.
func (c *Cloud) hostname(machine string) string {
	if c.opts.Hostname != nil {
		return c.opts.Hostname(machine)
	}
	switch c.profile.Type {
	case configv1.AWSPlatformType:
		return "EC2AMAZ-" + randomString(7, upperAlnum)
	case configv1.AzurePlatformType:
		return strings.ToUpper(machine[:min(len(machine), 15)])
	case configv1.VSpherePlatformType:
		return VSphereTemplateHostname
	}
	return "WIN-" + randomString(11, upperAlnum)
}

// accounts are the local accounts of a VM of the platform with a usable
// login: Azure's images disable the built-in Administrator and create
// capi.
func (c *Cloud) accounts() []string {
	if c.profile.Type == configv1.AzurePlatformType {
		return []string{"capi"}
	}
	return []string{"Administrator"}
}

// identity returns the provider ID and the addresses the platform's
// Machine API provider reports for a VM.
func (c *Cloud) identity(m *machinev1beta1.Machine, ip string) (string, []corev1.NodeAddress) {
	internalIP := corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip}
	switch c.profile.Type {
	case configv1.AWSPlatformType:
		zone := awsZone
		var ps providerSpec
		if m.Spec.ProviderSpec.Value != nil && json.Unmarshal(m.Spec.ProviderSpec.Value.Raw, &ps) == nil && ps.Placement.AvailabilityZone != "" {
			zone = ps.Placement.AvailabilityZone
		}
		dns := "ip-" + strings.ReplaceAll(ip, ".", "-") + ".ec2.internal"
		return "aws:///" + zone + "/i-" + randomString(17, lowerHex), []corev1.NodeAddress{
			internalIP,
			{Type: corev1.NodeInternalDNS, Address: dns},
			{Type: corev1.NodeHostName, Address: dns},
		}
	case configv1.AzurePlatformType:
		return "azure:///subscriptions/" + azureSubscription + "/resourceGroups/" + infraName + "-rg/providers/Microsoft.Compute/virtualMachines/" + m.Name,
			[]corev1.NodeAddress{{Type: corev1.NodeHostName, Address: m.Name}, internalIP}
	case configv1.VSpherePlatformType:
		return "vsphere://" + uuid(), []corev1.NodeAddress{internalIP, {Type: corev1.NodeInternalDNS, Address: m.Name}}
	}
	return "", []corev1.NodeAddress{internalIP}
}

// boot starts the Machine's VM from its userData.
func (c *Cloud) boot(ctx context.Context, m *machinev1beta1.Machine, userData []byte) (*vm, error) {
	octet, err := c.allocateIP()
	if err != nil {
		return nil, err
	}
	ip := c.opts.IPPrefix + strconv.Itoa(octet)
	res, fbErr := firstboot.Run(c.profile, firstboot.ImageFor(c.profile), userData)
	listen := netipPort(ip, c.port)
	sshd := true
	if fbErr == nil && !res.SSHServer {
		// No sshd: nothing listens on the SSH port. winsim always runs
		// its server, so it listens on a port nobody is told about.
		listen, sshd = netipPort(ip, 0), false
	}
	hostname := c.hostname(m.Name)
	h, err := winsim.Start(context.WithoutCancel(ctx), winsim.Options{
		Hostname: hostname, OSBuild: c.opts.OSBuild, ListenAddress: listen, Accounts: c.accounts(),
		IPAddresses: []netip.Addr{netip.MustParseAddr(NICAddress(octet))},
		Logger:      c.slog.With("machine", m.Name),
	})
	if err != nil {
		c.releaseIP(octet)
		return nil, fmt.Errorf("machinesim: boot the VM of Machine %s: %w", m.Name, err)
	}
	node, err := simagent.Install(h, c.opts.Host)
	if err != nil {
		_ = h.Close()
		c.releaseIP(octet)
		return nil, fmt.Errorf("machinesim: install the node software on the VM of Machine %s: %w", m.Name, err)
	}
	// What the first-boot script did.
	user := res.EnabledUser
	if user == "" {
		user = c.accounts()[0]
	}
	var did string
	switch {
	case fbErr != nil:
		c.record(m.Name, EventNoUsableKey, "the first-boot script failed: %v", fbErr)
	case len(res.AuthorizedKeys) == 0:
		c.record(m.Name, EventNoUsableKey, "the first-boot script authorises no key")
	default:
		for _, k := range res.AuthorizedKeys {
			h.AuthorizeKey(user, k)
		}
		if res.KeysACLRestricted && h.IsAdmin(user) {
			if err := h.Disk().SetSecurity(winsim.AdministratorsAuthorizedKeysPath, wicd.AdministratorsKeysSDDL); err != nil {
				c.log.Error(err, "Cannot restrict the administrators' keys file", "machine", m.Name)
			}
		}
		did = fmt.Sprintf("; %d key(s) for %s, sshd %v, key-only %v, keys file restricted %v, firewall ports %v",
			len(res.AuthorizedKeys), user, sshd, res.KeyOnly, res.KeysACLRestricted, res.FirewallPorts)
	}
	providerID, addrs := c.identity(m, ip)
	v := &vm{
		machine: m.Name, uid: m.UID, octet: octet, ip: ip, node: node, providerID: providerID, addresses: addrs,
		nodeAddresses: nicAddresses(addrs, NICAddress(octet)), baseline: map[string]bool{},
	}
	for _, f := range diskFiles(h.Disk(), `C:\`) {
		v.baseline[strings.ToLower(f)] = true
	}
	c.mu.Lock()
	c.vms[m.Name] = v
	c.mu.Unlock()
	c.record(m.Name, EventHostBooted, "%s (%s) at %s%s", hostname, providerID, h.Address(), did)
	return v, nil
}

// destroy powers the VM off for good and frees its address.
func (c *Cloud) destroy(v *vm) error {
	err := v.node.Host.Close()
	c.mu.Lock()
	if c.vms[v.machine] == v {
		delete(c.vms, v.machine)
	}
	c.mu.Unlock()
	c.releaseIP(v.octet)
	return err
}

// vmOf returns the VM of the Machine, nil if none.
func (c *Cloud) vmOf(m *machinev1beta1.Machine) *vm {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.vms[m.Name]
	if v == nil || v.uid != m.UID {
		return nil
	}
	return v
}

func netipPort(ip string, port int) string {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)).String()
}

const (
	upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	lowerHex   = "0123456789abcdef"
)

// randomString returns n characters of alphabet.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// uuid returns a random (version 4) UUID, as vSphere's BIOS UUIDs look.
func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// NICAddress is the address a VM's network card reports (what programs on
// it, the kubelet and the agent's facts see), for the VM whose sshd
// listens on IPPrefix + octet. A real VM has one address for both; a
// simulated one cannot have a loopback address on its card (the operator
// refuses a loopback node IP, as a real host never has one), so its card
// reports 192.0.2.<octet> (TEST-NET-1: data only, never dialled), as
// test/localenv's hosts do.
func NICAddress(octet int) string { return "192.0.2." + strconv.Itoa(octet) }

// nicAddresses are the Machine's addresses with the InternalIP replaced by
// the card's.
func nicAddresses(machine []corev1.NodeAddress, nic string) []corev1.NodeAddress {
	out := make([]corev1.NodeAddress, 0, len(machine))
	for _, a := range machine {
		if a.Type == corev1.NodeInternalIP {
			a.Address = nic
		}
		out = append(out, a)
	}
	return out
}
