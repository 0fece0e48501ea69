// Package platform is the one place that knows how the clouds a Windows
// Machine can run on differ: which of the Machine's addresses the operator
// dials, which user it logs in as, where the Node's name comes from,
// whether the Windows computer name must be set, which kubelet
// cloud-provider flag applies and how the first-boot userData is wrapped.
// Everything else asks Lookup; no other package compares platform names.
//
// The platform is the type in the status of the cluster's Infrastructure
// object (config.openshift.io/v1, named cluster); a cluster without one is
// None.
package platform

import (
	"errors"
	"fmt"
	"strings"

	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// NodeNameSource says where the Node name of a Machine's host comes from.
type NodeNameSource int

const (
	// NodeNameFromHost is the host's own computer name, in lower case
	// (or the WindowsInstance's spec.nodeName): the operator sets none.
	NodeNameFromHost NodeNameSource = iota
	// NodeNameFromMachine is the Machine's name: the VM's name on the
	// cloud, which its cloud controller manager looks the Node up by.
	NodeNameFromMachine
	// NodeNameFromInternalDNS is the Machine's InternalDNS address (on
	// AWS the instance's private DNS name, ip-10-0-1-2.ec2.internal),
	// which the AWS cloud controller manager looks the Node up by.
	NodeNameFromInternalDNS
)

// String names the source, for messages.
func (s NodeNameSource) String() string {
	switch s {
	case NodeNameFromHost:
		return "the host's computer name"
	case NodeNameFromMachine:
		return "the Machine's name"
	case NodeNameFromInternalDNS:
		return "the Machine's InternalDNS address"
	}
	return fmt.Sprintf("NodeNameSource(%d)", int(s))
}

// ErrNodeNamePending is wrapped by MachineNodeName's error when the Machine
// lacks, for now, the address its Node is named after: it may come with a
// later status update. Any other error is for good.
var ErrNodeNamePending = errors.New("node name not known yet")

// Profile is how one platform behaves.
type Profile struct {
	// Type is the Infrastructure platform type (AWS, Azure, VSphere,
	// None, ...).
	Type configv1.PlatformType
	// Username is the account the operator logs in as on a Machine's
	// host: Administrator, or capi on Azure, whose images disable the
	// built-in Administrator.
	Username string
	// AddressTypes are the Machine address types the operator may dial,
	// in order of preference.
	AddressTypes []corev1.NodeAddressType
	// NodeName says where the Node name comes from.
	NodeName NodeNameSource
	// SetHostname makes the operator set the Windows computer name to the
	// Node name (which takes a reboot) before the host joins: the vSphere
	// cloud controller manager finds a Node's VM by the guest's host
	// name.
	SetHostname bool
	// KubeletCloudProvider is the kubelet's --cloud-provider: "external"
	// where a cloud controller manager initialises Nodes (the kubelet
	// then registers with the node.cloudprovider.kubernetes.io/uninitialized
	// taint until it has), "" where none runs.
	KubeletCloudProvider string
	// UserDataTags wraps the first-boot script in <powershell> tags
	// followed by <persist>true</persist>, as EC2Launch and the
	// OpenShift Windows images' cloudbase-init expect; without it the
	// script is bare (GCP's windows-startup-script-ps1).
	UserDataTags bool
	// EC2Launch makes the first-boot script ensure EC2Launch v2 and
	// persist the instance metadata routes, which the hybrid overlay's
	// network changes would otherwise drop (AWS only).
	EC2Launch bool
}

// MaxHostnameLength is the longest Windows computer name (the NetBIOS
// limit): a Node name the operator must set as the host name may be no
// longer.
const MaxHostnameLength = 15

// External is the kubelet --cloud-provider value of platforms whose Nodes
// a cloud controller manager initialises.
const External = "external"

// UninitializedTaint is the taint a kubelet started with
// --cloud-provider=external registers its Node with; the cloud controller
// manager removes it once it has initialised the Node.
const UninitializedTaint = "node.cloudprovider.kubernetes.io/uninitialized"

var (
	ipThenDNS = []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeInternalDNS}
	ipOnly    = []corev1.NodeAddressType{corev1.NodeInternalIP}
)

// profiles is the table. Platforms not listed behave as None.
var profiles = map[configv1.PlatformType]Profile{
	configv1.AWSPlatformType: {
		Username: "Administrator", AddressTypes: ipThenDNS, NodeName: NodeNameFromInternalDNS,
		KubeletCloudProvider: External, UserDataTags: true, EC2Launch: true,
	},
	configv1.AzurePlatformType: {
		Username: "capi", AddressTypes: ipOnly, NodeName: NodeNameFromMachine,
		KubeletCloudProvider: External, UserDataTags: true,
	},
	configv1.VSpherePlatformType: {
		Username: "Administrator", AddressTypes: ipThenDNS, NodeName: NodeNameFromMachine, SetHostname: true,
		KubeletCloudProvider: External, UserDataTags: true,
	},
	configv1.NonePlatformType: {
		Username: "Administrator", AddressTypes: ipThenDNS, NodeName: NodeNameFromHost, UserDataTags: true,
	},
}

// Supported lists the platforms with a profile of their own, in a stable
// order.
func Supported() []configv1.PlatformType {
	return []configv1.PlatformType{configv1.AWSPlatformType, configv1.AzurePlatformType, configv1.VSpherePlatformType, configv1.NonePlatformType}
}

// Lookup returns the profile of platform t. An empty t is None; a platform
// without a profile of its own behaves as None (known is then false, so the
// caller can say so).
func Lookup(t configv1.PlatformType) (p Profile, known bool) {
	if t == "" {
		t = configv1.NonePlatformType
	}
	p, known = profiles[t]
	if !known {
		p = profiles[configv1.NonePlatformType]
	}
	p.Type = t
	return p, known
}

// MachineNodeName returns the Node name a Machine's host must register as,
// or "" when the host's own name is used (NodeNameFromHost). machineName
// is the Machine's name, addrs its status addresses. An error says why no
// valid name can be had yet or at all (no InternalDNS address yet; a name
// that is not a DNS subdomain; a name to set as the Windows computer name
// that is longer than MaxHostnameLength or not a DNS label).
func (p Profile) MachineNodeName(machineName string, addrs []corev1.NodeAddress) (string, error) {
	var name string
	switch p.NodeName {
	case NodeNameFromHost:
		return "", nil
	case NodeNameFromMachine:
		name = machineName
	case NodeNameFromInternalDNS:
		for _, a := range addrs {
			if a.Type == corev1.NodeInternalDNS && a.Address != "" {
				name = strings.ToLower(strings.TrimSuffix(a.Address, "."))
				break
			}
		}
		if name == "" {
			return "", fmt.Errorf("%w: the Machine has no %s address yet; on %s the Node is named after it", ErrNodeNamePending, corev1.NodeInternalDNS, p.Type)
		}
	}
	if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
		return "", fmt.Errorf("node name %q (%s) is not a valid Node name: %s", name, p.NodeName, strings.Join(msgs, "; "))
	}
	if p.SetHostname {
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			return "", fmt.Errorf("node name %q must also be the Windows computer name on %s: %s", name, p.Type, strings.Join(msgs, "; "))
		}
		if len(name) > MaxHostnameLength {
			return "", fmt.Errorf("node name %q must also be the Windows computer name on %s, which holds at most %d characters: shorten the MachineSet's name",
				name, p.Type, MaxHostnameLength)
		}
	}
	return name, nil
}
