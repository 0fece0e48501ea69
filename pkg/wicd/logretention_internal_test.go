package wicd

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// The agent removes files beside the logs a plan names: only logs in a
// folder of their own under C:\var\log are accepted.
func TestValidateLogRetention(t *testing.T) {
	for _, tc := range []struct {
		log string
		ok  bool
	}{
		{`C:\var\log\kubelet\kubelet.log`, true},
		{`c:/VAR/log/kubelet/kubelet.log`, true},
		{`C:\var\log\kubelet.log`, false},
		{`C:\var\log\kubelet\sub\kubelet.log`, false},
		{`C:\var\log\kubelet\`, false},
		{`C:\var\log\..\k\kubelet.log`, false},
		{`C:\k\kubelet.log`, false},
		{`C:\Windows\System32\config\SAM`, false},
		{`var\log\kubelet\kubelet.log`, false},
	} {
		t.Run(tc.log, func(t *testing.T) {
			g := NewWithT(t)
			err := validateLogRetention(&wicdapi.LogRetention{MaxFiles: 1, MaxAgeDays: 1, Logs: []string{tc.log}})
			if tc.ok {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(ContainSubstring("is not a file in a folder of")))
			}
		})
	}
	g := NewWithT(t)
	g.Expect(validateLogRetention(nil)).To(Succeed())
	g.Expect(validateLogRetention(&wicdapi.LogRetention{MaxFiles: 0, MaxAgeDays: 1})).To(MatchError(ContainSubstring("must be at least 1")))
}

// A log to copy and truncate must be one of the logs, not the agent's
// own (it rotates that itself), and come with a size.
func TestValidateLogRetentionCopyTruncate(t *testing.T) {
	const containerd, kubelet = `C:\var\log\containerd\containerd.log`, `C:\var\log\kubelet\kubelet.log`
	base := func(copyTruncate []string, size int) *wicdapi.LogRetention {
		return &wicdapi.LogRetention{MaxFiles: 1, MaxAgeDays: 1, Logs: []string{containerd, wicdapi.AgentLogPath},
			CopyTruncate: copyTruncate, MaxFileSizeMiB: size}
	}
	for _, tc := range []struct {
		name string
		r    *wicdapi.LogRetention
		want string
	}{
		{"one of the logs", base([]string{containerd}, 1), ""},
		{"spelt otherwise", base([]string{`c:/VAR/log/containerd/containerd.log`}, 1), ""},
		{"none, no size", base(nil, 0), ""},
		{"no size", base([]string{containerd}, 0), "maxFileSizeMiB 0 must be at least 1"},
		{"not among the logs", base([]string{kubelet}, 1), "is not among the logs"},
		{"the agent's", base([]string{wicdapi.AgentLogPath}, 1), "the agent rotates its own log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := validateLogRetention(tc.r)
			if tc.want == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			}
		})
	}
}

func TestRotatedLogName(t *testing.T) {
	at := time.Date(2026, 12, 5, 11, 45, 1, 123456789, time.FixedZone("CET", 3600))
	for _, tc := range []struct{ current, want string }{
		{`C:\var\log\containerd\containerd.log`, `C:\var\log\containerd\containerd-20261205T104501.123Z.log`},
		{`C:\var\log\x.y\noext`, `C:\var\log\x.y\noext-20261205T104501.123Z`},
	} {
		if got := wicdapi.RotatedLogName(tc.current, at); got != tc.want {
			t.Errorf("RotatedLogName(%q) = %q, want %q", tc.current, got, tc.want)
		}
	}
}
