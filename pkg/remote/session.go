package remote

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/crypto/ssh"
)

// errKeepaliveTimeout is recorded as the connection's failure when the peer
// stops answering keepalives.
var errKeepaliveTimeout = errors.New("keepalive unanswered")

// sshSession implements Session over one x/crypto/ssh client connection.
type sshSession struct {
	client    *ssh.Client
	conn      *trackedConn
	addr      string
	hostKey   string
	hash      HashFunc
	maxOutput int

	closed atomic.Bool
	done   chan struct{} // closed when the SSH connection has ended

	sftpOpen chan struct{} // a one-slot semaphore serialising SFTP channel opens
	mu       sync.Mutex
	sftp     *sftpConn // guarded by mu; nil until first use or after a failure

	uploads pathLocks
}

var _ Session = (*sshSession)(nil)

func newSession(client *ssh.Client, conn *trackedConn, addr, hostKey string, d *SSHDialer) *sshSession {
	s := &sshSession{
		client:    client,
		conn:      conn,
		addr:      addr,
		hostKey:   hostKey,
		hash:      d.Hash,
		maxOutput: d.MaxOutput,
		done:      make(chan struct{}),
		sftpOpen:  make(chan struct{}, 1),
	}
	if s.maxOutput <= 0 {
		s.maxOutput = DefaultMaxOutput
	}
	go func() {
		_ = client.Wait()
		conn.fail(errConnectionEnded)
		close(s.done)
	}()
	interval, timeout := d.KeepaliveInterval, d.KeepaliveTimeout
	if interval == 0 {
		interval = DefaultKeepaliveInterval
	}
	if timeout <= 0 {
		timeout = DefaultKeepaliveTimeout
	}
	if interval > 0 {
		go s.keepalive(interval, timeout)
	}
	return s
}

// errConnectionEnded marks a connection the SSH layer ended (for example
// after a disconnect message) without an I/O error.
var errConnectionEnded = errors.New("connection ended")

// HostKey implements Session.
func (s *sshSession) HostKey() string { return s.hostKey }

// Close implements Session.
func (s *sshSession) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.mu.Lock()
	sc := s.sftp
	s.sftp = nil
	s.mu.Unlock()
	if sc != nil {
		sc.abort()
	}
	s.conn.fail(ErrSessionClosed)
	_ = s.client.Close()
	return nil
}

// keepalive sends keepalive@openssh.com global requests and closes the
// connection when one goes unanswered for timeout. Any answer, including a
// refusal (OpenSSH refuses this request), proves the peer alive.
func (s *sshSession) keepalive(interval, timeout time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timer := time.NewTimer(timeout)
		select {
		case err := <-answered:
			timer.Stop()
			if err != nil {
				// The connection is already gone; Wait will report it.
				return
			}
		case <-timer.C:
			s.conn.fail(errKeepaliveTimeout)
			_ = s.client.Close()
			return
		case <-s.done:
			timer.Stop()
			return
		}
	}
}

// usable returns an error when the session can no longer be used.
func (s *sshSession) usable() error {
	if s.closed.Load() {
		return ErrSessionClosed
	}
	if err := s.conn.failure(); err != nil {
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	return nil
}

// opErr attributes err to a closed session or a lost connection when that
// is what caused it.
func (s *sshSession) opErr(err error) error {
	if err == nil || errors.Is(err, ErrSessionClosed) || errors.Is(err, ErrConnectionLost) {
		return err
	}
	if s.closed.Load() {
		return fmt.Errorf("%w: %w", ErrSessionClosed, err)
	}
	if cause := s.conn.failure(); cause != nil {
		if errors.Is(cause, errKeepaliveTimeout) {
			return fmt.Errorf("%w (%w): %w", ErrConnectionLost, cause, err)
		}
		return fmt.Errorf("%w: %w", ErrConnectionLost, err)
	}
	return err
}

// Run implements Session.
func (s *sshSession) Run(ctx context.Context, argv []string) (Result, error) {
	cmd, err := commandLine(argv)
	if err != nil {
		return Result{}, fmt.Errorf("run: %w", err)
	}
	prog := argv[0]
	if err := s.usable(); err != nil {
		return Result{}, fmt.Errorf("run %s: %w", prog, err)
	}
	log := logr.FromContextOrDiscard(ctx)
	log.V(4).Info("Running command", "address", s.addr, "command", cmd)

	stdout := &cappedBuffer{max: s.maxOutput}
	stderr := &cappedBuffer{max: s.maxOutput}

	// x/crypto's session calls take no context: run them in a goroutine
	// and close the channel when ctx ends, which makes the host end the
	// command and unblocks the goroutine.
	var (
		mu        sync.Mutex
		sess      *ssh.Session
		abandoned bool
	)
	finished := make(chan error, 1)
	go func() {
		ss, err := s.client.NewSession()
		if err != nil {
			finished <- err
			return
		}
		mu.Lock()
		if abandoned {
			mu.Unlock()
			_ = ss.Close()
			return
		}
		sess = ss
		mu.Unlock()
		ss.Stdout = stdout
		ss.Stderr = stderr
		err = ss.Run(cmd)
		_ = ss.Close()
		finished <- err
	}()

	select {
	case err = <-finished:
	case <-ctx.Done():
		mu.Lock()
		abandoned = true
		if sess != nil {
			// Close sends a channel-close message; it may block on a
			// stalled connection, so do not wait for it.
			go func() { _ = sess.Close() }()
		}
		mu.Unlock()
		return Result{}, fmt.Errorf("run %s: %w", prog, ctx.Err())
	}

	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exitErr *ssh.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		if exitErr.Signal() != "" {
			return res, fmt.Errorf("run %s: killed by signal %s", prog, exitErr.Signal())
		}
		res.ExitCode = exitErr.ExitStatus()
	default:
		return res, fmt.Errorf("run %s: %w", prog, s.opErr(err))
	}
	log.V(4).Info("Command finished", "address", s.addr, "command", cmd, "exitCode", res.ExitCode,
		"stdout", truncateForLog(res.Stdout), "stderr", truncateForLog(res.Stderr))
	if stdout.overflow || stderr.overflow {
		return res, fmt.Errorf("run %s: output exceeds %d bytes", prog, s.maxOutput)
	}
	return res, nil
}

// cappedBuffer keeps the first max bytes written to it and discards the
// rest, so a chatty program cannot exhaust memory yet never blocks.
type cappedBuffer struct {
	mu       sync.Mutex
	buf      []byte
	max      int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - len(b.buf)
	if len(p) > room {
		b.overflow = true
		b.buf = append(b.buf, p[:max(room, 0)]...)
	} else {
		b.buf = append(b.buf, p...)
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf
}

func truncateForLog(b []byte) string {
	const limit = 4096
	if len(b) > limit {
		return string(b[:limit]) + "...(truncated)"
	}
	return string(b)
}

// await runs fn in a goroutine and returns its result, or ctx's error as
// soon as ctx is done; a result that arrives after that is passed to
// discard so that it is not leaked.
func await[T any](ctx context.Context, fn func() (T, error), discard func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.err == nil {
				discard(r.v)
			}
		}()
		var zero T
		return zero, ctx.Err()
	}
}

// pathLocks serialises uploads to the same destination within a session.
type pathLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{}
}

// lock waits until no other holder has key and takes it. The returned
// function releases it.
func (l *pathLocks) lock(ctx context.Context, key string) (func(), error) {
	key = strings.ToUpper(key)
	for {
		l.mu.Lock()
		if l.held == nil {
			l.held = make(map[string]chan struct{})
		}
		wait, busy := l.held[key]
		if !busy {
			released := make(chan struct{})
			l.held[key] = released
			l.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					l.mu.Lock()
					delete(l.held, key)
					l.mu.Unlock()
					close(released)
				})
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Alive reports whether s can still be used as far as it knows: false once
// it was closed, or once its connection failed (an I/O error, the host
// closing it, an unanswered keepalive). A connection that died silently is
// only found out by the next operation. Sessions of other implementations
// are taken to be alive.
func Alive(s Session) bool {
	if u, ok := s.(interface{ usable() error }); ok {
		return u.usable() == nil
	}
	return true
}
