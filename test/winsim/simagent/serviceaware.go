package simagent

import (
	"fmt"
	"slices"
	"strings"

	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// serviceAware tells, by the lower-case base name of a program, whether
// it connects to the service control manager (StartServiceCtrlDispatcher,
// golang.org/x/sys/windows/svc.Run) when a service runs it with args;
// wrapped is true when kube-log-runner started it, so that its parent is
// not services.exe. Windows gives a service's process 30 s to connect and
// report running, then fails the start with ERROR_SERVICE_REQUEST_TIMEOUT
// (1053) and kills it; the simulator fails the start at once.
//
// The facts, from each program's source at the payload's versions:
//   - kubelet, kube-proxy (k8s.io/kubernetes pkg/windows/service) and
//     hybrid-overlay-node (its own copy) call svc.Run with
//     --windows-service, whatever their parent; csi-proxy with
//     -windows-service.
//   - containerd calls svc.Run with --run-service only when
//     svc.IsWindowsService says its parent is the service manager;
//     windows_exporter whenever IsWindowsService says so: neither works
//     under kube-log-runner.
//   - wicd: `run` when its parent is the service manager (or with
//     --service), and `service-host` always.
//   - flanneld (flannel v0.28) has no Windows service code at all, and
//     kube-log-runner only relays to the program it runs.
//
// A program the table does not name (a test's stand-in binary, such as
// "kubelet-like.exe") is taken to be a service program.
var serviceAware = map[string]func(args []string, wrapped bool) bool{
	"kubelet.exe":             func(args []string, _ bool) bool { return hasFlag(args, "--windows-service") },
	"kube-proxy.exe":          func(args []string, _ bool) bool { return hasFlag(args, "--windows-service") },
	"hybrid-overlay-node.exe": func(args []string, _ bool) bool { return hasFlag(args, "--windows-service") },
	"csi-proxy.exe": func(args []string, _ bool) bool {
		return hasFlag(args, "-windows-service") || hasFlag(args, "--windows-service")
	},
	"containerd.exe":       func(args []string, wrapped bool) bool { return !wrapped && hasFlag(args, "--run-service") },
	"windows_exporter.exe": func(_ []string, wrapped bool) bool { return !wrapped },
	"wicd.exe": func(args []string, wrapped bool) bool {
		switch {
		case len(args) == 0:
			return false
		case args[0] == wicdapi.ServiceHostArg:
			return true
		default:
			return args[0] == "run" && !wrapped
		}
	},
	"flanneld.exe":        func([]string, bool) bool { return false },
	"kube-log-runner.exe": func([]string, bool) bool { return false },
}

// ServiceAware reports whether a service started with binary and args
// connects to the service control manager (see serviceAware); wrapped
// tells that kube-log-runner started it.
func ServiceAware(binary string, args []string, wrapped bool) bool {
	aware, ok := serviceAware[strings.ToLower(baseName(binary))]
	return !ok || aware(args, wrapped)
}

// serviceCommand is what starting a service runs.
type serviceCommand struct {
	// binary and args of the program really run (for kube-log-runner and
	// the service host, the program they run).
	binary string
	args   []string
	// images are the executables the service's processes hold: the
	// service's binary, the service host's program, the program.
	images []string
	// runnerArgs are kube-log-runner's arguments when it runs.
	runnerArgs []string
	// hostErr is why the service host ends at once (its configuration).
	hostErr error
}

// serviceCommand resolves what a service runs: through the service host
// (reading its configuration from the disk, as wicd service-host does) and
// kube-log-runner. notAware is set when the process that must connect to
// the service control manager does not.
func (m *ServiceManager) serviceCommand(cfg wicdapi.Service) (c serviceCommand, notAware string) {
	c.images = []string{cfg.Binary}
	outer := cfg
	if wicdapi.IsServiceHost(cfg) {
		hc, err := wicd.ReadServiceHostConfig(diskFiles{m.host.Disk()}, cfg.Name)
		if err != nil {
			c.hostErr = err
			return c, ""
		}
		// The service host connects to the service manager itself.
		outer = wicdapi.Service{Binary: hc.Binary, Args: hc.Args}
		c.images = append(c.images, hc.Binary)
	}
	c.binary, c.args = nodeconfig.Command(outer)
	wrapped := nodeconfig.IsLogRunner(outer.Binary)
	if wrapped {
		c.runnerArgs = outer.Args
	}
	c.images = slices.Compact(append(c.images, c.binary))
	if !wicdapi.IsServiceHost(cfg) && !ServiceAware(c.binary, c.args, wrapped) {
		if wrapped {
			notAware = fmt.Sprintf("%s (under kube-log-runner)", baseName(c.binary))
		} else {
			notAware = baseName(c.binary)
		}
	}
	return c, notAware
}
