package localenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/proc"
)

// Operator is the operator binary running as its own process against a
// local cluster, with plain-HTTP metrics and probes on loopback.
type Operator struct {
	// MetricsURL serves its Prometheus metrics.
	MetricsURL string
	// Log is its log file.
	Log  string
	cmd  *exec.Cmd
	done chan error
	// finished is closed when the process has ended, with exitErr set.
	finished chan struct{}
	exitErr  error
}

// StartOperator runs bin against the cluster as its admin, in Namespace,
// with the flags a local run needs (plus extra), logging to logPath, and
// waits up to readyWithin for its readiness probe.
func StartOperator(ctx context.Context, bin string, c *localcluster.Cluster, payloadDir, logPath string, readyWithin time.Duration, extra ...string) (*Operator, error) {
	return StartOperatorAs(ctx, bin, c.KubeconfigPath, Namespace, payloadDir, logPath, readyWithin, extra...)
}

// StartOperatorAs is StartOperator authenticated by kubeconfig (e.g. a
// ServiceAccount token) in namespace.
func StartOperatorAs(ctx context.Context, bin, kubeconfig, namespace, payloadDir, logPath string, readyWithin time.Duration, extra ...string) (*Operator, error) {
	ports, err := proc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(ports[0])
	probeAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--namespace=" + namespace,
		"--payload-dir=" + payloadDir,
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=" + probeAddr,
		"--service-cidr=" + localcluster.ServiceCIDR,
		"--cluster-cidr=" + localcluster.ClusterCIDR,
		"--cluster-dns=" + DNSIP,
	}, extra...)
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	o := &Operator{MetricsURL: "http://" + metricsAddr + "/metrics", Log: logPath, cmd: exec.Command(bin, args...), done: make(chan error, 1), finished: make(chan struct{})}
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	proc.Detach(o.cmd)
	if err := o.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start operator: %w", err)
	}
	go func() {
		err := o.cmd.Wait()
		o.exitErr = err
		close(o.finished)
		o.done <- err
		_ = logFile.Close()
	}()
	deadline := time.Now().Add(readyWithin)
	for {
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o, nil
			}
		}
		select {
		case err := <-o.done:
			o.done <- err
			return nil, fmt.Errorf("operator exited during start-up (%w):\n%s", err, proc.TailFile(logPath, 30))
		case <-ctx.Done():
			o.Stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			o.Stop()
			return nil, fmt.Errorf("operator not ready within %s; see %s", readyWithin, logPath)
		}
	}
}

// exited is closed once the process has ended.
func (o *Operator) exited() <-chan struct{} { return o.finished }

// ExitErr is how the process ended (nil while it runs, or after a clean
// exit).
func (o *Operator) ExitErr() error {
	select {
	case <-o.finished:
		return o.exitErr
	default:
		return nil
	}
}

// Args is the operator's command line, for display.
func (o *Operator) Args() string { return strings.Join(o.cmd.Args, " ") }

// Exited reports whether the process has ended.
func (o *Operator) Exited() bool {
	select {
	case err := <-o.done:
		o.done <- err
		return true
	default:
		return false
	}
}

// PID is the process ID, 0 once the process has ended.
func (o *Operator) PID() int {
	if o.Exited() {
		return 0
	}
	return o.cmd.Process.Pid
}

// Stop ends the process: SIGTERM, then SIGKILL after 15 s.
func (o *Operator) Stop() {
	if o.Exited() {
		return
	}
	proc.Terminate(o.cmd)
	select {
	case err := <-o.done:
		o.done <- err
	case <-time.After(15 * time.Second):
		proc.Kill(o.cmd)
		err := <-o.done
		o.done <- err
	}
}

// Kill ends the process with SIGKILL, as an OOM kill or a node failure
// would: no deferred work runs, no lease is released. It returns once the
// process is gone.
func (o *Operator) Kill() {
	if o.Exited() {
		return
	}
	proc.Kill(o.cmd)
	err := <-o.done
	o.done <- err
}
