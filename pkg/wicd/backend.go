// Package wicd is the node agent's logic: it makes a Windows host match a
// wicdapi.Plan and reports facts about it. It talks to the host only through
// the small interfaces of Backend, so the same code runs on Windows (package
// pkg/wicd/windows) and on the simulated host of the tests (test/winsim).
package wicd

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// ErrServiceNotFound is returned by Services for a service that does not
// exist.
var ErrServiceNotFound = errors.New("service does not exist")

// ServiceState is what the service manager reports about one service.
type ServiceState struct {
	// Config is the service as installed.
	Config wicdapi.Service
	// Running is true while the service's process runs.
	Running bool
}

// Services is the host's service manager.
type Services interface {
	// Query returns the state of a service, or ErrServiceNotFound.
	Query(ctx context.Context, name string) (ServiceState, error)
	// Create installs a service; it does not start it.
	Create(ctx context.Context, svc wicdapi.Service) error
	// Update changes an installed service's configuration; a running
	// service keeps its old configuration until it is restarted.
	Update(ctx context.Context, svc wicdapi.Service) error
	// Start starts a service and waits until it runs or fails.
	Start(ctx context.Context, name string) error
	// Stop stops a service and waits until it has stopped.
	Stop(ctx context.Context, name string) error
	// Delete removes a stopped service.
	Delete(ctx context.Context, name string) error
	// List returns the names of all installed services.
	List(ctx context.Context) ([]string, error)
}

// Files is the host's file system. Paths are absolute Windows paths
// (C:\k\kubelet.exe); implementations compare them case-insensitively.
type Files interface {
	Open(path string) (io.ReadCloser, error)
	ReadFile(path string) ([]byte, error)
	// WriteFile replaces path atomically (write aside, then rename).
	WriteFile(path string, data []byte) error
	MkdirAll(path string) error
	// Stat returns fs.ErrNotExist (wrapped) when path is missing.
	Stat(path string) (fs.FileInfo, error)
	// Remove removes a file or an empty directory.
	Remove(path string) error
	RemoveAll(path string) error
	// ReadDir lists the entries of a directory.
	ReadDir(path string) ([]fs.DirEntry, error)
	// Walk calls fn for every regular file under root.
	Walk(root string, fn func(path string, info fs.FileInfo) error) error
	// FreeBytes is the free space of the volume holding path.
	FreeBytes(path string) (int64, error)
}

// System answers questions about the host and changes its features.
type System interface {
	Hostname() (string, error)
	OSBuild() (int, error)
	Addresses() ([]string, error)
	Now() time.Time
	// Features reports whether each named Windows feature is enabled.
	Features(names []string) (map[string]bool, error)
	// EnableFeature turns a feature on and says whether a reboot is needed.
	EnableFeature(name string) (rebootRequired bool, err error)
}

// Network manages HNS networks.
type Network interface {
	ListNetworks() ([]string, error)
	DeleteNetwork(name string) error
}

// Locker serialises agents on one host: `wicd apply` over SSH and the
// `wicd run` service must not change the host at the same time.
type Locker interface {
	Lock(ctx context.Context) (unlock func(), err error)
}

// Backend is everything the agent needs from a host.
type Backend struct {
	Services Services
	Files    Files
	System   System
	Network  Network
	Locker   Locker
	// Version of the agent, reported by `wicd version` and facts.
	Version string
	// OS and Arch reported by `wicd version`.
	OS, Arch string
}

func (b *Backend) validate() error {
	if b.Services == nil || b.Files == nil || b.System == nil || b.Network == nil || b.Locker == nil {
		return errors.New("wicd: backend is incomplete")
	}
	return nil
}
