// Package instance is the WindowsInstance controller: the one place that
// touches a host. Its Reconcile runs a short list of phases (connect, the
// agent, keys, computer name, features, preflight, payload, plan, Node;
// drain and deconfigure on deletion), each func(ctx, *scope)
// (ctrl.Result, error); the status is computed once, by summarize, and
// patched at the end.
package instance
