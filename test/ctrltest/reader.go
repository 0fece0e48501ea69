package ctrltest

import (
	"context"
	"sync/atomic"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CountingReader reads through the Reader it wraps (the API server, say)
// and counts the GETs and LISTs it was asked for.
type CountingReader struct {
	client.Reader
	Gets, Lists atomic.Int64
}

// Get counts a GET and reads through the wrapped Reader.
func (r *CountingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.Gets.Add(1)
	return r.Reader.Get(ctx, key, obj, opts...)
}

// List counts a LIST and lists through the wrapped Reader.
func (r *CountingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.Lists.Add(1)
	return r.Reader.List(ctx, list, opts...)
}
