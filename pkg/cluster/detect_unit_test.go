package cluster

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// retryDetect tries again after errors of an API server that does not
// answer, never after a refusal, and gives up past its time or when ctx
// ends, naming the last error.
func TestRetryDetect(t *testing.T) {
	refused := syscall.ECONNREFUSED
	forbidden := apierrors.NewForbidden(schema.GroupResource{}, "version", errors.New("no"))
	ok := Info{Platform: Kubernetes, Version: "v1.37.2"}
	cases := []struct {
		name    string
		answers []error // one per try; nil answers ok
		within  time.Duration
		cancel  bool
		tries   int
		wantErr error
	}{
		{name: "answers at once", answers: []error{nil}, within: time.Minute, tries: 1},
		{name: "answers after two refusals", answers: []error{refused, refused, nil}, within: time.Minute, tries: 3},
		{name: "forbidden is not retried", answers: []error{forbidden}, within: time.Minute, tries: 1, wantErr: forbidden},
		{name: "gives up past its time", answers: []error{refused, refused}, within: 0, tries: 1, wantErr: refused},
		{name: "stops with its context", answers: []error{refused, nil}, within: time.Minute, cancel: true, tries: 1, wantErr: context.Canceled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			tries, retries := 0, 0
			detect := func() (Info, error) {
				err := tc.answers[tries]
				tries++
				if err != nil {
					return Info{}, err
				}
				return ok, nil
			}
			info, err := retryDetect(ctx, detect, tc.within, func(err error, wait time.Duration) {
				retries++
				g.Expect(wait).To(BeNumerically(">", 0))
				g.Expect(wait).To(BeNumerically("<=", detectMaxWait))
				if tc.cancel {
					cancel()
				}
			})
			g.Expect(tries).To(Equal(tc.tries), "tries")
			if tc.wantErr != nil {
				g.Expect(err).To(MatchError(tc.wantErr))
				g.Expect(info).To(BeZero())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(info).To(Equal(ok))
			g.Expect(retries).To(Equal(tc.tries-1), "one retry notice per failed try")
		})
	}
}
