package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/localenv"
)

// startOperator runs bin against the cluster (the CSR and memory phases,
// without simulated hosts) and waits until its readiness probe answers.
func startOperator(ctx context.Context, bin string, c *localcluster.Cluster, dir, payloadDir string, args ...string) (*localenv.Operator, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("operator-%d.log", time.Now().UnixNano()))
	return localenv.StartOperator(ctx, bin, c, payloadDir, logPath, 90*time.Second, args...)
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
	defer f.Close() //nolint:errcheck // read-only: Close cannot lose data
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
