/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// copies are the payload files the plan places outside the versioned
// payload directory: the runhcs shim and the CNI plugins, which run
// outside the services (per pod) and must not move with each version.
func copies(m *payload.Manifest) []wicdapi.Copy {
	out := []wicdapi.Copy{{From: m.HostPath(payload.ContainerdShimPath), To: ContainerdShimPath}}
	for _, f := range m.ComponentFiles(payload.ComponentCNI) {
		out = append(out, wicdapi.Copy{From: m.HostPath(f.Path), To: CNIBinDir + `\` + path.Base(f.Path)})
	}
	return out
}

// Render returns the plan for one host. It validates the inputs first;
// the error then wraps ErrInvalidInputs and lists every problem, and
// never holds the bootstrap token. Render does no I/O, and the same inputs
// always give the same plan.
func Render(in Inputs) (*wicdapi.Plan, error) {
	r, err := resolve(in)
	if err != nil {
		return nil, err
	}

	plan := &wicdapi.Plan{
		SchemaVersion:      wicdapi.SchemaVersion,
		PayloadVersion:     r.payload.Version,
		NodeName:           r.nodeName,
		Copies:             copies(r.payload),
		FirewallRules:      FirewallRules(),
		DefenderExclusions: DefenderExclusions(),
		StepTimeoutSeconds: StepTimeoutSeconds,
	}

	dirs := []string{
		wicdapi.InstallRoot,
		wicdapi.ServiceLogRoot,
		CNIDir,
		CNIConfigDir,
		ContainerdDir,
		ContainerdHostsDir,
		KubeletDir,
		KubeletPKIDir,
	}

	kubeletConf, err := renderKubeletConfig(r)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", KubeletConfigPath, err)
	}
	bootstrap, err := renderBootstrapKubeconfig(r)
	if err != nil {
		// Never wrap the marshal error: it could quote the content.
		return nil, fmt.Errorf("render %s: cannot encode the kubeconfig", BootstrapKubeconfigPath)
	}
	files := []wicdapi.File{
		{Path: KubeletConfigPath, Content: kubeletConf},
		{Path: CACertPath, Content: r.caPEM},
		{Path: KubeletClientCAPath, Content: r.clientCAPEM},
		{Path: BootstrapKubeconfigPath, Content: bootstrap, Sensitive: true},
		{Path: ContainerdConfigPath, Content: renderContainerdConfig(r)},
	}
	for _, m := range r.mirrors {
		dir := ContainerdHostsDir + `\` + m.dir
		dirs = append(dirs, dir)
		files = append(files, wicdapi.File{Path: dir + `\hosts.toml`, Content: renderHostsTOML(m)})
	}
	if t := r.exporterTLS; t != nil {
		dirs = append(dirs, WindowsExporterDir)
		files = append(files,
			wicdapi.File{Path: WindowsExporterWebConfigPath, Content: renderExporterWebConfig(t)},
			wicdapi.File{Path: WindowsExporterCertPath, Content: t.CertPEM},
			wicdapi.File{Path: WindowsExporterKeyPath, Content: t.KeyPEM, Sensitive: true},
		)
	}
	if len(r.trustedRoots) > 0 {
		plan.TrustedRootCertificates = slices.Clone(r.trustedRoots)
	}

	if r.ovn() {
		// hybrid-overlay creates the base network first; removing the
		// overlay first keeps the order HNS needs.
		plan.Networks = []string{HybridOverlayNetwork, BaseHybridOverlayNetwork}
		hoKubeconfig, err := renderHybridOverlayKubeconfig(r)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", HybridOverlayKubeconfigPath, err)
		}
		dirs = append(dirs, HybridOverlayDir)
		files = append(files, wicdapi.File{Path: HybridOverlayKubeconfigPath, Content: hoKubeconfig})
		if r.hostSubnet.IsValid() {
			cni, err := renderCNIConfig(r)
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", CNIConfigPath, err)
			}
			proxy, err := renderKubeProxyConfig(r)
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", KubeProxyConfigPath, err)
			}
			files = append(files,
				wicdapi.File{Path: CNIConfigPath, Content: cni},
				wicdapi.File{Path: KubeProxyConfigPath, Content: proxy},
			)
		}
	}

	if r.flannel != nil && r.hostSubnet.IsValid() {
		ext := flannelHostNetwork(r)
		plan.HostNetworks = []wicdapi.HostNetwork{ext}
		// flannel's network sits on the External network's switch:
		// removed first.
		plan.Networks = []string{r.flannel.network(), ext.Name}
		netConf, err := renderFlannelNetConf(r)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", FlannelNetConfPath, err)
		}
		cni, err := renderFlannelCNIConfig(r)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", CNIConfigPath, err)
		}
		proxy, err := renderFlannelKubeProxyConfig(r)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", KubeProxyConfigPath, err)
		}
		dirs = append(dirs, FlannelDir)
		files = append(files,
			wicdapi.File{Path: FlannelNetConfPath, Content: netConf},
			wicdapi.File{Path: CNIConfigPath, Content: cni},
			wicdapi.File{Path: KubeProxyConfigPath, Content: proxy},
		)
	}

	var hosted []hostedService
	plan.Services, hosted = services(r)
	for _, h := range hosted {
		cfg, err := marshal(h.cfg)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", wicdapi.ServiceHostConfigPath(h.name), err)
		}
		dirs = append(dirs, wicdapi.ServiceHostDir)
		files = append(files, wicdapi.File{Path: wicdapi.ServiceHostConfigPath(h.name), Content: cfg})
	}
	plan.LogRetention = logRetention(plan.Services, hosted, r.spec.LogRotation)
	for _, svc := range plan.Services {
		// A folder of logs for each service that logs to LogPath.
		if logsToLogPath(svc, hosted) {
			dirs = append(dirs, LogDir(svc.Name))
		}
	}
	// Lexical order puts every directory after its parent.
	slices.Sort(dirs)
	plan.Directories = slices.Compact(dirs)
	slices.SortFunc(files, func(a, b wicdapi.File) int { return strings.Compare(a.Path, b.Path) })
	plan.Files = files
	return plan, nil
}

// logsToLogPath reports whether a service's program writes its log to
// LogPath(its name): one of its arguments, or under the service host its
// program's, ends with it.
func logsToLogPath(svc wicdapi.Service, hosted []hostedService) bool {
	args := svc.Args
	for _, h := range hosted {
		if h.name == svc.Name {
			args = append(slices.Clone(args), h.cfg.Args...)
		}
	}
	return slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, LogPath(svc.Name)) })
}

// marshal encodes v as indented JSON ending with a newline, map keys
// sorted.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
