package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
)

// operatorProc is an operator process the benchmark starts itself, on a
// control plane without simulated hosts (the CSR and memory phases), with
// the flags test/localenv gives it.
type operatorProc struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

// startOperator runs bin against the cluster and waits until its readiness
// probe answers.
func startOperator(ctx context.Context, bin string, c *localcluster.Cluster, dir, payloadDir string) (*operatorProc, error) {
	ports, err := proc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	probeAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	args := []string{
		"--kubeconfig=" + c.KubeconfigPath,
		"--namespace=" + localenv.Namespace,
		"--payload-dir=" + payloadDir,
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(ports[0]), "--metrics-secure=false",
		"--health-probe-bind-address=" + probeAddr,
		"--service-cidr=" + localcluster.ServiceCIDR,
		"--cluster-cidr=" + localcluster.ClusterCIDR,
		"--cluster-dns=" + localenv.DNSIP,
	}
	logPath := filepath.Join(dir, fmt.Sprintf("operator-%d.log", time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	o := &operatorProc{cmd: exec.Command(bin, args...), done: make(chan error, 1), log: logPath}
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	proc.Detach(o.cmd)
	if err := o.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start operator: %w", err)
	}
	go func() {
		o.done <- o.cmd.Wait()
		_ = logFile.Close()
	}()
	deadline := time.Now().Add(90 * time.Second)
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
			return nil, fmt.Errorf("operator exited during start-up (%v):\n%s", err, proc.TailFile(logPath, 30))
		case <-ctx.Done():
			o.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			o.stop()
			return nil, errors.New("operator not ready within 90s; see " + logPath)
		}
	}
}

// pid is the process ID, 0 once the process has ended.
func (o *operatorProc) pid() int {
	select {
	case err := <-o.done:
		o.done <- err
		return 0
	default:
		return o.cmd.Process.Pid
	}
}

// stop ends the process (SIGTERM, then SIGKILL after 15s).
func (o *operatorProc) stop() {
	if o.pid() == 0 {
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

// memStatus is a process's resident memory from /proc/<pid>/status.
type memStatus struct {
	// HWM is VmHWM, the peak resident set size; RSS is VmRSS, the current
	// one. Both in bytes.
	HWM, RSS int64
}

func readMemStatus(pid int) (memStatus, error) {
	if pid == 0 {
		return memStatus{}, errors.New("process not running")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	defer f.Close()
	var m memStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmHWM":
			dst = &m.HWM
		case "VmRSS":
			dst = &m.RSS
		default:
			continue
		}
		fields := strings.Fields(v) // "12345 kB"
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("parse %s of /proc/%d/status: %w", k, pid, err)
		}
		*dst = n << 10
	}
	if err := sc.Err(); err != nil {
		return memStatus{}, err
	}
	if m.HWM == 0 {
		return memStatus{}, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return m, nil
}
