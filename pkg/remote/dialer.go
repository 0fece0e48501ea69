package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/hostaddr"
)

// Dialer opens sessions to Windows hosts.
type Dialer interface {
	// Dial connects and authenticates to the host described by t. It
	// returns *UnreachableError, *AuthError, *HostKeyMismatchError or
	// *ForbiddenAddressError (before any connection is attempted) for the
	// failures a caller has to tell apart, and honours ctx's deadline and
	// cancellation for the whole connection set-up.
	Dial(ctx context.Context, t Target) (Session, error)
}

// Session is an authenticated connection to one host. One TCP connection
// carries every operation; the SFTP channel is opened on first use and
// reused. Methods are safe for concurrent use. Every method taking a
// context returns promptly once the context is done.
type Session interface {
	// HostKey returns the key the host presented, in authorized_keys format
	// ("ssh-ed25519 AAAA..."), for pinning after trust on first use.
	HostKey() string
	// Run executes a program with fixed arguments and returns its output and
	// exit code. A non-zero exit code is not an error. argv is checked with
	// CheckArgv before anything is sent; a refused vector yields *ArgvError.
	// Cancelling ctx closes the channel, which ends the remote command.
	Run(ctx context.Context, argv []string) (Result, error)
	// Upload writes size bytes read from r to the Windows path dst, creating
	// parent directories. The content is written under a temporary name
	// beside dst, its size and SHA-256 (sha256hex) are verified on the host,
	// and only then is it renamed over dst. On any failure, including
	// cancellation and a dropped connection, dst is left as it was and the
	// temporary file is removed when the host can still be reached (a
	// later Upload to the same dst reuses and replaces it otherwise).
	// A full disk yields *DiskFullError; a checksum mismatch an error
	// wrapping ErrChecksumMismatch. r is not read after Upload returns (a
	// Read in progress when ctx ends is waited for). Uploads to one dst
	// through one Session are serialised. The bytes read from r are
	// hashed too, so that a source that does not match sha256hex fails
	// before the host is asked, unless r is a VerifiedSource vouching for
	// sha256hex.
	Upload(ctx context.Context, dst string, r io.Reader, size int64, sha256hex string) error
	// Stat describes the file or directory at path. A missing file yields an
	// error wrapping fs.ErrNotExist.
	Stat(ctx context.Context, path string) (fs.FileInfo, error)
	// ReadFile returns the content of a small file, refusing files larger
	// than maxSize bytes with an error wrapping ErrFileTooLarge.
	ReadFile(ctx context.Context, path string, maxSize int64) ([]byte, error)
	// Remove deletes a file or an empty directory. Removing a path that
	// does not exist succeeds.
	Remove(ctx context.Context, path string) error
	// Close ends the session and its connection. It is idempotent.
	Close() error
}

// Result is the outcome of a program run by Session.Run.
type Result struct {
	// Stdout and Stderr are the program's output streams.
	Stdout, Stderr []byte
	// ExitCode is the program's exit status. Windows exit codes are 32-bit
	// unsigned; NTSTATUS failures such as 0xC0000005 appear as large
	// positive numbers.
	ExitCode int
}

// HashFunc returns the lower-case hex SHA-256 of the file at path (a
// canonical Windows path) as computed on the host. Upload calls it to verify
// the temporary file before renaming it into place. It may use the session
// it is given, for example to run an agent that hashes the file locally.
type HashFunc func(ctx context.Context, s Session, path string) (string, error)

// Defaults for SSHDialer's zero fields.
const (
	DefaultDialTimeout       = 30 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultKeepaliveTimeout  = 45 * time.Second
	DefaultMaxOutput         = 16 << 20
)

// SSHDialer dials hosts with golang.org/x/crypto/ssh. The zero value is
// ready to use.
type SSHDialer struct {
	// DialTimeout bounds Dial (TCP connect, key exchange and
	// authentication) when ctx has no earlier deadline, so that a caller
	// that forgot one cannot hang on a silent peer. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// KeepaliveInterval is how often a keepalive@openssh.com request is
	// sent on an open session. Zero means DefaultKeepaliveInterval; a
	// negative value disables keepalives.
	KeepaliveInterval time.Duration
	// KeepaliveTimeout is how long a keepalive may go unanswered before the
	// connection is declared dead and closed; operations then fail with
	// ErrConnectionLost. Zero means DefaultKeepaliveTimeout. A large
	// upload over a slow link delays the answer, so keep it generous.
	KeepaliveTimeout time.Duration
	// Hash computes file hashes on the host for Upload's verification. Nil
	// reads the file back over SFTP and hashes it locally.
	Hash HashFunc
	// MaxOutput caps each of Run's stdout and stderr, in bytes; output
	// beyond it is discarded and Run returns an error. Zero means
	// DefaultMaxOutput.
	MaxOutput int
	// LookupIP resolves a host name to the IP addresses Dial checks and
	// connects to. Nil means net.DefaultResolver.LookupNetIP(ctx, "ip",
	// host).
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

	// dialContext opens the TCP connection; nil means a net.Dialer. Tests
	// set it (export_test.go) to see every connection attempted.
	dialContext func(ctx context.Context, network, address string) (net.Conn, error)
}

var _ Dialer = (*SSHDialer)(nil)

// clientVersion identifies us in the SSH banner.
const clientVersion = "SSH-2.0-wmco"

// Dial implements Dialer.
func (d *SSHDialer) Dial(ctx context.Context, t Target) (Session, error) {
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("dial %s: %w", t, err)
	}
	addr := t.hostPort()
	log := logr.FromContextOrDiscard(ctx).WithValues("address", addr, "user", t.Username)
	timeout := d.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// Before anything else reaches the network: the address, or every
	// address its name resolves to, must be one the operator may connect
	// to. The checked addresses are what is dialled, so a second lookup
	// cannot answer differently.
	ips, err := d.resolve(ctx, t, addr)
	if err != nil {
		return nil, err
	}

	var pinned ssh.PublicKey
	if t.HostKey != "" {
		k, err := parseHostKey(t.HostKey)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", t, err)
		}
		pinned = k
	}
	signer, err := parseSigner(t.PrivateKey)
	if err != nil {
		return nil, &AuthError{Address: addr, User: t.Username, Cause: AuthKeyUnusable, Reason: err.Error()}
	}

	log.V(2).Info("Dialing host", "ips", ips)
	raw, err := d.connect(ctx, ips, t.port())
	if err != nil {
		return nil, &UnreachableError{Address: addr, Err: err}
	}
	conn := &trackedConn{Conn: raw}

	hk := &hostKeyCheck{address: addr, pinned: pinned}
	cfg := &ssh.ClientConfig{
		User:              t.Username,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hostKeyAlgorithms(pinned),
		ClientVersion:     clientVersion,
		AuthCallback: func(ac *ssh.ClientAuthContext) (ssh.AuthMethod, error) {
			return authNext(ac, conn, addr, t.Username)
		},
	}

	// The handshake has no context parameter: bound it with the deadline
	// and close the socket if ctx is cancelled.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	cancelled := !stop()
	if err != nil {
		return nil, classifyHandshake(ctx, addr, conn, hk, err)
	}
	if cancelled {
		_ = c.Close()
		return nil, &UnreachableError{Address: addr, Err: ctx.Err()}
	}
	_ = conn.SetDeadline(time.Time{})

	s := newSession(ssh.NewClient(c, chans, reqs), conn, addr, hk.seenKey(), d)
	log.V(2).Info("Connected to host", "hostKey", s.hostKey)
	return s, nil
}

// resolve returns the IP addresses to dial for t, each checked with
// hostaddr.CheckIP: the address itself when it is an IP address, else what
// its name resolves to. One refused address refuses the host, whichever
// of its addresses it is (*ForbiddenAddressError); a failed lookup is
// *UnreachableError. addr is t's host:port, for errors.
func (d *SSHDialer) resolve(ctx context.Context, t Target, addr string) ([]netip.Addr, error) {
	host := t.host()
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := hostaddr.CheckIP(ip); err != nil {
			return nil, forbiddenAddress(addr, err)
		}
		return []netip.Addr{ip}, nil
	}
	lookup := d.LookupIP
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	ips, err := lookup(ctx, host)
	if err == nil && len(ips) == 0 {
		err = fmt.Errorf("name %s resolves to no address", host)
	}
	if err != nil {
		return nil, &UnreachableError{Address: addr, Err: err}
	}
	for _, ip := range ips {
		if err := hostaddr.CheckIP(ip); err != nil {
			return nil, forbiddenAddress(addr, err)
		}
	}
	return ips, nil
}

// forbiddenAddress wraps CheckIP's error for the host:port addr.
func forbiddenAddress(addr string, err error) error {
	var fe *hostaddr.ForbiddenError
	if !errors.As(err, &fe) {
		// CheckIP refuses a valid address only with a ForbiddenError.
		return fmt.Errorf("check address of %s: %w", addr, err)
	}
	return &ForbiddenAddressError{Address: addr, Err: fe}
}

// minAttempt is the least time a connection attempt to one of several
// addresses is given, as net.Dialer does.
const minAttempt = 2 * time.Second

// connect opens a TCP connection to the first of ips that accepts one on
// port, sharing what is left of ctx's deadline among the addresses still
// to try. It returns the first error when none accepts.
func (d *SSHDialer) connect(ctx context.Context, ips []netip.Addr, port int) (net.Conn, error) {
	dial := d.dialContext
	if dial == nil {
		var nd net.Dialer
		dial = nd.DialContext
	}
	var first error
	for i, ip := range ips {
		attemptCtx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && i < len(ips)-1 {
			share := max(time.Until(dl)/time.Duration(len(ips)-i), minAttempt)
			attemptCtx, cancel = context.WithTimeout(ctx, share)
		}
		conn, err := dial(attemptCtx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		cancel()
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// parseSigner parses an unencrypted RSA, ECDSA or Ed25519 private key. Its
// errors never contain key material.
func parseSigner(key []byte) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, errors.New("private key is passphrase-protected; an unencrypted key is required")
		}
		// x/crypto's parse errors describe the encoding, not the content.
		return nil, fmt.Errorf("private key is not a usable RSA, ECDSA or Ed25519 key in PEM or OpenSSH format: %v", err) //nolint:errorlint // x/crypto's parse error is text for the user, not an error to match
	}
	switch signer.PublicKey().Type() {
	case ssh.KeyAlgoRSA, ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return signer, nil
	default:
		return nil, fmt.Errorf("private key type %s is not supported; use RSA, ECDSA or Ed25519", signer.PublicKey().Type())
	}
}

// authNext is the ClientAuthCallback: it lets x/crypto try our public key
// and turns the outcome into a typed error, so that authentication failures
// are recognised without matching x/crypto's error strings.
func authNext(ac *ssh.ClientAuthContext, conn *trackedConn, addr, user string) (ssh.AuthMethod, error) {
	if err := conn.failure(); err != nil {
		// The attempt failed because the connection broke, not because
		// the host judged the key.
		return nil, &UnreachableError{Address: addr, Err: err}
	}
	const method = "publickey"
	switch {
	case slices.Contains(ac.PartialSuccessMethods, method):
		return nil, &AuthError{Address: addr, User: user, Cause: AuthMoreMethodsRequired, Reason: "host accepted the key but requires further authentication methods: " + strings.Join(ac.AllowedMethods, ",")}
	case slices.Contains(ac.TriedMethods, method):
		return nil, &AuthError{Address: addr, User: user, Cause: AuthKeyRefused, Reason: "host rejected the public key"}
	case !slices.Contains(ac.AllowedMethods, method):
		return nil, &AuthError{Address: addr, User: user, Cause: AuthPublicKeyNotOffered, Reason: "host does not offer public key authentication (offers " + strings.Join(ac.AllowedMethods, ",") + ")"}
	}
	return nil, nil // try config.Auth: our key
}

// classifyHandshake maps a failed SSH handshake to the typed errors.
func classifyHandshake(ctx context.Context, addr string, conn *trackedConn, hk *hostKeyCheck, err error) error {
	if mm := hk.mismatch(); mm != nil {
		return mm
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return &UnreachableError{Address: addr, Err: ctxErr}
	}
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return ue
	}
	if isNetworkError(err) || conn.failure() != nil {
		return &UnreachableError{Address: addr, Err: err}
	}
	return fmt.Errorf("ssh handshake with %s: %w", addr, err)
}

func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// hostKeyCheck is the HostKeyCallback: it pins or records the host key.
type hostKeyCheck struct {
	address string
	pinned  ssh.PublicKey

	mu   sync.Mutex
	seen ssh.PublicKey
	mm   *HostKeyMismatchError
}

func (h *hostKeyCheck) check(_ string, _ net.Addr, key ssh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = key
	}
	if h.pinned != nil && !bytes.Equal(key.Marshal(), h.pinned.Marshal()) {
		h.mm = &HostKeyMismatchError{
			Address:   h.address,
			Expected:  ssh.FingerprintSHA256(h.pinned),
			Actual:    ssh.FingerprintSHA256(key),
			ActualKey: marshalHostKey(key),
		}
		return h.mm
	}
	return nil
}

func (h *hostKeyCheck) mismatch() *HostKeyMismatchError {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mm
}

func (h *hostKeyCheck) seenKey() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return marshalHostKey(h.seen)
}

// trackedConn remembers the first I/O failure of the connection, so that
// errors surfacing in channels can be attributed to a dead connection.
type trackedConn struct {
	net.Conn
	err atomic.Pointer[error]
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.fail(err)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.fail(net.ErrClosed)
	return c.Conn.Close()
}

// fail records err unless a failure is already recorded.
func (c *trackedConn) fail(err error) { c.err.CompareAndSwap(nil, &err) }

// failure returns the first recorded failure or nil.
func (c *trackedConn) failure() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// ReadBackHash is the HashFunc used when SSHDialer.Hash is nil: it streams
// the file back over SFTP and hashes it locally. A custom HashFunc (one
// that asks an agent on the host) can fall back to it.
func ReadBackHash(ctx context.Context, s Session, path string) (string, error) {
	ss, ok := s.(*sshSession)
	if !ok {
		return "", fmt.Errorf("read back %s: not an SSH session", path)
	}
	return ss.readBackSHA256(ctx, path)
}

// VerifiedSource is an upload source whose content is known to hash to
// VerifiedSHA256 (hex), e.g. a payload file checked when the payload was
// loaded and unchanged since: Upload then does not hash what it reads
// again. The host still hashes what it received, so a source that does not
// hold what it vouches for fails with ErrChecksumMismatch all the same,
// blamed on the host's copy.
type VerifiedSource interface {
	io.Reader
	VerifiedSHA256() string
}
