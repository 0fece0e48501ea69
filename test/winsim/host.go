package winsim

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// Well-known Windows Server builds.
const (
	BuildServer2019 = 17763
	BuildServer2022 = 20348
	BuildServer2025 = 26100
)

// ErrClosed is returned by methods of a Host after Close.
var ErrClosed = errors.New("winsim: host closed")

// ErrInvalidComputerName is Windows' ERROR_INVALID_COMPUTERNAME, returned
// by SetHostname for a name Windows refuses as a DNS host name.
var ErrInvalidComputerName = errors.New("The format of the specified computer name is invalid.")

// validDNSHostname is what SetComputerNameEx accepts as a DNS host name:
// 1 to 63 letters, digits and hyphens, not only digits.
func validDNSHostname(name string) bool {
	if name == "" || len(name) > 63 {
		return false
	}
	digits := true
	for _, r := range name {
		switch {
		case r >= '0' && r <= '9':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-':
			digits = false
		default:
			return false
		}
	}
	return !digits
}

// ErrNotUp is returned by Reboot when the host is already down.
var ErrNotUp = errors.New("winsim: host is not up")

// Options configures a Host. The zero value is a Windows Server 2022 host
// named after its port, listening on 127.0.0.1.
type Options struct {
	// Hostname is the computer name; default "WINSIM-<port>".
	Hostname string
	// Accounts are the host's local accounts, the only users sshd lets
	// in; default Administrator alone. An image whose built-in
	// Administrator is disabled (Azure's) lists only its own account,
	// e.g. "capi". AddAccount, SetAdmin and AuthorizeKey add more.
	Accounts []string
	// OSBuild is the Windows build number, e.g. BuildServer2019 (17763),
	// BuildServer2022 (20348, the default) or BuildServer2025 (26100).
	OSBuild int
	// IPAddresses are the host's addresses as programs report them;
	// default the listen address.
	IPAddresses []netip.Addr
	// ListenAddress is where the SSH server listens; default
	// "127.0.0.1:0" (a random port). Use "[::1]:0" for IPv6.
	ListenAddress string
	// HostKeys are the SSH host keys; default one fresh Ed25519 key.
	HostKeys []ssh.Signer
	// DiskQuota is the C: drive's capacity in bytes; default
	// DefaultDiskQuota.
	DiskQuota int64
	// ReportNoSpace makes the SFTP server report a full disk with status
	// SSH_FX_NO_SPACE_ON_FILESYSTEM (14), as servers implementing later
	// SFTP drafts do. By default it behaves like Win32-OpenSSH, which
	// speaks SFTP version 3 and reports ERROR_DISK_FULL as SSH_FX_FAILURE
	// (4); in both cases the message is Windows' "There is not enough space
	// on the disk." and statvfs@openssh.com reports the free space.
	ReportNoSpace bool
	// DisablePosixRename makes posix-rename@openssh.com requests fail with
	// SSH_FX_OP_UNSUPPORTED, to exercise clients' fallback for servers
	// without it. (pkg/sftp still advertises the extension.)
	DisablePosixRename bool
	// Logger receives the host's diagnostics; default discard.
	Logger *slog.Logger
}

// State is a host's power state.
type State int

// Host states.
const (
	StateUp     State = iota // accepting connections
	StateDown                // rebooting: connections refused
	StateClosed              // Close was called
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case StateUp:
		return "Up"
	case StateDown:
		return "Down"
	case StateClosed:
		return "Closed"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Facts are what a host knows about itself, for programs to report.
type Facts struct {
	Hostname    string
	OSBuild     int
	IPAddresses []netip.Addr
	// BootTime is when the host last came up.
	BootTime time.Time
}

// Stats are the host's counters since Start.
type Stats struct {
	// BytesReceived and BytesSent count TCP payload bytes delivered in
	// each direction, after shaping.
	BytesReceived, BytesSent int64
	// Connections counts SSH connections that completed the handshake
	// and authentication.
	Connections int64
	// Sessions counts session channels opened.
	Sessions int64
	// Commands counts exec requests, including unknown programs.
	Commands int64
	// AuthFailures counts connections rejected during authentication.
	AuthFailures int64
	// Boots counts boots after Start (that is, completed reboots).
	Boots int64
}

// Component is a part of the simulated host that lives and dies with it,
// such as a service manager. The host calls Boot when the component is
// added to a running host and every time the host comes back up, and
// Shutdown when the host goes down or is closed. Calls are made one at a
// time, never concurrently with a power transition; they must not call the
// host's Reboot, Close or AddComponent.
type Component interface {
	// Boot starts the component. ctx is cancelled when the host shuts
	// down; work that should die with the host can run under it.
	Boot(ctx context.Context) error
	// Shutdown stops the component before the host goes down. ctx bounds
	// how long it may take.
	Shutdown(ctx context.Context) error
}

// Host is one simulated Windows machine. Its methods are safe for
// concurrent use.
type Host struct {
	opts     Options
	log      *slog.Logger
	addr     string // listen address with the port fixed
	disk     *Disk
	nw       *network
	base     context.Context // cancelled by Close
	stop     context.CancelFunc
	unwatch  func() bool // stops watching Start's context; guarded by mu
	stopOnce sync.Once
	closedCh chan struct{}

	refuseAuth atomic.Bool
	// passwordOnly: sshd offers password authentication only
	// (PubkeyAuthentication no).
	passwordOnly atomic.Bool

	// lifecycle serialises power transitions and component calls.
	lifecycle sync.Mutex

	mu       sync.Mutex
	state    State
	upCh     chan struct{} // closed when the host is up
	ln       net.Listener
	boot     *bootSession
	bootTime time.Time
	// pendingHostname takes effect at the next boot (SetHostname); ""
	// when none is pending.
	pendingHostname string
	hostKeys        []ssh.Signer
	nonAdmins       map[string]bool              // by lower-case user name (SetAdmin)
	accounts        map[string]bool              // local accounts, by lower-case name
	programs        map[string]registeredProgram // by program key
	components      []Component
	processes       []*Process // started by StartProcess, until the next shutdown
	conns           map[*simConn]struct{}
	downTimer       *time.Timer

	// obs hears of requests as they run (Observe).
	obs observers

	received, sent                                       atomic.Int64
	connections, sessions, commands, authFailures, boots atomic.Int64
}

// bootSession is one boot of the host, from power-on to shutdown.
type bootSession struct {
	ctx     context.Context
	cancel  context.CancelFunc
	running sync.WaitGroup // programs started during this boot
}

// Start creates a host and starts its SSH server. The host runs until Close
// is called or ctx is done.
func Start(ctx context.Context, opts Options) (*Host, error) {
	if opts.ListenAddress == "" {
		opts.ListenAddress = "127.0.0.1:0"
	}
	if opts.OSBuild == 0 {
		opts.OSBuild = BuildServer2022
	}
	if opts.DiskQuota == 0 {
		opts.DiskQuota = DefaultDiskQuota
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.HostKeys) == 0 {
		k, err := NewHostKey()
		if err != nil {
			return nil, err
		}
		opts.HostKeys = []ssh.Signer{k}
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("winsim: listen: %w", err)
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("winsim: listen address: %w", err)
	}
	if opts.Hostname == "" {
		opts.Hostname = "WINSIM-" + strconv.Itoa(int(ap.Port()))
	}
	if len(opts.IPAddresses) == 0 {
		opts.IPAddresses = []netip.Addr{ap.Addr()}
	}

	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	h := &Host{
		opts:      opts,
		log:       opts.Logger.With("host", opts.Hostname),
		addr:      ap.String(),
		disk:      newDisk(opts.DiskQuota),
		base:      base,
		stop:      stop,
		closedCh:  make(chan struct{}),
		state:     StateUp,
		upCh:      make(chan struct{}),
		ln:        ln,
		bootTime:  time.Now(),
		hostKeys:  slices.Clone(opts.HostKeys),
		nonAdmins: map[string]bool{},
		accounts:  map[string]bool{},
		programs:  map[string]registeredProgram{},
		conns:     map[*simConn]struct{}{},
	}
	accounts := opts.Accounts
	if len(accounts) == 0 {
		// The built-in administrator exists on every Windows host
		// whose image does not disable it.
		accounts = []string{"Administrator"}
	}
	for _, a := range accounts {
		h.accounts[strings.ToLower(a)] = true
	}
	h.nw = &network{received: &h.received, sent: &h.sent}
	h.boot = newBootSession(base)
	close(h.upCh)
	go h.serve(ln)
	unwatch := context.AfterFunc(ctx, func() { _ = h.Close() })
	h.mu.Lock()
	h.unwatch = unwatch
	h.mu.Unlock()
	h.log.Info("Host started", "address", h.addr, "build", opts.OSBuild)
	return h, nil
}

func newBootSession(parent context.Context) *bootSession {
	ctx, cancel := context.WithCancel(parent)
	return &bootSession{ctx: ctx, cancel: cancel}
}

// NewHostKey generates an Ed25519 host key.
func NewHostKey() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("winsim: generate host key: %w", err)
	}
	return ssh.NewSignerFromKey(priv)
}

// Address returns the SSH server's address as "host:port".
func (h *Host) Address() string { return h.addr }

// IP returns the IP address the SSH server listens on.
func (h *Host) IP() string { return netip.MustParseAddrPort(h.addr).Addr().String() }

// Port returns the SSH server's port.
func (h *Host) Port() int { return int(netip.MustParseAddrPort(h.addr).Port()) }

// HostKey returns the first host key in authorized_keys format
// ("ssh-ed25519 AAAA..."), as a client would pin it.
func (h *Host) HostKey() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return authorizedKey(h.hostKeys[0].PublicKey())
}

// HostKeys returns all host keys in authorized_keys format.
func (h *Host) HostKeys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.hostKeys))
	for i, k := range h.hostKeys {
		out[i] = authorizedKey(k.PublicKey())
	}
	return out
}

func authorizedKey(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// SetHostKeys replaces the host keys. Connections made from now on see the
// new keys; established ones are unaffected.
func (h *Host) SetHostKeys(keys ...ssh.Signer) error {
	if len(keys) == 0 {
		return errors.New("winsim: at least one host key is required")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hostKeys = slices.Clone(keys)
	return nil
}

// RotateHostKey replaces the host keys with one fresh Ed25519 key, as a
// reinstalled machine would have, and returns it in authorized_keys format.
func (h *Host) RotateHostKey() (string, error) {
	k, err := NewHostKey()
	if err != nil {
		return "", err
	}
	if err := h.SetHostKeys(k); err != nil {
		return "", err
	}
	return authorizedKey(k.PublicKey()), nil
}

// Facts returns the host's facts.
func (h *Host) Facts() Facts {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Facts{
		Hostname:    h.opts.Hostname,
		OSBuild:     h.opts.OSBuild,
		IPAddresses: slices.Clone(h.opts.IPAddresses),
		BootTime:    h.bootTime,
	}
}

// SetHostname sets the computer name for the next boot, as
// SetComputerNameEx does on Windows: Facts().Hostname keeps the name in
// effect until the host boots again (Reboot). Setting the name in effect
// cancels a pending one. Names compare case-insensitively; the name is
// kept as given.
func (h *Host) SetHostname(name string) error {
	if !validDNSHostname(name) {
		return fmt.Errorf("winsim: computer name %q: %w", name, ErrInvalidComputerName)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state == StateClosed {
		return ErrClosed
	}
	if strings.EqualFold(name, h.opts.Hostname) {
		h.pendingHostname = ""
	} else {
		h.pendingHostname = name
	}
	h.log.Info("Computer name set for the next boot", "name", name)
	return nil
}

// PendingHostname is the computer name the host takes at its next boot,
// "" when none is pending.
func (h *Host) PendingHostname() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pendingHostname
}

// Disk returns the host's C: drive.
func (h *Host) Disk() *Disk { return h.disk }

// Stats returns a snapshot of the host's counters.
func (h *Host) Stats() Stats {
	return Stats{
		BytesReceived: h.received.Load(),
		BytesSent:     h.sent.Load(),
		Connections:   h.connections.Load(),
		Sessions:      h.sessions.Load(),
		Commands:      h.commands.Load(),
		AuthFailures:  h.authFailures.Load(),
		Boots:         h.boots.Load(),
	}
}

// DropAfter arms a one-shot fault: once n more bytes have crossed the
// host's network (both directions, all connections), the connection
// carrying the next byte is reset. A negative n disarms it.
func (h *Host) DropAfter(n int64) { h.nw.dropAfter(n) }

// ResetConnections resets every established connection, as reconfiguring
// the host's network adapters does (deleting an HNS network can); the SSH
// server goes on accepting new ones. Programs run by the reset
// connections see their context cancelled.
func (h *Host) ResetConnections() {
	h.mu.Lock()
	conns := make([]*simConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.abort()
	}
}

// RefuseAuth makes the SSH server reject every key (true) or check keys
// normally again (false).
func (h *Host) RefuseAuth(refuse bool) { h.refuseAuth.Store(refuse) }

// OfferPasswordOnly makes the SSH server offer password authentication
// only, as sshd with PubkeyAuthentication no does, and refuse every
// password; false offers public keys again.
func (h *Host) OfferPasswordOnly(on bool) { h.passwordOnly.Store(on) }

// SetBandwidth limits the host's network to bytesPerSecond in each
// direction, shared by all connections (a token bucket on the TCP
// streams). Zero or less removes the limit.
func (h *Host) SetBandwidth(bytesPerSecond int64) {
	h.nw.in.set(bytesPerSecond)
	h.nw.out.set(bytesPerSecond)
}

// SetLatency delays every byte by d in each direction (so a round trip
// takes 2d longer), without reducing throughput.
func (h *Host) SetLatency(d time.Duration) { h.nw.latency.Store(int64(max(d, 0))) }

// State returns the host's power state.
func (h *Host) State() State {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.state
}

// WaitUp blocks until the host is up, ctx is done or the host is closed.
func (h *Host) WaitUp(ctx context.Context) error {
	h.mu.Lock()
	up, state := h.upCh, h.state
	h.mu.Unlock()
	if state == StateClosed {
		return ErrClosed
	}
	select {
	case <-up:
		return nil
	case <-h.closedCh:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AddComponent attaches c to the host. If the host is up, c.Boot is called
// before AddComponent returns, and its error returned (c stays attached).
func (h *Host) AddComponent(c Component) error {
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	h.mu.Lock()
	if h.state == StateClosed {
		h.mu.Unlock()
		return ErrClosed
	}
	h.components = append(h.components, c)
	up := h.state == StateUp
	boot := h.boot
	h.mu.Unlock()
	if up {
		return c.Boot(boot.ctx)
	}
	return nil
}

// Reboot takes the host down and brings it back after downFor. Before
// Reboot returns, the host is down: every connection is reset, new
// connections are refused, the context of every running program is
// cancelled and the programs have returned (or ctx ended), and every
// component's Shutdown has been called (in reverse order of addition). The
// host then comes back in the background: components Boot in order of
// addition, then the SSH server accepts connections again on the same
// port. Use WaitUp or State to observe it.
func (h *Host) Reboot(ctx context.Context, downFor time.Duration) error {
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	h.mu.Lock()
	switch h.state {
	case StateClosed:
		h.mu.Unlock()
		return ErrClosed
	case StateDown:
		h.mu.Unlock()
		return ErrNotUp
	}
	h.log.Info("Rebooting", "downFor", downFor)
	err := h.shutdownLocked(ctx)
	h.downTimer = time.AfterFunc(downFor, h.powerOn)
	h.mu.Unlock()
	return err
}

// shutdownLocked takes the host down. Callers hold h.lifecycle and h.mu;
// h.mu is released while waiting and re-acquired before returning.
func (h *Host) shutdownLocked(ctx context.Context) error {
	h.state = StateDown
	h.upCh = make(chan struct{})
	ln := h.ln
	h.ln = nil
	boot := h.boot
	conns := make([]*simConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	comps := slices.Clone(h.components)
	h.exitProcesses()
	h.mu.Unlock()
	defer h.mu.Lock()

	if ln != nil {
		_ = ln.Close()
	}
	// Connections drop first, so that no client hears the exit status of
	// a program killed by the shutdown; then the programs stop.
	for _, c := range conns {
		c.abort()
	}
	boot.cancel()
	var errs []error
	for i := len(comps) - 1; i >= 0; i-- {
		if err := comps[i].Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("winsim: shutdown component %T: %w", comps[i], err))
		}
	}
	stopped := make(chan struct{})
	go func() {
		boot.running.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("winsim: programs still running: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// powerOn brings the host back after a reboot.
func (h *Host) powerOn() {
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	h.mu.Lock()
	if h.state != StateDown {
		h.mu.Unlock()
		return
	}
	boot := newBootSession(h.base)
	h.boot = boot
	h.bootTime = time.Now()
	if h.pendingHostname != "" {
		h.opts.Hostname, h.pendingHostname = h.pendingHostname, ""
	}
	comps := slices.Clone(h.components)
	h.mu.Unlock()

	for _, c := range comps {
		if err := c.Boot(boot.ctx); err != nil {
			h.log.Error("Component failed to boot", "component", fmt.Sprintf("%T", c), "err", err)
		}
	}

	// Take the same port again. Another process could have taken it
	// meanwhile; keep trying until it is free or the host is closed.
	var ln net.Listener
	for {
		var err error
		ln, err = net.Listen("tcp", h.addr)
		if err == nil {
			break
		}
		h.log.Error("Cannot listen again, retrying", "err", err)
		if !sleep(h.closedCh, 100*time.Millisecond) {
			return
		}
	}

	h.mu.Lock()
	if h.state != StateDown {
		h.mu.Unlock()
		_ = ln.Close()
		return
	}
	h.ln = ln
	h.state = StateUp
	close(h.upCh)
	h.boots.Add(1)
	h.mu.Unlock()
	h.log.Info("Host up")
	go h.serve(ln)
}

// Close powers the host off for good: the SSH server stops, connections are
// reset, programs are cancelled and components shut down. It waits for
// programs to return for at most ten seconds. Close is idempotent.
func (h *Host) Close() error {
	// Signal first: a pending power-on may be waiting for the port and
	// holds the lifecycle lock.
	h.stopOnce.Do(func() { close(h.closedCh) })
	h.lifecycle.Lock()
	defer h.lifecycle.Unlock()
	h.mu.Lock()
	if h.state == StateClosed {
		h.mu.Unlock()
		return nil
	}
	var err error
	if h.downTimer != nil {
		h.downTimer.Stop()
	}
	if h.state == StateUp {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = h.shutdownLocked(ctx)
		cancel()
	}
	h.state = StateClosed
	unwatch := h.unwatch
	h.mu.Unlock()
	h.stop()
	if unwatch != nil {
		unwatch()
	}
	h.log.Info("Host closed")
	return err
}
