package core

import (
	"errors"
	"fmt"
	"testing"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
)

func TestCacheLag(t *testing.T) {
	gr := schema.GroupResource{Group: "wmco.io", Resource: "windowsinstances"}
	conflict := apierrors.NewConflict(gr, "a", errors.New("modified"))
	exists := apierrors.NewAlreadyExists(gr, "a")
	forbidden := apierrors.NewForbidden(gr, "a", errors.New("no"))
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"conflict", conflict, true},
		{"already exists, wrapped", fmt.Errorf("create WindowsInstance a: %w", exists), true},
		{"forbidden", forbidden, false},
		{"plain error", errors.New("dial tcp: refused"), false},
		{"aggregate of conflicts", kerrors.NewAggregate([]error{conflict, fmt.Errorf("update: %w", conflict)}), true},
		{"aggregate with another error", kerrors.NewAggregate([]error{conflict, forbidden}), false},
		{"aggregate, wrapped", fmt.Errorf("sync: %w", kerrors.NewAggregate([]error{exists})), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(CacheLag(tt.err)).To(Equal(tt.want))
			res, err := QuietCacheLag(t.Context(), ctrl.Result{}, tt.err)
			if tt.want {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res.RequeueAfter).To(Equal(CacheLagRequeue))
			} else {
				if tt.err == nil {
					g.Expect(err).To(BeNil())
				} else {
					g.Expect(err).To(MatchError(tt.err.Error()), "returned as it was")
				}
				g.Expect(res).To(Equal(ctrl.Result{}))
			}
		})
	}
}
