package wicd

import (
	"testing"

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
