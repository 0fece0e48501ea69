package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/openwmco/wmco/test/proc"
)

// profileDir is where the operator's profiles go, relative to the
// repository.
const profileDir = "bin/bench-profiles"

// profileSummary is the top of one profile of one phase.
type profileSummary struct {
	phase, kind, path string
	// top is `go tool pprof -top` cut to its header and first entries.
	top string
	err error
}

// pprofArgs are the operator's flags that serve its profiles on a free
// loopback port, and that port's base URL; none when profiling is off.
func pprofArgs(c config) ([]string, string, error) {
	if !c.profiling() {
		return nil, "", nil
	}
	ports, err := proc.FreePorts(1)
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	return []string{"--pprof-bind-address=" + addr}, "http://" + addr, nil
}

// joinProfileArgs are pprofArgs for the join run of 10 hosts at the
// first (default) concurrency, the one profiled; none for the others.
func joinProfileArgs(c config, n, conc int) ([]string, string, error) {
	if n != 10 || len(c.concurrency) == 0 || conc != c.concurrency[0] {
		return nil, "", nil
	}
	return pprofArgs(c)
}

// peakStep is how much the operator's resident set must grow past the
// highest level seen before the peak heap profile is taken again.
const peakStep = 4 << 20

// peakPoll is how often the operator's resident set is read for the peak
// heap profile.
const peakPoll = 100 * time.Millisecond

// profiler takes a CPU profile of the operator from its start until
// finish (at most --profile-for; --cpuprofile), and a heap profile at
// finish and, when the operator's PID is known, one at its resident
// set's peak (--memprofile).
type profiler struct {
	c     config
	r     *report
	get   profileSource
	phase string
	// cpuKind names the CPU profile: "cpu" for the operator's; the
	// operator's profiler also takes heap profiles.
	cpuKind string
	cancel  context.CancelFunc
	// cpu brings the CPU profile; nil without --cpuprofile.
	cpu  chan profileSummary
	peak chan profileSummary
	once sync.Once
}

// startProfile starts profiling the operator serving pprof at base
// (pprofArgs); nil when profiling is off. The CPU profile covers
// --profile-for from now, so the phase should finish within them.
//
// With pid (0: unknown) and --memprofile it also watches the operator's VmRSS and, each time
// it exceeds the highest level seen by peakStep, replaces the "heap-peak"
// profile with a fresh one (after a GC: the live heap at the peak, which
// the end-of-phase profile no longer shows).
func startProfile(ctx context.Context, c config, r *report, base, phase string, pid int) *profiler {
	if base == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &profiler{c: c, r: r, get: httpSource(base), phase: phase, cpuKind: "cpu", cancel: cancel}
	if c.cpuProfile {
		p.cpu = make(chan profileSummary, 1)
		go p.cpuProfile(ctx)
	}
	if pid != 0 && c.memProfile {
		p.peak = make(chan profileSummary, 1)
		go func() { p.peak <- p.watchPeak(ctx, pid) }()
	}
	return p
}

// startAPIServerProfile starts a CPU profile of the API server cs talks
// to (its /debug/pprof, open to the cluster's admin) for --profile-for
// from now; nil without --cpuprofile. It shows where the control plane's
// time goes in a phase whose pace the API server sets.
func startAPIServerProfile(ctx context.Context, c config, r *report, cs kubernetes.Interface, phase string) *profiler {
	if !c.cpuProfile {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &profiler{c: c, r: r, get: apiServerSource(cs), phase: phase, cpuKind: "apiserver-cpu", cancel: cancel, cpu: make(chan profileSummary, 1)}
	go p.cpuProfile(ctx)
	return p
}

func (p *profiler) cpuProfile(ctx context.Context) {
	secs := max(1, int(p.c.profileFor.Seconds()))
	p.cpu <- p.fetch(ctx, p.cpuKind, fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
}

// profileSource reads a pprof path (with its query) from a process.
type profileSource func(ctx context.Context, path string) (io.ReadCloser, error)

// httpSource reads from a process serving pprof at base, e.g.
// http://127.0.0.1:port.
func httpSource(base string) profileSource {
	return func(ctx context.Context, path string) (io.ReadCloser, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			_ = resp.Body.Close()
			return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
		}
		return resp.Body, nil
	}
}

// apiServerSource reads from the API server cs talks to.
func apiServerSource(cs kubernetes.Interface) profileSource {
	return func(ctx context.Context, path string) (io.ReadCloser, error) {
		u, err := url.Parse(path)
		if err != nil {
			return nil, err
		}
		req := cs.CoreV1().RESTClient().Get().AbsPath(u.Path)
		for k, v := range u.Query() {
			req = req.Param(k, v[0])
		}
		return req.Stream(ctx)
	}
}

// watchPeak takes the heap-peak profile until ctx ends and returns the
// last one taken, with the VmRSS that triggered it in its summary.
func (p *profiler) watchPeak(ctx context.Context, pid int) profileSummary {
	last := profileSummary{phase: p.phase, kind: "heap-peak", err: errors.New("VmRSS never grew")}
	var high int64
	t := time.NewTicker(peakPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if last.err == nil {
				top, err := pprofTop(context.WithoutCancel(ctx), last.path, last.kind)
				last.top, last.err = last.top+top, err
			}
			return last
		case <-t.C:
		}
		m, err := readMemStatus(pid)
		if err != nil {
			continue // not started yet, or gone
		}
		if high == 0 {
			high = m.RSS
			continue
		}
		if m.RSS < high+peakStep {
			continue
		}
		high = m.RSS
		s := p.fetch(ctx, "heap-peak", "/debug/pprof/heap?gc=1")
		if ctx.Err() != nil || (s.err != nil && last.err == nil) {
			continue // keep the last good one; the loop returns it
		}
		s.top = fmt.Sprintf("taken at VmRSS %s\n", fmtBytes(m.RSS))
		last = s
	}
}

// finish waits for the CPU profile, takes a heap profile (of the
// operator, with --memprofile) and adds the summaries to the report.
func (p *profiler) finish(ctx context.Context) {
	if p == nil {
		return
	}
	p.once.Do(func() {
		var summaries []profileSummary
		if p.cpuKind == "cpu" && p.c.memProfile {
			summaries = append(summaries, p.fetch(ctx, "heap", "/debug/pprof/heap?gc=1"))
		}
		if p.cpu != nil {
			logf("%s: waiting for the %s profile (%s)", p.phase, p.cpuKind, p.c.profileFor)
			summaries = append([]profileSummary{<-p.cpu}, summaries...)
		}
		p.cancel()
		if p.peak != nil {
			summaries = append(summaries, <-p.peak)
		}
		for _, s := range summaries {
			if s.err != nil {
				logf("%s: %s profile: %v", p.phase, s.kind, s.err)
			} else {
				logf("%s: %s profile in %s", p.phase, s.kind, s.path)
			}
			p.r.profiles = append(p.r.profiles, s)
		}
	})
}

func (p *profiler) fetch(ctx context.Context, kind, path string) profileSummary {
	s := profileSummary{phase: p.phase, kind: kind}
	name := strings.NewReplacer(" ", "-", "=", "", ",", "").Replace(strings.ToLower(p.phase)) + "." + kind + ".pprof"
	s.path = filepath.Join(profileDir, name)
	body, err := p.get(ctx, path)
	if err != nil {
		s.err = err
		return s
	}
	defer body.Close() //nolint:errcheck // read-only
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		s.err = err
		return s
	}
	f, err := os.Create(s.path)
	if err != nil {
		s.err = err
		return s
	}
	if _, err := io.Copy(f, body); err != nil {
		_ = f.Close()
		s.err = err
		return s
	}
	if err := f.Close(); err != nil {
		s.err = err
		return s
	}
	if kind != "heap-peak" { // summarised once, when the peak is known
		s.top, s.err = pprofTop(ctx, s.path, kind)
	}
	return s
}

// pprofTop is `go tool pprof -top` of the profile: its header lines and
// the first five entries (flat); heap profiles by in-use space.
func pprofTop(ctx context.Context, path, kind string) (string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=5"}
	if strings.HasPrefix(kind, "heap") {
		args = append(args, "-sample_index=inuse_space")
	}
	out, err := exec.CommandContext(ctx, "go", append(args, path)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, out)
	}
	var keep []string
	for line := range strings.SplitSeq(strings.TrimRight(string(out), "\n"), "\n") {
		// File:, Build ID: and Type: say nothing the table does not.
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n"), nil
}

// profilesSection is the report's section of profile summaries.
func (r *report) profilesSection(heading string) string {
	if len(r.profiles) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s Profiles\n\n", heading)
	var taken []string
	if r.cfg.cpuProfile {
		taken = append(taken, fmt.Sprintf("`--cpuprofile`: CPU profiles (of the operator, and\nof the API server in the CSR bursts: apiserver-cpu) cover\nup to %s from the phase's start.", r.cfg.profileFor))
	}
	if r.cfg.memProfile {
		taken = append(taken, fmt.Sprintf("`--memprofile`: heap profiles (in use) are taken at its end,\nheap-peak profiles (in use, after a GC) when the operator's VmRSS last rose %s past its previous high.", fmtBytes(peakStep)))
	}
	fmt.Fprintf(&b, "The operator served pprof on loopback. %s\nFiles in `%s/`; `go tool pprof -top <file>` for more.\n\n", strings.Join(taken, "\n"), profileDir)
	for _, s := range r.profiles {
		fmt.Fprintf(&b, "**%s, %s** (`%s`)\n\n", s.phase, s.kind, s.path)
		if s.err != nil {
			fmt.Fprintf(&b, "not taken: %s\n\n", strings.ReplaceAll(s.err.Error(), "\n", " "))
			continue
		}
		fmt.Fprintf(&b, "```\n%s\n```\n\n", s.top)
	}
	return b.String()
}
