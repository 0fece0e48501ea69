/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import "github.com/openwmco/wmco/pkg/wicdapi"

// Locations on the host the plan writes to or points at.
const (
	// KubeletConfigPath is the kubelet's KubeletConfiguration.
	KubeletConfigPath = wicdapi.InstallRoot + `\kubelet.conf`
	// CACertPath is the cluster CA bundle.
	CACertPath = wicdapi.InstallRoot + `\ca.crt`
	// BootstrapKubeconfigPath is the kubeconfig with the bootstrap token
	// the kubelet uses for its first certificate request.
	BootstrapKubeconfigPath = wicdapi.InstallRoot + `\bootstrap-kubeconfig`
	// KubeconfigPath is the kubelet's own kubeconfig, written by the
	// kubelet after TLS bootstrap; kube-proxy uses it too. Not rendered.
	KubeconfigPath = wicdapi.InstallRoot + `\kubeconfig`
	// HybridOverlayDir holds hybrid-overlay-node's configuration.
	HybridOverlayDir = wicdapi.InstallRoot + `\hybrid-overlay`
	// HybridOverlayKubeconfigPath is hybrid-overlay-node's own kubeconfig:
	// the node's rotated client certificate (KubeletClientCertPath).
	HybridOverlayKubeconfigPath = HybridOverlayDir + `\kubeconfig`
	// KubeProxyConfigPath is kube-proxy's KubeProxyConfiguration.
	KubeProxyConfigPath = wicdapi.InstallRoot + `\kube-proxy.conf`
	// ContainerdDir holds containerd's configuration.
	ContainerdDir = wicdapi.InstallRoot + `\containerd`
	// ContainerdConfigPath is containerd's config.toml.
	ContainerdConfigPath = ContainerdDir + `\containerd.toml`
	// ContainerdHostsDir holds one directory per registry with a
	// hosts.toml listing its mirrors (containerd's config_path).
	ContainerdHostsDir = ContainerdDir + `\certs.d`
	// ContainerdShimPath is where the runhcs shim containerd starts for
	// every pod lives: outside the versioned payload directories, because
	// shim processes outlive containerd and payload upgrades (a copy of
	// the payload's shim, see wicdapi.Copy).
	ContainerdShimPath = ContainerdDir + `\containerd-shim-runhcs-v1.exe`
	// ContainerdPipe is containerd's CRI endpoint.
	ContainerdPipe = `\\.\pipe\containerd-containerd`
	// ContainerRuntimeEndpoint is ContainerdPipe as the kubelet names it.
	ContainerRuntimeEndpoint = "npipe://./pipe/containerd-containerd"
	// ContainerdRoot and ContainerdState are containerd's data
	// directories.
	ContainerdRoot  = `C:\ProgramData\containerd\root`
	ContainerdState = `C:\ProgramData\containerd\state`
	// CNIDir holds the CNI configuration directory.
	CNIDir = wicdapi.InstallRoot + `\cni`
	// CNIBinDir holds copies of the payload's CNI plugins, containerd's
	// bin_dir: outside the versioned payload directories, so that
	// containerd's configuration, and with it containerd and the kubelet,
	// does not change with every payload version (wicdapi.Copy replaces a
	// plugin a pod's setup still runs by renaming it aside).
	CNIBinDir = CNIDir + `\bin`
	// CNIConfigDir is the CNI configuration directory containerd reads.
	CNIConfigDir = CNIDir + `\config`
	// CNIConfigPath is the one CNI configuration the plan writes.
	CNIConfigPath = CNIConfigDir + `\cni.conf`
	// KubeletDir is the kubelet's root directory.
	KubeletDir = `C:\var\lib\kubelet`
	// KubeletPKIDir is where the kubelet keeps its certificates.
	KubeletPKIDir = wicdapi.KubeletPKIDir
	// KubeletClientCAPath is the CA bundle the kubelet verifies client
	// certificates with (its clientCAFile); the kubelet reloads it when
	// it changes.
	KubeletClientCAPath = KubeletPKIDir + `\kubelet-client-ca.crt`
	// KubeletClientCertPath is the kubelet's current client certificate
	// and key (one PEM file), which the kubelet rotates. Not rendered.
	KubeletClientCertPath = KubeletPKIDir + `\kubelet-client-current.pem`
	// WindowsExporterDir holds windows_exporter's web configuration and
	// serving certificate, when it serves TLS.
	WindowsExporterDir = wicdapi.InstallRoot + `\windows_exporter`
	// WindowsExporterWebConfigPath is its exporter-toolkit web
	// configuration (--web.config.file).
	WindowsExporterWebConfigPath = WindowsExporterDir + `\web-config.yml`
	// WindowsExporterCertPath and WindowsExporterKeyPath are its serving
	// certificate and key; the key is readable by administrators and
	// SYSTEM only.
	WindowsExporterCertPath = WindowsExporterDir + `\tls.crt`
	WindowsExporterKeyPath  = WindowsExporterDir + `\tls.key`
)

// HybridOverlayNetwork is the HNS network hybrid-overlay-node creates and
// the CNI configuration and kube-proxy use; it first creates
// BaseHybridOverlayNetwork. Cleanup removes both.
const (
	HybridOverlayNetwork     = "OVNKubernetesHybridOverlayNetwork"
	BaseHybridOverlayNetwork = "BaseOVNKubernetesHybridOverlayNetwork"
)

// StepTimeoutSeconds is the deadline of each step of applying a plan on
// the host (wicdapi.Plan.StepTimeoutSeconds).
const StepTimeoutSeconds = 120

// FirewallRules are the inbound ports a node needs open: the kubelet's
// API (logs, exec, metrics) and windows_exporter's metrics.
func FirewallRules() []wicdapi.FirewallRule {
	return []wicdapi.FirewallRule{
		{Name: wicdapi.FirewallRuleKubelet, Protocol: "TCP", Port: wicdapi.KubeletPort, Description: "kubelet API"},
		{Name: wicdapi.FirewallRuleWindowsExporter, Protocol: "TCP", Port: wicdapi.WindowsExporterPort, Description: "windows_exporter metrics"},
	}
}

// DefenderExclusions are the folders Defender must not scan: scanning
// container layers as containerd writes them slows pulls and starts, and
// can make layer operations fail.
func DefenderExclusions() []string { return []string{ContainerdRoot, ContainerdState} }

// Names of the services a plan installs (besides wicdapi.AgentServiceName).
const (
	ServiceContainerd      = "containerd"
	ServiceKubelet         = "kubelet"
	ServiceHybridOverlay   = "hybrid-overlay-node"
	ServiceKubeProxy       = "kube-proxy"
	ServiceCSIProxy        = "csi-proxy"
	ServiceWindowsExporter = "windows_exporter"
)

// LogPath is the log file of a service,
// C:\var\log\<service>\<service>.log: where the kubelet's node log query
// (enableSystemLogQuery) finds it on Windows.
func LogPath(service string) string {
	return LogDir(service) + `\` + service + ".log"
}

// LogDir is the folder of a service's log and its rotated predecessors.
func LogDir(service string) string {
	return wicdapi.ServiceLogRoot + `\` + service
}
