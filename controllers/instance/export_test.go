package instance

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// InstanceReader is the controller's read of its instance (readInstance)
// and its writing client, over cached (what the informer cache answers)
// and live (the API server), for the tests of package instance_test.
type InstanceReader struct {
	Read   func(ctx context.Context, key client.ObjectKey, wi *wmcov1.WindowsInstance) error
	Writer client.Client
}

// NewInstanceReader returns an InstanceReader whose writes go through
// cached's writer.
func NewInstanceReader(cached client.Client, live client.Reader) InstanceReader {
	r := &Reconciler{Client: cached, APIReader: live}
	r.recordWrites()
	return InstanceReader{Read: r.readInstance, Writer: r.Client}
}

// HistoryDataKey is the key history Secret's data key of a fingerprint.
func HistoryDataKey(fingerprint string) string { return historyDataKey(fingerprint) }
