package localcluster

import (
	"errors"
	"fmt"
	"testing"
)

// A start is retried on new ports only when a component's log says its
// port was taken.
func TestPortTaken(t *testing.T) {
	kcm := errors.New(`kube-controller-manager exited during start-up (exit status 1); last lines of /tmp/wmco-localcluster-1/kube-controller-manager.log:
E1203 09:38:04.644673   27799 run.go:72] "command failed" err="failed to create listener: failed to listen on 127.0.0.1:38899: listen tcp 127.0.0.1:38899: bind: address already in use"`)
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"started", nil, false},
		{"a component's port taken", kcm, true},
		{"wrapped", fmt.Errorf("start local control plane: %w", kcm), true},
		{"another failure", errors.New("kube-apiserver exited during start-up (exit status 1); last lines: invalid flag"), false},
	}
	for _, tc := range cases {
		if got := portTaken(tc.err); got != tc.want {
			t.Errorf("%s: portTaken = %v, want %v", tc.name, got, tc.want)
		}
	}
}
