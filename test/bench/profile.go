package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

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
	if !c.profile {
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

// profiler takes a CPU profile of the operator from its start until
// finish (at most --profile-for) and a heap profile at finish.
type profiler struct {
	c      config
	r      *report
	base   string
	phase  string
	cancel context.CancelFunc
	cpu    chan profileSummary
	once   sync.Once
}

// startProfile starts a CPU profile of the operator serving pprof at base
// (pprofArgs); nil when profiling is off. The CPU profile covers
// --profile-for from now, so the phase should finish within them.
func startProfile(ctx context.Context, c config, r *report, base, phase string) *profiler {
	if base == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &profiler{c: c, r: r, base: base, phase: phase, cancel: cancel, cpu: make(chan profileSummary, 1)}
	go func() {
		secs := max(1, int(c.profileFor.Seconds()))
		p.cpu <- p.fetch(ctx, "cpu", fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs))
	}()
	return p
}

// finish waits for the CPU profile, takes a heap profile and adds both
// summaries to the report.
func (p *profiler) finish(ctx context.Context) {
	if p == nil {
		return
	}
	p.once.Do(func() {
		heap := p.fetch(ctx, "heap", "/debug/pprof/heap?gc=1")
		logf("%s: waiting for the operator's CPU profile (%s)", p.phase, p.c.profileFor)
		cpu := <-p.cpu
		p.cancel()
		for _, s := range []profileSummary{cpu, heap} {
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
	if err != nil {
		s.err = err
		return s
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.err = err
		return s
	}
	defer resp.Body.Close() //nolint:errcheck // read-only
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		s.err = fmt.Errorf("%s: %s: %s", path, resp.Status, b)
		return s
	}
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		s.err = err
		return s
	}
	f, err := os.Create(s.path)
	if err != nil {
		s.err = err
		return s
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		s.err = err
		return s
	}
	if err := f.Close(); err != nil {
		s.err = err
		return s
	}
	s.top, s.err = pprofTop(ctx, s.path, kind)
	return s
}

// pprofTop is `go tool pprof -top` of the profile: its header lines and
// the first five entries (flat); heap profiles by in-use space.
func pprofTop(ctx context.Context, path, kind string) (string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=5"}
	if kind == "heap" {
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
	fmt.Fprintf(&b, "%s Operator profiles\n\n", heading)
	fmt.Fprintf(&b, "`--profile`: the operator served pprof on loopback; CPU profiles cover\nup to %s from the phase's start, heap profiles (in use) are taken at its end.\nFiles in `%s/`; `go tool pprof -top <file>` for more.\n\n", r.cfg.profileFor, profileDir)
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
