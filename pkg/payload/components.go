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

// Components returns every known component, sorted by name.
func Components() []Component {
	out := make([]Component, 0, len(requiredFiles))
	for c := range requiredFiles {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// Known reports whether c is one of the components above.
func (c Component) Known() bool {
	_, ok := requiredFiles[c]
	return ok
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
	for comp, files := range requiredFiles {
		for _, f := range files {
			if lower == f {
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
