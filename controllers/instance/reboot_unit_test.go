package instance

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// A reboot the operator asked for is done when the host reports another
// boot time; until then it is pending, and rebootWait after the request
// it is taken as not happening.
func TestRebootProgress(t *testing.T) {
	asked := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	const boot, later = "2026-12-01T08:00:00.1234567Z", "2026-12-02T01:00:09.5Z"
	rb := &wmcov1.RebootStatus{RequestedAt: metav1.NewTime(asked), BootTime: boot}
	cases := []struct {
		name     string
		rb       *wmcov1.RebootStatus
		bootTime string
		now      time.Time
		want     int
	}{
		{"same boot, moments later", rb, boot, asked.Add(time.Second), rebootPending},
		{"same boot, just within the wait", rb, boot, asked.Add(rebootWait - time.Second), rebootPending},
		{"same boot at the end of the wait", rb, boot, asked.Add(rebootWait), rebootNotObserved},
		{"a later boot", rb, later, asked.Add(10 * time.Second), rebootDone},
		{"a later boot after the wait", rb, later, asked.Add(time.Hour), rebootDone},
		{"an agent that stopped telling its boot", rb, "", asked.Add(time.Second), rebootDone},
		{"asked of an agent that does not tell its boot", &wmcov1.RebootStatus{RequestedAt: metav1.NewTime(asked)}, "", asked.Add(time.Second), rebootDone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(rebootProgress(tc.rb, tc.bootTime, tc.now)).To(Equal(tc.want))
		})
	}
}
