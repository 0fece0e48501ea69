package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
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
	return startOperatorAs(ctx, bin, c.KubeconfigPath, dir, payloadDir, args...)
}

// operatorServiceAccount is the name of the operator's ServiceAccount, as
// config/rbac names it.
const operatorServiceAccount = "wmco"

// startOperatorAs is startOperator authenticated by kubeconfig.
func startOperatorAs(ctx context.Context, bin, kubeconfig, dir, payloadDir string, args ...string) (*localenv.Operator, error) {
	logPath := filepath.Join(dir, fmt.Sprintf("operator-%d.log", time.Now().UnixNano()))
	return localenv.StartOperatorAs(ctx, bin, kubeconfig, localenv.Namespace, payloadDir, logPath, 90*time.Second, args...)
}

// memStatus is a process's resident memory from /proc/<pid>/status.
type memStatus struct {
	// HWM is VmHWM, the peak resident set size; RSS is VmRSS, the current
	// one; Anon and File are RssAnon and RssFile, the parts of RSS that
	// are anonymous (the Go runtime's heap, stacks and metadata) and
	// file-backed (the binary's mapped pages). All in bytes.
	HWM, RSS, Anon, File int64
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
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
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

// goMem is the Go runtime's view of the operator's memory, from the
// go_memstats_* series of its metrics endpoint (bytes).
type goMem struct {
	// HeapAlloc is the heap's allocated objects (live and not yet swept);
	// HeapInuse the spans holding them; NextGC the heap size at which the
	// next collection ends; Stacks the goroutine stacks; Retained what
	// the runtime holds from the OS (Sys minus HeapReleased).
	HeapAlloc, HeapInuse, NextGC, Stacks, Retained int64
}

// readGoMem scrapes url (plain-HTTP Prometheus text) for goMem.
func readGoMem(ctx context.Context, url string) (goMem, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return goMem{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return goMem{}, err
	}
	defer resp.Body.Close() //nolint:errcheck // read-only: Close cannot lose data
	if resp.StatusCode != http.StatusOK {
		return goMem{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	vals := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, "go_memstats_") {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		vals[strings.TrimPrefix(name, "go_memstats_")] = int64(f)
	}
	if err := sc.Err(); err != nil {
		return goMem{}, err
	}
	if _, ok := vals["heap_alloc_bytes"]; !ok {
		return goMem{}, fmt.Errorf("%s: no go_memstats_heap_alloc_bytes", url)
	}
	return goMem{
		HeapAlloc: vals["heap_alloc_bytes"], HeapInuse: vals["heap_inuse_bytes"], NextGC: vals["next_gc_bytes"],
		Stacks: vals["stack_inuse_bytes"], Retained: vals["sys_bytes"] - vals["heap_released_bytes"],
	}, nil
}
