package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/localenv"
)

// hostEvent is one thing a simulated host logged (winsim's debug lines:
// connections, commands, uploads) or the benchmark saw of its Node and
// instance.
type hostEvent struct {
	at   time.Time
	msg  string
	args string // the command line or path
}

// timeline collects one host's events.
type timeline struct {
	mu     sync.Mutex
	events []hostEvent
}

func (t *timeline) add(e hostEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, e)
}

// first is the time of the first event with msg whose args contain sub.
func (t *timeline) first(msg, sub string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.events {
		if e.msg == msg && strings.Contains(e.args, sub) {
			return e.at, true
		}
	}
	return time.Time{}, false
}

// dump writes the timeline, each event with its offset from t0.
func (t *timeline) dump(w io.Writer, t0 time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.events {
		fmt.Fprintf(w, "%9.3fs  %s  %s\n", e.at.Sub(t0).Seconds(), e.msg, e.args)
	}
}

// timelineHandler is a slog.Handler that records a host's debug lines.
type timelineHandler struct{ t *timeline }

func (h timelineHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h timelineHandler) Handle(_ context.Context, r slog.Record) error {
	e := hostEvent{at: r.Time, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "command", "path", "to":
			e.args = a.Value.String()
		}
		return true
	})
	h.t.add(e)
	return nil
}

func (h timelineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h timelineHandler) WithGroup(string) slog.Handler      { return h }

// timelines are the hosts' timelines of one join run, by host name.
type timelines struct {
	mu     sync.Mutex
	byHost map[string]*timeline
}

func (ts *timelines) logger(name string) *slog.Logger {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.byHost == nil {
		ts.byHost = map[string]*timeline{}
	}
	t := &timeline{}
	ts.byHost[name] = t
	return slog.New(timelineHandler{t: t})
}

func (ts *timelines) host(name string) *timeline {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.byHost[name]
}

// Events the benchmark adds to a host's timeline.
const (
	eventNodeRegistered = "bench: Node registered"
	eventNodeReady      = "bench: Node Ready"
	eventInstanceReady  = "bench: instance Ready"
)

// phaseShare is one phase of a host's join.
type phaseShare struct {
	name     string
	duration time.Duration
}

// joinPhases splits one host's join, from t0 (the inventory written) to
// its instance's Ready condition, at the first occurrence of each
// milestone; a milestone missing from the timeline merges its phase into
// the next.
func joinPhases(t *timeline, t0 time.Time) []phaseShare {
	type milestone struct {
		phase    string // the phase that ends here
		msg, sub string
	}
	marks := []milestone{
		{"operator picks the host up, SSH connect", "Connection opened", ""},
		{"agent (upload, install or self-upgrade) and facts", "Command started", " preflight"},
		{"preflight", "Command finished", " preflight"},
		{"payload: staging on the host, upload, plan", "Command started", " apply"},
		{"apply: files, services started", "Command finished", " apply"},
		{"kubelet TLS bootstrap (CSR approved), Node registered", eventNodeRegistered, ""},
		{"Node Ready (kubelet emulator's first Ready report)", eventNodeReady, ""},
		{"labels, taints, instance Ready", eventInstanceReady, ""},
	}
	var out []phaseShare
	last := t0
	pending := ""
	for _, m := range marks {
		at, ok := t.first(m.msg, m.sub)
		name := m.phase
		if pending != "" {
			name = pending + " + " + name
		}
		if !ok || at.Before(last) {
			pending = name
			continue
		}
		pending = ""
		out = append(out, phaseShare{name: name, duration: at.Sub(last)})
		last = at
	}
	return out
}

// joinFloor is the least time a join can take under the benchmark's
// settings: the payload's bytes at the host's bandwidth, plus the service
// starts that must follow each other (the longest dependency chain of the
// applied plan's services, each start taking the simulated delay).
type joinFloor struct {
	payloadBytes int64
	transfer     time.Duration
	chain        []string
	starts       time.Duration
}

func (f joinFloor) total() time.Duration { return f.transfer + f.starts }

func computeFloor(c config, env *localenv.Env) (joinFloor, error) {
	var f joinFloor
	for _, file := range env.Payload.Files {
		f.payloadBytes += file.Size
	}
	f.transfer = time.Duration(float64(f.payloadBytes) / (c.bandwidthMB * 1e6) * float64(time.Second))
	if len(env.Hosts) == 0 {
		return f, nil
	}
	data, err := env.Hosts[0].Host.Disk().ReadFile(wicdapi.AppliedPlanPath)
	if err != nil {
		return f, fmt.Errorf("read the applied plan: %w", err)
	}
	var plan wicdapi.Plan
	if err := json.Unmarshal(data, &plan); err != nil {
		return f, fmt.Errorf("decode the applied plan: %w", err)
	}
	f.chain = longestChain(plan.Services)
	f.starts = time.Duration(len(f.chain)) * c.serviceDelay
	return f, nil
}

// longestChain is the longest chain of services each depending on the
// one before, dependencies first.
func longestChain(svcs []wicdapi.Service) []string {
	byName := map[string]wicdapi.Service{}
	for _, s := range svcs {
		byName[s.Name] = s
	}
	memo := map[string][]string{}
	var chain func(name string, depth int) []string
	chain = func(name string, depth int) []string {
		if c, ok := memo[name]; ok {
			return c
		}
		var best []string
		if depth <= len(svcs) {
			for _, d := range byName[name].Dependencies {
				if c := chain(d, depth+1); len(c) > len(best) {
					best = c
				}
			}
		}
		out := append(append([]string{}, best...), name)
		memo[name] = out
		return out
	}
	var longest []string
	for _, s := range svcs {
		if c := chain(s.Name, 0); len(c) > len(longest) {
			longest = c
		}
	}
	return longest
}

// phaseTable is T(1)'s phases beside the floor, for the first N=1 run.
func (r *report) phaseTable() string {
	var j *joinResult
	for i := range r.joins {
		if r.joins[i].hosts == 1 && len(r.joins[i].phases) > 0 {
			j = &r.joins[i]
			break
		}
	}
	if j == nil {
		return ""
	}
	t := &table{head: []string{"phase of T(1) (" + concName(j.concurrency) + ")", "duration", "share of T(1)"}}
	for _, p := range j.phases {
		t.add(p.name, fmtDur(p.duration), fmt.Sprintf("%.0f %%", 100*p.duration.Seconds()/j.duration.Seconds()))
	}
	t.add("**T(1)**", fmtDur(j.duration), "100 %")
	f := j.floor
	out := t.String()
	out += fmt.Sprintf("\nFloor: %s = the payload's %s at %.0f MB/s (%s) + %d service starts that must follow each other (%s) at %s each (%s). T(1) is %.2f× the floor.\n",
		fmtDur(f.total()), fmtBytes(f.payloadBytes), r.cfg.bandwidthMB, fmtDur(f.transfer), len(f.chain), strings.Join(f.chain, " → "),
		fmtDur(r.cfg.serviceDelay), fmtDur(f.starts), j.duration.Seconds()/f.total().Seconds())
	if len(j.samples) > 1 {
		out += fmt.Sprintf("\nT(1) and its phases are the median of %d joins of one host (%s), here and in the tables above.\n", len(j.samples), fmtDurs(j.samples))
	}
	return out
}

// noteProgress adds the first sighting of the one host's Node, its Ready
// condition and its instance's Ready condition to the host's timeline t
// (polled with the display loop, every 100 ms).
func noteProgress(ctx context.Context, env *localenv.Env, instances []wmcov1.WindowsInstance, t *timeline) {
	if t == nil {
		return
	}
	now := time.Now()
	nodes, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, node := range nodes.Items {
			if _, seen := t.first(eventNodeRegistered, ""); !seen {
				t.add(hostEvent{at: now, msg: eventNodeRegistered})
			}
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					if _, seen := t.first(eventNodeReady, ""); !seen {
						t.add(hostEvent{at: now, msg: eventNodeReady})
					}
				}
			}
		}
	}
	for i := range instances {
		if !meta.IsStatusConditionTrue(instances[i].Status.Conditions, wmcov1.ConditionReady) {
			continue
		}
		if _, seen := t.first(eventInstanceReady, ""); !seen {
			t.add(hostEvent{at: now, msg: eventInstanceReady})
		}
	}
}
