/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Recovery of every service: restart a few seconds after a failure.
const (
	RestartDelaySeconds = 5
	ResetPeriodSeconds  = 600
)

// windowsExporterCollectors are the metrics windows_exporter serves.
const windowsExporterCollectors = "container,cpu,cpu_info,logical_disk,memory,net,os,service,system"

// service is a service before it becomes a wicdapi.Service.
type service struct {
	name, displayName, description string
	// binary is the program's path on the host.
	binary string
	args   []string
	deps   []string
	// logRunner: run under kube-log-runner, logging to LogPath(name).
	// Only for programs that register with the service control manager
	// whatever their parent process is (see the package documentation).
	logRunner bool
	// proxy: the service gets the proxy environment.
	proxy bool
	// env is the service's own environment (the proxy's is added).
	env map[string]string
	// networks are HNS networks that must exist before it starts.
	networks []string
	// serviceHost: the program is no Windows service (it never connects
	// to the service control manager, which would fail its start with
	// error 1053): the service runs the payload's wicd.exe as its service
	// host, and the program's command line (under kube-log-runner when
	// logRunner) goes into wicdapi.ServiceHostConfigPath(name).
	serviceHost bool
}

// hostedService is the service host configuration of one service.
type hostedService struct {
	name string
	cfg  wicdapi.ServiceHostConfig
}

// services returns the plan's services, sorted by dependency depth, then
// name, and the programs of those that run under the service host.
func services(r *resolved) ([]wicdapi.Service, []hostedService) {
	bin := r.payload.HostPath
	list := []service{
		{
			name:        ServiceContainerd,
			displayName: "containerd",
			description: "Container runtime for Kubernetes pods.",
			binary:      bin(payload.ContainerdPath),
			// containerd registers with the service control manager only
			// when its parent is services.exe, and with --run-service its
			// output goes to --log-file or nowhere: no kube-log-runner.
			proxy: true,
			args: []string{
				"--config=" + ContainerdConfigPath,
				"--log-file=" + LogPath(ServiceContainerd),
				"--log-level=info",
				"--run-service",
			},
		},
		{
			name:        ServiceKubelet,
			displayName: "Kubernetes kubelet",
			description: "Kubernetes node agent: registers the node and runs its pods.",
			binary:      bin(payload.KubeletPath),
			args:        kubeletArgs(r),
			deps:        []string{ServiceContainerd},
			logRunner:   true,
			proxy:       true,
		},
		{
			name:        ServiceCSIProxy,
			displayName: "CSI Proxy",
			description: "Lets containerized CSI node plugins manage disks and volumes of the host.",
			binary:      bin(payload.CSIProxyPath),
			args:        []string{"-windows-service", "-v=2"},
			logRunner:   true,
		},
		{
			name:        ServiceWindowsExporter,
			displayName: "windows_exporter",
			description: "Prometheus metrics of the Windows host.",
			binary:      bin(payload.WindowsExporterPath),
			// windows_exporter too decides that it runs as a service by
			// its parent process: no kube-log-runner.
			args: windowsExporterArgs(r),
		},
		{
			name:        wicdapi.AgentServiceName,
			displayName: "Windows Instance Config Daemon",
			description: "Keeps the node's configuration and services as the Windows Machine Config Operator planned them.",
			// The agent is not in the versioned payload directory, and it
			// switches payload versions, so it does not run from one:
			// neither from its own nor under kube-log-runner. It writes its
			// own log.
			binary: wicdapi.AgentPath,
			args:   []string{"run"},
		},
	}
	if r.ovn() {
		list = append(list, service{
			name:        ServiceHybridOverlay,
			displayName: "OVN-Kubernetes hybrid overlay",
			description: "Creates the node's overlay network to the OVN-Kubernetes cluster network.",
			binary:      bin(payload.HybridOverlayPath),
			args: []string{
				"--node", r.nodeName,
				"--k8s-kubeconfig", HybridOverlayKubeconfigPath,
				"--hybrid-overlay-vxlan-port", strconv.Itoa(int(r.vxlanPort)),
				"--windows-service",
			},
			deps:      []string{ServiceKubelet},
			logRunner: true,
		})
		if r.hostSubnet.IsValid() {
			list = append(list, service{
				name:        ServiceKubeProxy,
				displayName: "Kubernetes kube-proxy",
				description: "Kubernetes network proxy: load-balances service traffic on the host.",
				binary:      bin(payload.KubeProxyPath),
				args:        []string{"--config=" + KubeProxyConfigPath, "--windows-service"},
				deps:        []string{ServiceHybridOverlay, ServiceKubelet},
				networks:    []string{HybridOverlayNetwork},
				logRunner:   true,
			})
		}
	}

	if r.flannel != nil && r.hostSubnet.IsValid() {
		list = append(list, flanneldService(r), service{
			name:        ServiceKubeProxy,
			displayName: "Kubernetes kube-proxy",
			description: "Kubernetes network proxy: load-balances service traffic on the host.",
			binary:      bin(payload.KubeProxyPath),
			args:        []string{"--config=" + KubeProxyConfigPath, "--windows-service"},
			deps:        []string{ServiceFlanneld, ServiceKubelet},
			networks:    []string{r.flannel.network()},
			logRunner:   true,
		})
	}

	runner := bin(payload.KubeLogRunnerPath)
	out := make([]wicdapi.Service, 0, len(list))
	var hosted []hostedService
	for _, s := range sortServices(list) {
		ws := wicdapi.Service{
			Name:         s.name,
			DisplayName:  s.displayName,
			Description:  s.description,
			Binary:       s.binary,
			Args:         slices.Clone(s.args),
			Dependencies: slices.Clone(s.deps),
			StartType:    wicdapi.StartAutomatic,
			Recovery: wicdapi.Recovery{
				RestartDelaySeconds: RestartDelaySeconds,
				ResetPeriodSeconds:  ResetPeriodSeconds,
			},
		}
		if s.proxy && r.proxy != nil {
			ws.Env = maps.Clone(r.proxy.env)
			ws.SensitiveEnv = r.proxy.sensitive
		}
		if len(s.env) > 0 {
			if ws.Env == nil {
				ws.Env = map[string]string{}
			}
			maps.Copy(ws.Env, s.env)
		}
		ws.RequiresNetworks = slices.Clone(s.networks)
		slices.Sort(ws.Dependencies)
		if s.logRunner {
			ws.Binary = runner
			ws.Args = append(LogRunnerArgs(LogPath(s.name), r.spec.LogRotation), s.binary)
			ws.Args = append(ws.Args, s.args...)
		}
		if s.serviceHost {
			hosted = append(hosted, hostedService{name: s.name, cfg: wicdapi.ServiceHostConfig{Binary: ws.Binary, Args: ws.Args}})
			// The payload's copy of the agent, not wicdapi.AgentPath:
			// a running service would pin the agent's binary, which
			// the agent replaces when it upgrades itself.
			ws.Binary, ws.Args = bin(payload.WICDPath), wicdapi.ServiceHostArgs(s.name)
		}
		out = append(out, ws)
	}
	return out, hosted
}

// windowsExporterArgs are windows_exporter's arguments; with a serving
// certificate its web configuration too, whose change (it names the
// certificate's digest) restarts it and nothing else.
func windowsExporterArgs(r *resolved) []string {
	args := []string{
		"--collectors.enabled=" + windowsExporterCollectors,
		"--log.file=" + LogPath(ServiceWindowsExporter),
	}
	if r.exporterTLS != nil {
		args = append(args, "--web.config.file="+WindowsExporterWebConfigPath)
	}
	return args
}

// renderExporterWebConfig is windows_exporter's exporter-toolkit web
// configuration: TLS with the plan's certificate and key. It names the
// certificate's SHA-256 (a new key always comes with a new certificate),
// so that a new certificate changes the file the service's arguments
// name, which restarts the service (the toolkit also reads the files
// again at each connection).
func renderExporterWebConfig(t *ExporterTLS) []byte {
	return fmt.Appendf(nil, `# windows_exporter web configuration (prometheus/exporter-toolkit),
# written by the Windows Machine Config Operator.
# Certificate SHA-256: %x
tls_server_config:
  cert_file: '%s'
  key_file: '%s'
  min_version: TLS12
`, sha256.Sum256(t.CertPEM), WindowsExporterCertPath, WindowsExporterKeyPath)
}

// sortServices orders services by dependency depth (services without
// dependencies first), then by name. Dependencies must exist and form no
// cycle; the service list is fixed, so a violation is a bug.
func sortServices(list []service) []service {
	byName := make(map[string]service, len(list))
	for _, s := range list {
		byName[s.name] = s
	}
	depth := map[string]int{}
	var visit func(name string, path []string) int
	visit = func(name string, path []string) int {
		if d, ok := depth[name]; ok {
			return d
		}
		if slices.Contains(path, name) {
			panic(fmt.Sprintf("nodeconfig: service dependency cycle: %s", strings.Join(append(path, name), " -> ")))
		}
		s, ok := byName[name]
		if !ok {
			panic(fmt.Sprintf("nodeconfig: service %s depends on unknown service %s", path[len(path)-1], name))
		}
		d := 0
		for _, dep := range s.deps {
			d = max(d, visit(dep, append(path, name))+1)
		}
		depth[name] = d
		return d
	}
	out := slices.Clone(list)
	for _, s := range out {
		visit(s.name, nil)
	}
	slices.SortFunc(out, func(a, b service) int {
		if c := depth[a.name] - depth[b.name]; c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}
