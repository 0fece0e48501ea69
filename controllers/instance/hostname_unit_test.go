package instance

import (
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// The hostname phase reboots a host once per name: the condition it
// leaves says whether that reboot happened.
func TestRebootedFor(t *testing.T) {
	cases := []struct {
		name    string
		reason  string
		message string
		want    bool
	}{
		{"no condition", "", "", false},
		{"preflight passed", ReasonPreflightPassed, "every preflight check passed", false},
		{"renaming to the name", ReasonRenamingHost, renamingMessage("vm-abc12"), true},
		{"renaming to another name", ReasonRenamingHost, renamingMessage("vm-abc1"), false},
		{"features reboot for the name too", ReasonRebooting, "rebooting to enable Containers and " + renamingMessage("vm-abc12"), true},
		{"features reboot alone", ReasonRebooting, "rebooting to enable Containers", false},
		{"stuck on the name", ReasonHostnameNotApplied, stuckRenameMessage("vm-abc12", "WIN-X"), true},
		{"stuck on a longer name", ReasonHostnameNotApplied, stuckRenameMessage("vm-abc123", "WIN-X"), false},
		{"agent failed", ReasonAgentFailed, renamingMessage("vm-abc12"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wi := &wmcov1.WindowsInstance{}
			if tc.reason != "" {
				wi.Status.Conditions = []metav1.Condition{{Type: wmcov1.ConditionPreflightPassed, Status: metav1.ConditionFalse, Reason: tc.reason, Message: tc.message}}
			}
			NewWithT(t).Expect(rebootedFor(wi, "vm-abc12")).To(Equal(tc.want))
		})
	}
}
