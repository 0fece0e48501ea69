package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/test/localenv"
)

// auditPolicy logs every request once, when its response is complete, at
// Metadata level (who, verb, resource; no bodies).
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
`

// auditArgs are the API server flags that write its audit log to dir,
// and the log's path.
func auditArgs(dir string) ([]string, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o644); err != nil {
		return nil, "", err
	}
	log := filepath.Join(dir, "audit.log")
	return []string{"--audit-policy-file=" + policy, "--audit-log-path=" + log, "--audit-log-maxsize=0"}, log, nil
}

// requestKey is one line of the request count: who made requests of
// which kind.
type requestKey struct {
	component, verb, resource string
}

// requestStat is how many requests of one kind there were and how long
// the API server took to answer them in all.
type requestStat struct {
	n    int
	took time.Duration
}

// requestCounts are the API requests received during a window, by
// component, verb and resource.
type requestCounts map[requestKey]*requestStat

// auditEvent is what the count reads of an audit log line.
type auditEvent struct {
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	User      struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		APIGroup    string `json:"apiGroup"`
	} `json:"objectRef"`
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
	StageTimestamp           time.Time `json:"stageTimestamp"`
}

// countRequests counts the requests of the audit log received in
// [from, to).
func countRequests(log string, from, to time.Time) (requestCounts, error) {
	f, err := os.Open(log)
	if err != nil {
		return nil, err
	}
	defer f.Close() //nolint:errcheck // read-only: Close cannot lose data
	out := requestCounts{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("parse %s: %w", log, err)
		}
		if e.RequestReceivedTimestamp.Before(from) || !e.RequestReceivedTimestamp.Before(to) {
			continue
		}
		res := "(non-resource)"
		if e.ObjectRef != nil {
			res = e.ObjectRef.Resource
			if e.ObjectRef.APIGroup != "" {
				res += "." + e.ObjectRef.APIGroup
			}
			if e.ObjectRef.Subresource != "" {
				res += "/" + e.ObjectRef.Subresource
			}
		}
		k := requestKey{component: requestComponent(e.User.Username, e.UserAgent), verb: e.Verb, resource: res}
		st := out[k]
		if st == nil {
			st = &requestStat{}
			out[k] = st
		}
		st.n++
		st.took += e.StageTimestamp.Sub(e.RequestReceivedTimestamp)
	}
	return out, sc.Err()
}

// requestComponent names who made a request: the hosts' kubelets by
// their bootstrap identity, kube-controller-manager's controllers by
// their service accounts, everyone else (the operator and the bench,
// both the cluster admin) by the program in their user agent.
func requestComponent(user, agent string) string {
	program, _, _ := strings.Cut(agent, "/")
	switch {
	case strings.HasPrefix(user, bootstrap.Username(localenv.Namespace, bootstrap.NamePrefix)):
		return "kubelets (bootstrap identities)"
	case program == "kube-controller-manager":
		return "kube-controller-manager " + strings.TrimPrefix(user, "system:serviceaccount:kube-system:")
	case program == "":
		return user
	}
	return program
}

// per lists the counts divided by n (of what: "CSR", "host"), most
// first, with the API server's mean time to answer (watches last until
// they end).
func (c requestCounts) per(n int, what string) string {
	keys := make([]requestKey, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b requestKey) int {
		if d := c[b].n - c[a].n; d != 0 {
			return d
		}
		return strings.Compare(a.component+a.verb+a.resource, b.component+b.verb+b.resource)
	})
	t := &table{head: []string{"component", "verb", "resource", "requests", "per " + what, "mean time to answer"}}
	total := 0
	for _, k := range keys {
		st := c[k]
		total += st.n
		t.add(k.component, k.verb, k.resource, strconv.Itoa(st.n), fmt.Sprintf("%.2f", float64(st.n)/float64(n)),
			fmtDur(st.took/time.Duration(st.n)))
	}
	t.add("all", "", "", strconv.Itoa(total), fmt.Sprintf("%.2f", float64(total)/float64(n)), "")
	return t.String()
}

// cpuTicks is a process's user plus system CPU time from /proc/<pid>/stat,
// in clock ticks (USER_HZ, 100 a second on Linux).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %q %q", pid, fields[11], fields[12])
	}
	return u + st, nil
}

// cpuSnapshot is the CPU time of named processes.
type cpuSnapshot map[string]int64

func takeCPU(pids map[string]int) cpuSnapshot {
	out := cpuSnapshot{}
	for name, pid := range pids {
		if t, err := cpuTicks(pid); err == nil {
			out[name] = t
		}
	}
	return out
}

// since is the CPU time each process used from before to s, in seconds
// (a process missing from before, whose time could not be read then, is
// left out), by name.
func (s cpuSnapshot) since(before cpuSnapshot) string {
	used := s.minus(before)
	names := slices.Sorted(maps.Keys(used))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.2fs", n, used[n]))
	}
	return strings.Join(parts, ", ")
}

// minus is the CPU time each process used from before to s, in seconds,
// without a process missing from before (as since).
func (s cpuSnapshot) minus(before cpuSnapshot) map[string]float64 {
	out := make(map[string]float64, len(s))
	for n, t := range s {
		if b, ok := before[n]; ok {
			out[n] = float64(t-b) / 100
		}
	}
	return out
}

// fmtCPU lists each process's CPU time, largest first, then the sum and
// its share of what cores could give in wall: "simulated hosts 26.7s,
// operator 12.2s, ...; 48.0s in all in 26.8s on 2 cores (89% of the
// machine)".
func fmtCPU(cpu map[string]float64, wall time.Duration, cores int) string {
	if len(cpu) == 0 {
		return "not read"
	}
	names := make([]string, 0, len(cpu))
	sum := 0.0
	for n, v := range cpu {
		names = append(names, n)
		sum += v
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(cpu[b], cpu[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %.1fs", n, cpu[n]))
	}
	return fmt.Sprintf("%s; %.1fs in all in %s on %d cores (%.0f%% of the machine)", strings.Join(parts, ", "), sum, fmtDur(wall), cores, 100*machineShare(sum, wall, cores))
}

// machineShare is the share of what cores could give in wall that
// seconds of CPU time are: near 1, the work was bound by the machine's
// CPU. 0 without wall time or cores.
func machineShare(seconds float64, wall time.Duration, cores int) float64 {
	if wall <= 0 || cores <= 0 {
		return 0
	}
	return seconds / (wall.Seconds() * float64(cores))
}

// busy is the CPU time all the processes used from before to s, in
// seconds (as since, without a process missing from before), and its
// share of what the machine's cores could give in wall: near 1, the
// burst was bound by the machine's CPU.
func (s cpuSnapshot) busy(before cpuSnapshot, wall time.Duration, cores int) (seconds, share float64) {
	for _, v := range s.minus(before) {
		seconds += v
	}
	return seconds, machineShare(seconds, wall, cores)
}
