package instance

import (
	"context"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubectl/pkg/drain"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

const (
	payloadWICD       = payload.WICDPath
	featureContainers = wicdapi.FeatureContainers
	drainTimeout      = 2 * time.Minute
)

// drain cordons the Node and evicts its pods (DaemonSet pods stay).
func (r *Reconciler) drain(ctx context.Context, name string) error {
	node, err := r.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	h := &drain.Helper{
		Ctx: ctx, Client: r.Clientset, Force: true, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true,
		GracePeriodSeconds: -1, Timeout: drainTimeout, Out: io.Discard, ErrOut: io.Discard,
	}
	if err := drain.RunCordonOrUncordon(h, node, true); err != nil {
		return fmt.Errorf("cordon: %w", err)
	}
	if err := drain.RunNodeDrain(h, name); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}
