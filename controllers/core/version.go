package core

// VersionSource tells the API server's version (a *cluster.VersionWatcher
// keeps it current).
type VersionSource interface {
	Version() string
}

// StaticVersion is a VersionSource that never changes.
type StaticVersion string

// Version is v.
func (v StaticVersion) Version() string { return string(v) }

// VersionNotifier is a VersionSource that reports changes.
type VersionNotifier interface {
	OnChange(func(old, cur string))
}
