/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

// Setting is one setting of the Windows hosts as its three sources, in
// the order they win: the WindowsNodeConfig's value, the value discovered
// from the cluster, and a default. Each source has a name (a field path
// for validation errors, words for messages) that Resolve reports with
// the value it picks.
type Setting[T comparable] struct {
	// Config is the WindowsNodeConfig's value, nil when it sets none.
	Config *T
	// ConfigFrom names where Config is set.
	ConfigFrom string
	// Cluster is the cluster's value, the zero value when none was
	// discovered.
	Cluster T
	// ClusterFrom names where Cluster was read.
	ClusterFrom string
	// Default is the value when neither sets one.
	Default T
	// DefaultFrom names the default.
	DefaultFrom string
}

// Resolve returns the setting's value and the name of where it came from:
// Config when set, else Cluster when not the zero value, else Default.
func (s Setting[T]) Resolve() (value T, from string) {
	var zero T
	switch {
	case s.Config != nil:
		return *s.Config, s.ConfigFrom
	case s.Cluster != zero:
		return s.Cluster, s.ClusterFrom
	}
	return s.Default, s.DefaultFrom
}
