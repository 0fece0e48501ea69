/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"slices"
	"strings"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Component is a piece of node software the payload ships.
type Component string

// The components of a payload.
const (
	ComponentKubelet         Component = "kubelet"
	ComponentKubeProxy       Component = "kube-proxy"
	ComponentContainerd      Component = "containerd"
	ComponentCNI             Component = "cni"
	ComponentHybridOverlay   Component = "hybrid-overlay"
	ComponentCSIProxy        Component = "csi-proxy"
	ComponentWindowsExporter Component = "windows-exporter"
	ComponentKubeLogRunner   Component = "kube-log-runner"
	ComponentWICD            Component = "wicd"
	// ComponentFlannel is flanneld, which only hosts of network type
	// Flannel run: a payload may leave it out (see OptionalFiles).
	ComponentFlannel Component = "flannel"
)

// Paths, relative to the payload directory, of the files every payload
// holds.
const (
	KubeletPath         = "kubelet.exe"
	KubeProxyPath       = "kube-proxy.exe"
	ContainerdPath      = "containerd.exe"
	ContainerdShimPath  = "containerd-shim-runhcs-v1.exe"
	CNIWinOverlayPath   = "cni/win-overlay.exe"
	CNIHostLocalPath    = "cni/host-local.exe"
	HybridOverlayPath   = "hybrid-overlay-node.exe"
	CSIProxyPath        = "csi-proxy.exe"
	WindowsExporterPath = "windows_exporter.exe"
	KubeLogRunnerPath   = "kube-log-runner.exe"
	WICDPath            = "wicd.exe"
	// CNIWinBridgePath is the win-bridge CNI plugin (flannel's host-gw
	// backend); an extra CNI plugin, not a required file.
	CNIWinBridgePath = "cni/win-bridge.exe"
	// FlanneldPath is flanneld (ComponentFlannel), an optional file.
	FlanneldPath = "flanneld.exe"
)

// CNIDir is the payload directory holding the CNI plugins. A payload may
// ship CNI plugins beyond the required ones, all under this directory.
const CNIDir = "cni"

// requiredFiles maps each component to the files every payload must hold
// for it, sorted.
var requiredFiles = map[Component][]string{
	ComponentKubelet:         {KubeletPath},
	ComponentKubeProxy:       {KubeProxyPath},
	ComponentContainerd:      {ContainerdShimPath, ContainerdPath},
	ComponentCNI:             {CNIHostLocalPath, CNIWinOverlayPath},
	ComponentHybridOverlay:   {HybridOverlayPath},
	ComponentCSIProxy:        {CSIProxyPath},
	ComponentWindowsExporter: {WindowsExporterPath},
	ComponentKubeLogRunner:   {KubeLogRunnerPath},
	ComponentWICD:            {WICDPath},
}

// optionalFiles maps the components a payload may leave out to their
// files: a payload built before the component existed still loads, and
// what needs the file (a plan for network type Flannel) checks for it.
var optionalFiles = map[Component][]string{
	ComponentFlannel: {FlanneldPath},
}

// Components returns every known component, sorted by name.
func Components() []Component {
	out := make([]Component, 0, len(requiredFiles)+len(optionalFiles))
	for c := range requiredFiles {
		out = append(out, c)
	}
	for c := range optionalFiles {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Known reports whether c is one of the components above.
func (c Component) Known() bool {
	_, ok := requiredFiles[c]
	_, optional := optionalFiles[c]
	return ok || optional
}

// OptionalFiles returns the paths a payload may hold for component c,
// sorted; nil for a component without optional files.
func OptionalFiles(c Component) []string {
	return slices.Clone(optionalFiles[c])
}

// RequiredFiles returns the paths every payload holds for component c,
// sorted; nil for an unknown component.
func RequiredFiles(c Component) []string {
	return slices.Clone(requiredFiles[c])
}

// ComponentOf returns the component a payload path belongs to by the
// layout above: the required files by name, anything else under cni/ to
// the CNI plugins. ok is false for a path no component owns.
func ComponentOf(path string) (c Component, ok bool) {
	lower := strings.ToLower(path)
	for _, m := range []map[Component][]string{requiredFiles, optionalFiles} {
		for comp, files := range m {
			if slices.Contains(files, lower) {
				return comp, true
			}
		}
	}
	if strings.HasPrefix(lower, CNIDir+"/") {
		return ComponentCNI, true
	}
	return "", false
}

// HostDir is the directory on a host that holds payload version.
// The version must be valid (see [ValidateVersion]).
func HostDir(version string) string {
	return wicdapi.PayloadRoot + `\` + version
}

// HostPath is where the payload file at path (relative, forward slashes)
// of payload version lives on a host:
// C:\k\payload\<version>\<path with backslashes>.
func HostPath(version, path string) string {
	return HostDir(version) + `\` + strings.ReplaceAll(path, "/", `\`)
}
