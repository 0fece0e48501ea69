/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package memlimit_test

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/memlimit"
)

func TestDecide(t *testing.T) {
	const mi = 1 << 20
	for _, c := range []struct {
		name, flag, env string
		cgroup          int64
		want            int64
		source, err     string
	}{
		{name: "flag wins", flag: "96Mi", env: "1GiB", cgroup: 512 * mi, want: 96 * mi, source: memlimit.SourceFlag},
		{name: "flag in bytes", flag: "100000000", want: 100000000, source: memlimit.SourceFlag},
		{name: "flag 0 is none", flag: "0", cgroup: 512 * mi, want: 0, source: memlimit.SourceFlag},
		{name: "GOMEMLIMIT next", env: "200MiB", cgroup: 512 * mi, want: 0, source: memlimit.SourceEnv},
		{name: "then the cgroup", cgroup: 512 * mi, want: 384 * mi, source: memlimit.SourceCgroup},
		{name: "else none", want: 0, source: memlimit.SourceNone},
		{name: "not a quantity", flag: "lots", err: "not a quantity"},
		{name: "negative", flag: "-1Mi", err: "from 0 up"},
		{name: "fraction of a byte", flag: "1m", err: "from 0 up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			got, source, err := memlimit.Decide(c.flag, c.env, c.cgroup)
			if c.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(c.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(c.want))
			g.Expect(source).To(Equal(c.source))
		})
	}
}

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"536870912\n", 536870912, true},
		{"max\n", 0, true},
		{"9223372036854771712\n", 0, true}, // cgroup v1 without a limit
		{"18446744073709551615", 0, true},
		{"-1", 0, true},
		{"", 0, false},
		{"12k", 0, false},
	} {
		g := NewWithT(t)
		got, err := memlimit.ParseLimit(c.in)
		if !c.ok {
			g.Expect(err).To(HaveOccurred(), "%q", c.in)
			continue
		}
		g.Expect(err).NotTo(HaveOccurred(), "%q", c.in)
		g.Expect(got).To(Equal(c.want), "%q", c.in)
	}
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"536870912\n", "max", "9223372036854771712", "-5", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := memlimit.ParseLimit(s)
		if err != nil {
			return
		}
		if n < 0 || n >= 1<<62 {
			t.Fatalf("%q: limit %d", s, n)
		}
		if v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); n > 0 && (err != nil || v != n) {
			t.Fatalf("%q read as %d", s, n)
		}
	})
}

// The limit is found through /proc/self/cgroup under the mount root, for
// cgroup v2 and v1, nested or namespaced.
func TestCgroupLimit(t *testing.T) {
	write := func(t *testing.T, path, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name, self string
		files      map[string]string
		want       int64
	}{
		{"v2 namespaced", "0::/\n", map[string]string{"memory.max": "536870912\n"}, 536870912},
		{"v2 nested", "0::/kubepods/pod1/c1\n", map[string]string{"kubepods/pod1/c1/memory.max": "268435456\n", "memory.max": "max\n"}, 268435456},
		{"v2 nested, mount is the container's", "0::/kubepods/pod1/c1\n", map[string]string{"memory.max": "268435456\n"}, 268435456},
		{"v2 unlimited", "0::/\n", map[string]string{"memory.max": "max\n"}, 0},
		{"v1 nested", "4:memory:/process_api/x\n1:cpu,cpuacct:/\n0::/\n", map[string]string{"memory/process_api/x/memory.limit_in_bytes": "134217728\n"}, 134217728},
		{"v1 with others on the line", "4:cpu,memory:/a\n", map[string]string{"memory/a/memory.limit_in_bytes": "134217728\n"}, 134217728},
		{"v1 unlimited", "4:memory:/\n", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"no files", "0::/\n", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			dir := t.TempDir()
			self := filepath.Join(dir, "self-cgroup")
			write(t, self, c.self)
			root := filepath.Join(dir, "cgroup")
			g.Expect(os.MkdirAll(root, 0o755)).To(Succeed())
			for p, body := range c.files {
				write(t, filepath.Join(root, p), body)
			}
			got, err := memlimit.CgroupLimit(self, root)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(c.want))
		})
	}
	_, err := memlimit.CgroupLimit(filepath.Join(t.TempDir(), "absent"), "/")
	NewWithT(t).Expect(err).To(HaveOccurred())
}

// Without $GOGC the collector's target becomes memlimit.DefaultGCPercent; with it,
// what the runtime took from it stays.
func TestApplyGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	percent, source := memlimit.ApplyGCPercent("")
	if percent != memlimit.DefaultGCPercent || source != memlimit.SourceDefault {
		t.Errorf("without GOGC: %d from %s, want %d from %s", percent, source, memlimit.DefaultGCPercent, memlimit.SourceDefault)
	}
	if got := debug.SetGCPercent(80); got != memlimit.DefaultGCPercent {
		t.Errorf("the runtime's target is %d, want %d", got, memlimit.DefaultGCPercent)
	}
	// The runtime read GOGC=80 at start-up, say.
	percent, source = memlimit.ApplyGCPercent("80")
	if percent != 80 || source != memlimit.SourceGOGC {
		t.Errorf("with GOGC: %d from %s, want 80 from %s", percent, source, memlimit.SourceGOGC)
	}
	if got := debug.SetGCPercent(100); got != 80 {
		t.Errorf("the runtime's target is %d, want it left at 80", got)
	}
}
