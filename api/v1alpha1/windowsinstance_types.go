package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// DefaultCredentialsSecretName is the Secret holding the SSH private key
	// when a WindowsInstance does not name one (WMCO's name for it).
	DefaultCredentialsSecretName = "cloud-private-key"
	// DefaultCredentialsSecretKey is the key of the private key in that Secret.
	DefaultCredentialsSecretKey = "private-key.pem"
	// DefaultSSHPort is the SSH port used when spec.port is not set.
	DefaultSSHPort = 22
)

// PortOrDefault is port, or DefaultSSHPort when port is 0: the value the
// API server stores for an unset spec.port. Code that builds a spec to
// compare with a stored one uses it; stored objects need no defaulting.
func PortOrDefault(port int32) int32 {
	if port == 0 {
		return DefaultSSHPort
	}
	return port
}

// WindowsInstanceSpec describes one Windows host and how to reach it.
type WindowsInstanceSpec struct {
	// Address of the host: an IPv4 or IPv6 address or a DNS name. Never
	// a link-local (169.254.0.0/16, which holds the cloud metadata service,
	// or fe80::/10), multicast, unspecified or broadcast address: the
	// operator refuses to connect to one, also when a name resolves to it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="isIP(self) || self.matches('^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$')",message="address must be an IPv4 address, an IPv6 address or a DNS name"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || !ip(self).isLinkLocalUnicast()",message="address must not be link-local (169.254.0.0/16, where clouds serve instance metadata at 169.254.169.254, or fe80::/10): the operator never connects to one"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || !(cidr('224.0.0.0/4').containsIP(ip(self)) || cidr('ff00::/8').containsIP(ip(self)))",message="address must not be multicast (224.0.0.0/4 or ff00::/8): it names a group, not a host"
	// +kubebuilder:validation:XValidation:rule="!isIP(self) || !ip(self).isUnspecified()",message="address must not be the unspecified address (0.0.0.0 or ::): it names no host"
	// +kubebuilder:validation:XValidation:rule="self != '255.255.255.255'",message="address must not be the broadcast address 255.255.255.255: it names no host"
	Address string `json:"address"`

	// Port of the host's SSH server.
	// +optional
	// +kubebuilder:default=22
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// Username to log in as over SSH, e.g. Administrator or DOMAIN\user.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^\\\\s\"/\\\\[\\\\]:;|=,+*?<>]+$')",message="username must not contain spaces or any of \" / [ ] : ; | = , + * ? < >"
	Username string `json:"username"`

	// CredentialsSecretRef names the Secret key holding the SSH private key
	// (PEM or OpenSSH format). By default the key private-key.pem of the
	// Secret cloud-private-key in the operator's namespace. A namespace
	// other than the operator's must be listed in the WindowsNodeConfig's
	// spec.credentialNamespaces.
	// +optional
	// +kubebuilder:default={}
	CredentialsSecretRef SecretKeyReference `json:"credentialsSecretRef,omitempty"`

	// HostKey pins the host's SSH public key, in authorized_keys format
	// ("ssh-ed25519 AAAA..."). When empty the key seen on first connection
	// is trusted and recorded in status.hostKey; later connections must
	// present that key.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	// +kubebuilder:validation:XValidation:rule="self.matches('^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/]+={0,2}$')",message="hostKey must be '<type> <base64>' with type ssh-rsa, ssh-ed25519 or ecdsa-sha2-nistp256/384/521"
	HostKey string `json:"hostKey,omitempty"`

	// NodeName is the name the Node gets (the kubelet's
	// --hostname-override), a lower-case DNS subdomain such as
	// ip-10-0-1-2.ec2.internal. When empty it is the host's hostname in
	// lower case.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="nodeName must be a lower-case RFC 1123 subdomain"
	NodeName string `json:"nodeName,omitempty"`

	// Hostname, when set, is the Windows computer name the operator gives
	// the host before it joins (renaming it and rebooting it once). On
	// vSphere the Machine controller sets it to the Machine's name, which
	// the vSphere cloud controller manager finds the VM by. At most 15
	// characters (the NetBIOS limit), a lower-case RFC 1123 label.
	// +optional
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="hostname must be a lower-case RFC 1123 label"
	Hostname string `json:"hostname,omitempty"`

	// CloudProvider is the kubelet's --cloud-provider: "external" where a
	// cloud controller manager initialises the Node (the Machine
	// controller sets it on AWS, Azure and vSphere), empty for none.
	// +optional
	// +kubebuilder:validation:Enum="";external
	CloudProvider string `json:"cloudProvider,omitempty"`

	// Paused stops the operator from touching the host until it is unset.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// SecretKeyReference points at one key of a Secret.
type SecretKeyReference struct {
	// Namespace of the Secret; empty means the operator's namespace. Any
	// other must be listed in WindowsNodeConfig spec.credentialNamespaces.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// Name of the Secret.
	// +optional
	// +kubebuilder:default=cloud-private-key
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`

	// Key within the Secret's data.
	// +optional
	// +kubebuilder:default=private-key.pem
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key,omitempty"`
}

// InstancePhase is a one-word summary of where a host is in its life.
// +kubebuilder:validation:Enum=Pending;Connecting;Preflight;Provisioning;Configuring;WaitingForNode;Ready;Upgrading;Deprovisioning;Failed;Paused
type InstancePhase string

// Phases of a WindowsInstance, in the order a host normally passes them.
const (
	// PhasePending: nothing tried yet, or waiting for a configuration slot.
	PhasePending        InstancePhase = "Pending"
	PhaseConnecting     InstancePhase = "Connecting"
	PhasePreflight      InstancePhase = "Preflight"
	PhaseProvisioning   InstancePhase = "Provisioning"
	PhaseConfiguring    InstancePhase = "Configuring"
	PhaseWaitingForNode InstancePhase = "WaitingForNode"
	PhaseReady          InstancePhase = "Ready"
	// PhaseUpgrading: the host holds an upgrade slot and moves to
	// another payload (status.upgrade says from which to which), or is
	// being rolled back.
	PhaseUpgrading      InstancePhase = "Upgrading"
	PhaseDeprovisioning InstancePhase = "Deprovisioning"
	PhaseFailed         InstancePhase = "Failed"
	PhasePaused         InstancePhase = "Paused"
)

// Condition types of a WindowsInstance. Ready summarises the others;
// Reconciling and Stalled follow kstatus (kubectl wait, Flux and Argo CD
// health checks understand them): Reconciling is present and True while
// the operator works towards Ready, Stalled is present and True when it
// cannot go on until the spec or the Secret changes; each is removed when
// it does not hold.
const (
	ConditionReachable       = "Reachable"
	ConditionPreflightPassed = "PreflightPassed"
	ConditionConfigured      = "Configured"
	ConditionNodeReady       = "NodeReady"
	// ConditionUpgrading is True while the host moves to another payload
	// (reasons UpgradeWaitingForSlot, UpgradeDraining, UpgradeApplying,
	// UpgradeWaitingForNode, RollingBack) and False once it runs the
	// selected one (UpgradeSucceeded, UpToDate) or when an upgrade failed
	// and was rolled back (UpgradeFailed, naming the payload and why; that
	// payload is not tried again on this host until the selected payload
	// or the instance's spec changes).
	ConditionUpgrading = "Upgrading"
	// ConditionPayloadCompatible is False (reason NoCompatiblePayload) when
	// no payload the operator ships fits the API server's version under
	// the kubelet version-skew policy; the message names the versions
	// available and the API server's. No host is touched meanwhile.
	ConditionPayloadCompatible = "PayloadCompatible"
	// ConditionClusterConfigCompatible is False (reason
	// ClusterConfigIncomplete) when the cluster's configuration does not
	// let a Windows host join, e.g. OVN-Kubernetes without a hybrid
	// overlay; the message says what to configure where. No host is
	// touched meanwhile.
	ConditionClusterConfigCompatible = "ClusterConfigCompatible"
	ConditionReady                   = "Ready"
	ConditionReconciling             = "Reconciling"
	ConditionStalled                 = "Stalled"
	// ConditionDraining reports the drain of the instance's Node before it
	// is deconfigured (deletion, rename). True while pods are left to
	// evict (reasons DrainInProgress, DrainBlockedByPDB, DrainTimedOut;
	// the message names the pods left and the PodDisruptionBudgets
	// refusing their eviction), False with reason Drained once none is.
	// Its lastTransitionTime to True is when the drain started: the drain
	// deadline counts from it.
	ConditionDraining = "Draining"
)

// HostFacts are what the operator observed on the host.
type HostFacts struct {
	// Hostname as the host reports it.
	// +optional
	Hostname string `json:"hostname,omitempty"`
	// OSBuild is the Windows build number, e.g. 20348.
	// +optional
	OSBuild int32 `json:"osBuild,omitempty"`
	// Addresses are the host's IP addresses.
	// +optional
	// +listType=set
	Addresses []string `json:"addresses,omitempty"`
}

// WindowsInstanceStatus is the observed state of a host.
type WindowsInstanceStatus struct {
	// Conditions: Reachable, PreflightPassed, Configured, NodeReady,
	// Ready as the summary, kstatus' Reconciling and Stalled, and Draining
	// while the Node is drained before the host is deconfigured.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Phase is a one-word summary of the conditions.
	// +optional
	Phase InstancePhase `json:"phase,omitempty"`

	// NodeName of the Node this host became.
	// +optional
	NodeName string `json:"nodeName,omitempty"`

	// HostKey is the SSH host key the operator trusts for this host.
	// +optional
	HostKey string `json:"hostKey,omitempty"`

	// AuthorizedKeyFingerprint is the SHA256 fingerprint ("SHA256:...",
	// as ssh-keygen -l prints it) of the SSH public key the host is known
	// to accept. When the credentials Secret's key differs, the operator
	// rotates the host to it: it logs in with this key, installs the new
	// one, checks a login with it and removes this one.
	// +optional
	AuthorizedKeyFingerprint string `json:"authorizedKeyFingerprint,omitempty"`

	// Host facts observed over SSH.
	// +optional
	Host HostFacts `json:"host,omitempty"`

	// PayloadVersion is the payload version applied to the host.
	// +optional
	PayloadVersion string `json:"payloadVersion,omitempty"`

	// KubeletVersion is the version the Node's kubelet reports
	// (status.nodeInfo.kubeletVersion), as observed on the Node.
	// +optional
	KubeletVersion string `json:"kubeletVersion,omitempty"`

	// Upgrade is present while the host holds an upgrade slot: at most
	// WindowsNodeConfig spec.maxUnavailable instances have one at a time,
	// and since it is recorded here a restarted operator keeps the bound.
	// +optional
	Upgrade *UpgradeStatus `json:"upgrade,omitempty"`
	// FailedUpgrade records the last upgrade of this host that failed: it
	// was rolled back or, when the host kept no previous plan to roll back
	// to, left on the failed payload. The operator does not start an
	// upgrade to that payload on this host again until another payload is
	// selected or the instance's spec changes.
	// +optional
	FailedUpgrade *FailedUpgrade `json:"failedUpgrade,omitempty"`
	// Reboot is present from when the operator asks the host to reboot
	// (to enable a feature or take a new computer name) until it sees the
	// host run a later boot. Windows reboots seconds after the request
	// and answers meanwhile; the operator leaves the host alone until
	// then, and a restarted operator knows it still waits.
	// +optional
	Reboot *RebootStatus `json:"reboot,omitempty"`
	// ObservedGeneration is the generation last reconciled successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Message is the last error or wait reason in words.
	// +optional
	Message string `json:"message,omitempty"`
}

// UpgradeStep is where a rolling upgrade of one host stands.
// +kubebuilder:validation:Enum=Draining;Applying;WaitingForNode;RollingBack
type UpgradeStep string

// Steps of a rolling upgrade, in order; RollingBack replaces the last two
// when the new payload fails.
const (
	UpgradeStepDraining       UpgradeStep = "Draining"
	UpgradeStepApplying       UpgradeStep = "Applying"
	UpgradeStepWaitingForNode UpgradeStep = "WaitingForNode"
	UpgradeStepRollingBack    UpgradeStep = "RollingBack"
)

// UpgradeStatus is a rolling upgrade in progress on one host.
type UpgradeStatus struct {
	// From is the payload version the host ran when the upgrade started.
	From string `json:"from"`
	// To is the payload version the host is upgraded to.
	To string `json:"to"`
	// Progress is "<from> → <to>" (shown by kubectl get wi).
	// +optional
	Progress string `json:"progress,omitempty"`
	// Step the upgrade is at.
	// +optional
	Step UpgradeStep `json:"step,omitempty"`
	// StartedAt is when the slot was taken.
	StartedAt metav1.Time `json:"startedAt"`
	// AppliedAt is when the new payload's plan was applied: the upgrade
	// timeout (WindowsNodeConfig spec.upgradeTimeout) counts from it.
	// +optional
	AppliedAt *metav1.Time `json:"appliedAt,omitempty"`
	// InPlace is true for a change of components that needs no drain
	// (windows_exporter, csi-proxy, service settings): only the affected
	// services restart, and it does not count against maxUnavailable.
	// +optional
	InPlace bool `json:"inPlace,omitempty"`
	// Cordoned is true when the operator cordoned the Node for the
	// upgrade (and so uncordons it after); false when it already was.
	// +optional
	Cordoned bool `json:"cordoned,omitempty"`
	// Reason the upgrade is being rolled back (set with step RollingBack).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// RebootStatus is a reboot of the host the operator asked for and has not
// seen happen yet.
type RebootStatus struct {
	// RequestedAt is when the operator asked for the reboot.
	RequestedAt metav1.Time `json:"requestedAt"`
	// BootTime is when the boot the host ran then began, as its agent
	// reported it; a different one means the host has rebooted. Empty
	// when the agent does not report it.
	// +optional
	BootTime string `json:"bootTime,omitempty"`
}

// FailedUpgrade is an upgrade that failed.
type FailedUpgrade struct {
	// Version is the payload version that failed on this host.
	Version string `json:"version"`
	// Reason in words: the service that did not start, or the Node that
	// was not Ready with the new kubelet within the upgrade timeout.
	Reason string `json:"reason"`
	// Time the upgrade ended: the rollback completed, or was found
	// impossible.
	Time metav1.Time `json:"time"`
	// Generation of the instance when it failed; a newer spec tries again.
	Generation int64 `json:"generation"`
}

// WindowsInstance is one Windows host that the operator turns into a node.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=wi,categories=wmco
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="the name of a WindowsInstance is at most 63 characters: it is used as a label value on its Node and bootstrap ServiceAccount"
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.address`
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.nodeName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Kubelet",type=string,JSONPath=`.status.kubeletVersion`
// +kubebuilder:printcolumn:name="Upgrade",type=string,JSONPath=`.status.upgrade.progress`
// +kubebuilder:printcolumn:name="Payload",type=string,priority=1,JSONPath=`.status.payloadVersion`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.message`
type WindowsInstance struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec WindowsInstanceSpec `json:"spec"`
	// +optional
	Status WindowsInstanceStatus `json:"status,omitempty"`
}

// WindowsInstanceList is a list of WindowsInstance.
//
// +kubebuilder:object:root=true
type WindowsInstanceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WindowsInstance `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WindowsInstance{}, &WindowsInstanceList{})
}
