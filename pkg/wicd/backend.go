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

// ErrDependentsRunning is returned by Services.Stop for a service that
// running services depend on (Windows' ERROR_DEPENDENT_SERVICES_RUNNING).
var ErrDependentsRunning = errors.New("a stop control has been sent to a service that other running services are dependent on")

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
	// Stop stops a service and waits until it has stopped; while running
	// services depend on it, it fails with ErrDependentsRunning.
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
	// CopyFile replaces to with a copy of from as WriteFile replaces a
	// file (copied aside, then renamed), without holding the content in
	// memory, and returns the bytes copied. to's directory must exist.
	// A from that is missing fails with fs.ErrNotExist (wrapped); a to
	// that processes hold fails with ErrFileInUse.
	CopyFile(from, to string) (int64, error)
	MkdirAll(path string) error
	// CopyAndEmpty copies from to to as CopyFile does and empties from,
	// holding it open for writing from before the copy to the end: a
	// process may hold from open for appending as Go opens a log (sharing
	// reads and writes), and its next write lands at the file's new
	// start. One holding from without sharing writes fails it with
	// ErrFileInUse before to is created. It returns the bytes copied.
	CopyAndEmpty(from, to string) (int64, error)
	// Stat returns fs.ErrNotExist (wrapped) when path is missing.
	Stat(path string) (fs.FileInfo, error)
	// Remove removes a file or an empty directory.
	Remove(path string) error
	// RemoveAll removes path and everything under it; a missing path is
	// not an error.
	RemoveAll(path string) error
	// Rename moves a file, replacing an existing one at to.
	Rename(from, to string) error
	// Holders names the processes that hold path, or a file under it,
	// open ("kubelet.exe (PID 4312)"), as far as the host can tell.
	Holders(path string) ([]string, error)
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
	// BootTime is when the current boot began; it changes at every
	// boot. The zero time when it cannot be told.
	BootTime() (time.Time, error)
	// Features reports whether each named Windows feature is enabled.
	Features(names []string) (map[string]bool, error)
	// EnableFeature turns a feature on and says whether a reboot is needed.
	EnableFeature(name string) (rebootRequired bool, err error)
	// PendingHostname is the computer name that takes effect at the next
	// boot, "" when none is pending (the name in effect stays).
	PendingHostname() (string, error)
	// SetHostname sets the computer name (its DNS host name and, as
	// Windows derives it, the NetBIOS name); it takes effect at the next
	// boot.
	SetHostname(name string) error
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

// Exec runs programs on the host.
type Exec interface {
	// Run runs argv (no shell) and returns its standard output; a
	// non-zero exit status is an error that includes standard error.
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// Firewall manages inbound rules of the host firewall.
type Firewall interface {
	// Rule returns the rule named name, or ErrNotFound.
	Rule(ctx context.Context, name string) (FirewallRuleState, error)
	// Add adds a rule, enabled; an existing rule of that name is
	// replaced.
	Add(ctx context.Context, r wicdapi.FirewallRule) error
	// Delete removes every rule named name.
	Delete(ctx context.Context, name string) error
}

// FirewallRuleState is a rule as the host firewall has it.
type FirewallRuleState struct {
	wicdapi.FirewallRule
	// Enabled is false for a rule that is there but disabled (as an
	// administrator may disable one): it lets nothing in.
	Enabled bool
}

// Defender manages Microsoft Defender's exclusions.
type Defender interface {
	// Present reports whether Defender is installed.
	Present(ctx context.Context) (bool, error)
	// Exclusions lists the excluded paths.
	Exclusions(ctx context.Context) ([]string, error)
	// AddExclusion excludes a folder from scanning.
	AddExclusion(ctx context.Context, path string) error
}

// Account is the Windows account the agent runs as.
type Account struct {
	// Name of the account ("Administrator").
	Name string
	// Admin is true when the process token is a member of
	// BUILTIN\Administrators: sshd then reads the account's public keys
	// from wicdapi.AdministratorsAuthorizedKeysPath.
	Admin bool
	// Profile is the account's profile directory
	// (C:\Users\Administrator), which holds .ssh\authorized_keys.
	Profile string
}

// Accounts tells who the agent runs as and guards the files sshd reads.
type Accounts interface {
	// Current returns the account of the running process.
	Current() (Account, error)
	// RestrictToAdministrators gives path the security descriptor
	// AdministratorsKeysSDDL, which sshd requires of the administrators'
	// authorized keys file.
	RestrictToAdministrators(path string) error
	// SecureFolder gives the folder at path the security descriptor
	// AgentFolderSDDL unless FolderSecured says it has it. Setting it
	// passes the inheritable entries on to the files and folders already
	// in it, as SetNamedSecurityInfo does.
	SecureFolder(path string) error
}

// AdministratorsKeysSDDL is the security descriptor of
// wicdapi.AdministratorsAuthorizedKeysPath that OpenSSH for Windows
// accepts: owned by Administrators, full control for SYSTEM and
// Administrators only, nothing inherited (as `icacls ... /inheritance:r
// /grant Administrators:F /grant SYSTEM:F` leaves it).
const AdministratorsKeysSDDL = "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)"

// ErrNotFound is returned by Firewall.Rule for a rule that does not
// exist.
var ErrNotFound = errors.New("not found")

// ErrFileInUse is wrapped by Files implementations when a process holds a
// file that has to be replaced or deleted (Windows' "Access is denied" or
// sharing violation for a running executable).
var ErrFileInUse = errors.New("the file is in use by a process")

// ErrUnsupported is wrapped by backends for an API the host lacks.
var ErrUnsupported = errors.New("not supported on this host")

// Certificates is the host's LocalMachine Root certificate store (the
// trusted root CAs). Certificates are named by thumbprint
// (wicdapi.Thumbprint).
type Certificates interface {
	// HasRoot reports whether the store holds the certificate.
	HasRoot(ctx context.Context, thumbprint string) (bool, error)
	// AddRoot imports a DER certificate; one already there is not an
	// error.
	AddRoot(ctx context.Context, der []byte) error
	// DeleteRoot removes the certificate; a missing one is not an error.
	DeleteRoot(ctx context.Context, thumbprint string) error
}

// Backend is everything the agent needs from a host.
type Backend struct {
	Services Services
	Files    Files
	System   System
	Network  Network
	Locker   Locker
	Exec     Exec
	Firewall Firewall
	Defender Defender
	Accounts Accounts
	// Certificates is the LocalMachine Root store.
	Certificates Certificates
	// Executable is the path of the running agent binary.
	Executable string
	// Version of the agent, reported by `wicd version` and facts.
	Version string
	// OS and Arch reported by `wicd version`.
	OS, Arch string
}

func (b *Backend) validate() error {
	if b.Services == nil || b.Files == nil || b.System == nil || b.Network == nil || b.Locker == nil ||
		b.Exec == nil || b.Firewall == nil || b.Defender == nil || b.Accounts == nil || b.Certificates == nil {
		return errors.New("wicd: backend is incomplete")
	}
	return nil
}
