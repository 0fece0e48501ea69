// Package version holds the build's version, set at link time:
//
//	go build -ldflags "-X github.com/openwmco/wmco/pkg/version.Version=v0.1.0"
package version

// Version of this build; "dev" when not set by the linker.
var Version = "dev"

// Get returns the build's version.
func Get() string { return Version }
