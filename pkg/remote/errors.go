package remote

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/openwmco/wmco/pkg/hostaddr"
)

// ErrConnectionLost is wrapped by errors from operations on a Session whose
// SSH connection died (peer closed it, keepalives went unanswered, the
// network failed). The Session is unusable; dial again.
var ErrConnectionLost = errors.New("ssh connection lost")

// ErrSessionClosed is wrapped by errors from operations on a Session after
// its Close method was called.
var ErrSessionClosed = errors.New("session closed")

// AuthError reports that the host did not accept our credentials, or that
// the credentials could not be used at all (an unparsable or
// passphrase-protected private key); Cause tells which. Retrying with the
// same Target will fail the same way.
type AuthError struct {
	// Address is the host:port dialled.
	Address string
	// User is the SSH user name.
	User string
	// Cause is what failed: the zero value, AuthKeyRefused, is the host
	// refusing the key (or the user).
	Cause AuthCause
	// Reason says in words what went wrong. It never contains key material.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// AuthCause is why an authentication failed.
type AuthCause int

const (
	// AuthKeyRefused is the host not accepting the key for the user.
	AuthKeyRefused AuthCause = iota
	// AuthKeyUnusable is a private key that cannot be used at all
	// (unparsable, passphrase-protected, an unsupported type); the host
	// was not contacted.
	AuthKeyUnusable
	// AuthPublicKeyNotOffered is a host that does not offer public key
	// authentication (its sshd configuration).
	AuthPublicKeyNotOffered
	// AuthMoreMethodsRequired is a host that accepted the key but requires
	// further authentication methods (its sshd's AuthenticationMethods).
	AuthMoreMethodsRequired
)

// Error implements error.
func (e *AuthError) Error() string {
	msg := fmt.Sprintf("ssh authentication as %q to %s failed: %s", e.User, e.Address, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *AuthError) Unwrap() error { return e.Err }

// HostKeyMismatchError reports that the host presented a key other than the
// pinned one. No command was run and nothing was transferred: the check
// happens during the key exchange, before authentication.
type HostKeyMismatchError struct {
	// Address is the host:port dialled.
	Address string
	// Expected is the SHA256 fingerprint of the pinned key
	// ("SHA256:..." as ssh-keygen -l prints it).
	Expected string
	// Actual is the SHA256 fingerprint of the key the host presented.
	Actual string
	// ActualKey is the presented public key in authorized_keys format, so an
	// administrator can review it and re-pin deliberately. Public keys are
	// not secret.
	ActualKey string
}

// Error implements error.
func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key mismatch for %s: expected %s, host presented %s", e.Address, e.Expected, e.Actual)
}

// UnreachableError reports that no SSH conversation could be had with the
// host: DNS failure, connection refused or timed out, or the connection
// broke before the handshake completed. It is usually transient.
type UnreachableError struct {
	// Address is the host:port dialled.
	Address string
	// Err is the underlying network or context error.
	Err error
}

// Error implements error.
func (e *UnreachableError) Error() string {
	return fmt.Sprintf("host %s unreachable: %v", e.Address, e.Err)
}

// Unwrap returns the underlying error.
func (e *UnreachableError) Unwrap() error { return e.Err }

// ForbiddenAddressError reports a host the operator never connects to:
// its address, or an address its name resolves to, is link-local (the
// cloud instance metadata service at 169.254.169.254 among them),
// multicast, unspecified or broadcast; see pkg/hostaddr. Dial returns it
// before any connection is attempted. Retrying fails the same way until
// the address (or what its name resolves to) changes.
type ForbiddenAddressError struct {
	// Address is the host:port dialled.
	Address string
	// Err names the refused IP address and says why it is refused.
	Err *hostaddr.ForbiddenError
}

// Error implements error.
func (e *ForbiddenAddressError) Error() string {
	host, _, _ := net.SplitHostPort(e.Address)
	if ip, err := netip.ParseAddr(host); err == nil && ip.WithZone("").Unmap().String() == e.Err.Addr {
		return fmt.Sprintf("refusing to connect to %s: %s", e.Address, e.Err.Reason)
	}
	return fmt.Sprintf("refusing to connect to %s: the name resolves to %s, and %s", e.Address, e.Err.Addr, e.Err.Reason)
}

// Unwrap returns the *hostaddr.ForbiddenError.
func (e *ForbiddenAddressError) Unwrap() error { return e.Err }

// DiskFullError reports that the host's file system has no room for a file
// being written.
type DiskFullError struct {
	// Path is the Windows path being written.
	Path string
	// Free is the free space the host reported in bytes, or -1 when unknown.
	Free int64
	// Needed is how many more bytes the write needed, or -1 when unknown.
	Needed int64
	// Err is the SFTP status error that signalled the condition.
	Err error
}

// Error implements error.
func (e *DiskFullError) Error() string {
	msg := fmt.Sprintf("disk full writing %s", e.Path)
	if e.Free >= 0 && e.Needed >= 0 {
		msg += fmt.Sprintf(" (%d bytes free, %d needed)", e.Free, e.Needed)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *DiskFullError) Unwrap() error { return e.Err }

// ArgvError reports an argument vector that Run refuses to send because a
// Windows shell could interpret it. See CheckArgv.
type ArgvError struct {
	// Index is the offending argument's position in argv, or -1 when the
	// vector as a whole is at fault (empty, too long).
	Index int
	// Reason says what is wrong. It names the offending character and its
	// byte offset, never the whole argument.
	Reason string
}

// Error implements error.
func (e *ArgvError) Error() string {
	if e.Index < 0 {
		return "invalid argv: " + e.Reason
	}
	return fmt.Sprintf("invalid argv[%d]: %s", e.Index, e.Reason)
}

// InvalidPathError reports a path that is not an acceptable absolute Windows
// path. See NormalizePath.
type InvalidPathError struct {
	// Path is the path as given.
	Path string
	// Reason says what is wrong with it.
	Reason string
}

// Error implements error.
func (e *InvalidPathError) Error() string {
	return fmt.Sprintf("invalid windows path %q: %s", e.Path, e.Reason)
}
