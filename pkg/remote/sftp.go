package remote

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// ErrChecksumMismatch is wrapped by Upload's error when the content does not
// hash to the expected SHA-256, on the host or already at the source.
var ErrChecksumMismatch = errors.New("sha256 mismatch")

// ErrFileTooLarge is wrapped by ReadFile's error when the file exceeds the
// allowed size.
var ErrFileTooLarge = errors.New("file too large")

// SFTP status codes (draft-ietf-secsh-filexfer-13, section 9.1). OpenSSH,
// including Win32-OpenSSH, speaks version 3 and sends only codes 0-8; the
// higher codes come from servers that adopted later drafts.
const (
	fxFailure             = 4
	fxOpUnsupported       = 8
	fxNoSpaceOnFilesystem = 14
	fxQuotaExceeded       = 15
)

// tempSuffix names the temporary file an upload writes beside its
// destination. The name is fixed per destination so that a temporary file
// stranded by a dropped connection is truncated and reused by the next
// upload of the same file rather than accumulating.
const tempSuffix = ".wmco-upload"

// cleanupTimeout bounds the removal of a temporary file after a failed or
// cancelled upload.
const cleanupTimeout = 10 * time.Second

// sftpRequestsPerFile bounds the SFTP write requests one upload keeps
// outstanding: 12 of sftpMaxData are 1.5 MiB, so two uploads at once
// (the operator's payloadUploads) keep the channel's 2 MiB flow control
// window full (64 packets of 32 KiB, in OpenSSH and in
// golang.org/x/crypto/ssh alike) while the host answers the first ones.
// The operator holds no buffer per outstanding write (each goes to the
// channel before the next is read from the source), but pkg/sftp runs a
// goroutine per outstanding request.
const sftpRequestsPerFile = 12

// sshPacketData is the most data one SSH channel packet carries to an
// OpenSSH session channel (and to golang.org/x/crypto/ssh's): 32 KiB.
const sshPacketData = 32 << 10

// sftpMaxData is the most data one SFTP write request carries: the
// request with its header (at most 25 bytes and the handle, which SFTP
// limits to 256 bytes) is then at most 4 SSH packets (packetWriter), well
// within the 256 KiB message every OpenSSH sftp-server accepts
// (SFTP_MAX_MSG_LENGTH; pkg/sftp's server has the same limit). In a
// 50-host join, requests of 4 SSH packets rather than one took about
// 2.5 s less of the operator's CPU and 1 s less of the simulated hosts':
// a quarter of the requests to send, answer and track, and of the reads
// of the payload's files. Larger ones saved little more, and pkg/sftp
// holds a buffer of this size per upload.
//
// Reads do not use it: servers cap what one read returns (pkg/sftp's at
// 32 KiB, OpenSSH's sftp-server at 64 KiB before 8.6 and just under
// 256 KiB since), and pkg/sftp's concurrent reads take a short read for
// the end of the file. Reads are sequential (openSFTP), and each request
// takes what the server gives.
const sftpMaxData = 4*sshPacketData - 25 - 256

// packetWriter hands the SFTP client's packets to the SSH channel so that
// no SSH packet but a packet's last is short: pkg/sftp writes a packet's
// header and its data in two calls, and the channel makes at least one
// SSH packet of each call, so every write request cost a packet of about
// 40 bytes more, encrypted, sent and decrypted on its own (in a 50-host
// join, 240,000 of them). A packet of up to 32 KiB goes to the channel in
// one write; a larger one as its first 32 KiB (the header and the start
// of the data, copied here), then the rest straight from the caller's
// buffer. It holds at most 32 KiB, and relies on pkg/sftp writing packets
// one at a time (a mutex around each), never interleaved.
type packetWriter struct {
	w io.Writer
	// buf is the start of the current packet not written yet (fewer than
	// sshPacketData bytes), or the first bytes of its length.
	buf []byte
	// left is how many bytes of the current packet are still to come;
	// 0 between packets.
	left int
}

func (p *packetWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if p.left == 0 {
			// Between packets: read the length, in place when it is
			// whole here and nothing is pending.
			if len(p.buf) == 0 && len(b) >= 4 {
				p.left = 4 + int(binary.BigEndian.Uint32(b))
			} else {
				k := min(4-len(p.buf), len(b))
				p.buf = append(p.buf, b[:k]...)
				b = b[k:]
				if len(p.buf) < 4 {
					break
				}
				if p.left = int(binary.BigEndian.Uint32(p.buf)); p.left == 0 {
					if err := p.flush(); err != nil {
						return n, err
					}
					continue
				}
			}
		}
		take := min(len(b), p.left)
		if len(p.buf) > 0 {
			// Fill the pending start up to one SSH packet or the end
			// of the packet.
			k := min(take, sshPacketData-len(p.buf))
			p.buf = append(p.buf, b[:k]...)
			b, take, p.left = b[k:], take-k, p.left-k
			if p.left > 0 && len(p.buf) < sshPacketData {
				continue
			}
			if err := p.flush(); err != nil {
				return n, err
			}
			if p.left == 0 {
				continue
			}
		}
		// Nothing pending: whole SSH packets, or all up to the end of the
		// packet, go straight from b; a shorter rest waits.
		direct := take
		if direct < p.left {
			direct -= direct % sshPacketData
		}
		if direct > 0 {
			if _, err := p.w.Write(b[:direct]); err != nil {
				return n, err
			}
			b, take, p.left = b[direct:], take-direct, p.left-direct
		}
		p.buf = append(p.buf, b[:take]...)
		b, p.left = b[take:], p.left-take
	}
	return n, nil
}

// flush writes the pending bytes.
func (p *packetWriter) flush() error {
	_, err := p.w.Write(p.buf)
	p.buf = p.buf[:0]
	return err
}

// Close closes the channel's input.
func (p *packetWriter) Close() error {
	if c, ok := p.w.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// readBacksAtOnce bounds the read-backs (readBackSHA256) that run at once
// in the process, over all hosts. Each reads into a buffer of sftpMaxData,
// one request at a time, and allocates a fresh buffer for every packet it
// receives, twice (the SSH layer, then the SFTP layer); without the bound
// a join of many hosts reading back their agent binaries at once raised
// the operator's resident set by tens of MiB (when reads were concurrent).
// Read-backs are the last way to verify an upload (AgentHash), and
// hashing is bound by this process's CPU anyway.
const readBacksAtOnce = 4

// readBackSlots holds a token per read-back running.
var readBackSlots = make(chan struct{}, readBacksAtOnce)

// sftpConn is one SFTP channel on the session's connection.
type sftpConn struct {
	client *sftp.Client
	sess   *ssh.Session
	dead   chan struct{} // closed when the SFTP client stopped receiving
	once   sync.Once
}

func openSFTP(client *ssh.Client) (*sftpConn, error) {
	sess, err := client.NewSession()
	if err != nil {
		return nil, err
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		_ = sess.Close()
		return nil, err
	}
	c, err := sftp.NewClientPipe(stdout, &packetWriter{w: stdin}, sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(false),
		sftp.MaxConcurrentRequestsPerFile(sftpRequestsPerFile), sftp.MaxPacketUnchecked(sftpMaxData))
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	sc := &sftpConn{client: c, sess: sess, dead: make(chan struct{})}
	go func() {
		_ = c.Wait()
		close(sc.dead)
	}()
	return sc, nil
}

// abort closes the channel without waiting: requests in flight fail once
// the host acknowledges the close, or when the connection ends.
func (c *sftpConn) abort() {
	c.once.Do(func() {
		go func() {
			_ = c.sess.Close()
			_ = c.client.Close()
		}()
	})
}

func (c *sftpConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// sftpClient returns the session's SFTP channel, opening it on first use or
// after the previous one failed.
func (s *sshSession) sftpClient(ctx context.Context) (*sftpConn, error) {
	current := func() *sftpConn {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.sftp != nil && !s.sftp.isDead() {
			return s.sftp
		}
		return nil
	}
	if sc := current(); sc != nil {
		return sc, nil
	}
	select {
	case s.sftpOpen <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sftpOpen }()
	if sc := current(); sc != nil {
		return sc, nil // opened while we waited
	}
	if err := s.usable(); err != nil {
		return nil, err
	}
	sc, err := await(ctx, func() (*sftpConn, error) { return openSFTP(s.client) }, (*sftpConn).abort)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return nil, s.opErr(fmt.Errorf("open sftp channel: %w", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		sc.abort()
		return nil, ErrSessionClosed
	}
	if s.sftp != nil {
		s.sftp.abort()
	}
	s.sftp = sc
	return sc, nil
}

// dropSFTP forgets and aborts sc so that the next operation opens a fresh
// channel.
func (s *sshSession) dropSFTP(sc *sftpConn) {
	s.mu.Lock()
	if s.sftp == sc {
		s.sftp = nil
	}
	s.mu.Unlock()
	sc.abort()
}

// withSFTP runs fn with the session's SFTP client. When ctx ends first it
// aborts the SFTP channel, which makes fn's requests fail, and returns at
// once; fn then finishes in the background. Aborting the channel also fails
// SFTP operations that other goroutines run concurrently on this session;
// they may be retried.
func (s *sshSession) withSFTP(ctx context.Context, fn func(*sftp.Client) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	sc, err := s.sftpClient(ctx)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- fn(sc.client) }()
	select {
	case err := <-done:
		if err != nil && (sc.isDead() || errors.Is(err, sftp.ErrSSHFxConnectionLost)) {
			s.dropSFTP(sc)
		}
		return s.opErr(err)
	case <-ctx.Done():
		s.dropSFTP(sc)
		return ctx.Err()
	}
}

// Stat implements Session.
func (s *sshSession) Stat(ctx context.Context, path string) (fs.FileInfo, error) {
	canon, err := NormalizePath(path)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	var fi fs.FileInfo
	err = s.withSFTP(ctx, func(c *sftp.Client) error {
		var err error
		fi, err = c.Stat(toSFTPPath(canon))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", canon, err)
	}
	return fi, nil
}

// Remove implements Session.
func (s *sshSession) Remove(ctx context.Context, path string) error {
	canon, err := NormalizePath(path)
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if _, ok := parentPath(canon); !ok {
		return fmt.Errorf("remove %s: refusing to remove a drive root", canon)
	}
	err = s.withSFTP(ctx, func(c *sftp.Client) error {
		p := toSFTPPath(canon)
		fi, err := c.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case fi.IsDir():
			err = c.RemoveDirectory(p)
		default:
			err = c.Remove(p)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed concurrently
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", canon, err)
	}
	return nil
}

// ReadFile implements Session.
func (s *sshSession) ReadFile(ctx context.Context, path string, maxSize int64) ([]byte, error) {
	canon, err := NormalizePath(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if maxSize <= 0 || maxSize == math.MaxInt64 {
		return nil, fmt.Errorf("read %s: maxSize must be positive and finite, got %d", canon, maxSize)
	}
	var data []byte
	err = s.withSFTP(ctx, func(c *sftp.Client) error {
		f, err := c.Open(toSFTPPath(canon))
		if err != nil {
			return err
		}
		defer f.Close() //nolint:errcheck // read-only: Close cannot lose data
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return fmt.Errorf("%s is a directory", canon)
		}
		if fi.Size() > maxSize {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrFileTooLarge, fi.Size(), maxSize)
		}
		// The file may grow between Stat and read: read one byte past the
		// limit to notice.
		b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
		if err != nil {
			return err
		}
		if int64(len(b)) > maxSize {
			return fmt.Errorf("%w: more than %d bytes", ErrFileTooLarge, maxSize)
		}
		data = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", canon, err)
	}
	return data, nil
}

// Upload implements Session.
func (s *sshSession) Upload(ctx context.Context, dst string, r io.Reader, size int64, sha256hex string) error {
	canon, err := NormalizePath(dst)
	if err != nil {
		return fmt.Errorf("upload %s: %w", dst, err)
	}
	dir, ok := parentPath(canon)
	if !ok {
		return fmt.Errorf("upload %s: destination is a drive root", canon)
	}
	want, err := parseSHA256(sha256hex)
	if err != nil {
		return fmt.Errorf("upload %s: %w", canon, err)
	}
	if size < 0 {
		return fmt.Errorf("upload %s: negative size %d", canon, size)
	}
	if r == nil {
		return fmt.Errorf("upload %s: nil reader", canon)
	}
	if err := s.usable(); err != nil {
		return fmt.Errorf("upload %s: %w", canon, err)
	}

	unlock, err := s.uploads.lock(ctx, canon)
	if err != nil {
		return fmt.Errorf("upload %s: %w", canon, err)
	}
	logr.FromContextOrDiscard(ctx).V(4).Info("Uploading file", "address", s.addr, "path", canon, "size", size)

	tmp := canon + tempSuffix
	src := &guardedReader{ctx: ctx, r: r, limit: size}
	if v, ok := r.(VerifiedSource); !ok || !strings.EqualFold(v.VerifiedSHA256(), want) {
		src.h = sha256.New()
	}
	err = s.transfer(ctx, canon, dir, tmp, src, size, want)
	// From here on the caller's reader is never touched again.
	src.detach()
	if err == nil {
		unlock()
		return nil
	}

	// Remove the temporary file; dst was never touched. After a
	// cancellation do it in the background (the upload lock stays held
	// until it is done, so a retry cannot race with it).
	cleanup := func() {
		defer unlock()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = s.withSFTP(cctx, func(c *sftp.Client) error {
			return c.Remove(toSFTPPath(tmp))
		})
	}
	if ctx.Err() != nil {
		go cleanup()
	} else {
		cleanup()
	}
	return fmt.Errorf("upload %s: %w", canon, err)
}

// transfer writes src to tmp, verifies it and renames it over dst.
func (s *sshSession) transfer(ctx context.Context, dst, dir, tmp string, src *guardedReader, size int64, want string) error {
	err := s.withSFTP(ctx, func(c *sftp.Client) error {
		if err := mkdirAll(c, dir); err != nil {
			return err
		}
		f, err := c.OpenFile(toSFTPPath(tmp), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("create %s: %w", tmp, err)
		}
		_, werr := f.ReadFromWithConcurrency(src, 0)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			if src.failed(werr) {
				return werr
			}
			return classifyWriteErr(c, dst, dir, tmp, size, fmt.Errorf("write %s: %w", tmp, werr))
		}
		if n := src.count(); n != size {
			return fmt.Errorf("source ended after %d of %d bytes", n, size)
		}
		if got, hashed := src.sum(); hashed && got != want {
			return fmt.Errorf("%w: source content hashes to %s, want %s", ErrChecksumMismatch, got, want)
		}
		fi, err := c.Stat(toSFTPPath(tmp))
		if err != nil {
			return fmt.Errorf("stat %s: %w", tmp, err)
		}
		if fi.Size() != size {
			return fmt.Errorf("%s has %d bytes on the host, want %d", tmp, fi.Size(), size)
		}
		return nil
	})
	if err != nil {
		return err
	}

	var got string
	if s.hash != nil {
		got, err = s.hash(ctx, s, tmp)
	} else {
		got, err = s.readBackSHA256(ctx, tmp)
	}
	if err != nil {
		return fmt.Errorf("hash %s on host: %w", tmp, err)
	}
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: host computed %s for %s, want %s", ErrChecksumMismatch, got, tmp, want)
	}

	return s.withSFTP(ctx, func(c *sftp.Client) error {
		return replaceFile(c, tmp, dst)
	})
}

// readBackSHA256 is the default HashFunc: it streams the file back over
// SFTP and hashes it here.
func (s *sshSession) readBackSHA256(ctx context.Context, path string) (string, error) {
	var sum string
	err := s.withSFTP(ctx, func(c *sftp.Client) error {
		// Held while fn runs, which may outlive ctx by a little (an
		// aborted channel fails its reads).
		select {
		case readBackSlots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-readBackSlots }()
		f, err := c.Open(toSFTPPath(path))
		if err != nil {
			return err
		}
		defer f.Close() //nolint:errcheck // read-only: Close cannot lose data
		h := sha256.New()
		if _, err := f.WriteTo(h); err != nil {
			return err
		}
		sum = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return sum, err
}

// mkdirAll creates dir and its missing parents.
func mkdirAll(c *sftp.Client, dir string) error {
	if fi, err := c.Stat(toSFTPPath(dir)); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	var chain []string // dir first, drive root last
	for d, ok := dir, true; ok; d, ok = parentPath(d) {
		chain = append(chain, d)
	}
	for i := len(chain) - 2; i >= 0; i-- {
		d := toSFTPPath(chain[i])
		fi, err := c.Stat(d)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("%s exists and is not a directory", chain[i])
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("stat %s: %w", chain[i], err)
		}
		if err := c.Mkdir(d); err != nil {
			if fi, serr := c.Stat(d); serr == nil && fi.IsDir() {
				continue // created concurrently
			}
			return fmt.Errorf("create directory %s: %w", chain[i], err)
		}
	}
	return nil
}

// replaceFile renames tmp over dst. OpenSSH's SSH_FXP_RENAME refuses an
// existing target (Win32-OpenSSH included), so it prefers
// posix-rename@openssh.com, which replaces the target (Win32-OpenSSH's
// rename() removes an existing file, then renames), and otherwise removes
// dst itself first. Either way dst is briefly absent on Windows, never
// partial.
func replaceFile(c *sftp.Client, tmp, dst string) error {
	from, to := toSFTPPath(tmp), toSFTPPath(dst)
	if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
		err := c.PosixRename(from, to)
		if err == nil {
			return nil
		}
		if !hasStatus(err, fxOpUnsupported) {
			return fmt.Errorf("rename %s to %s: %w", tmp, dst, err)
		}
	}
	fi, err := c.Stat(to)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("rename %s to %s: destination is a directory", tmp, dst)
	case err == nil:
		if err := c.Remove(to); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove previous %s: %w", dst, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("stat %s: %w", dst, err)
	}
	if err := c.Rename(from, to); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, dst, err)
	}
	return nil
}

// classifyWriteErr turns a failed write into *DiskFullError when the host
// says its disk is full.
//
// Servers implementing later SFTP drafts say so with a status code
// (SSH_FX_NO_SPACE_ON_FILESYSTEM, SSH_FX_QUOTA_EXCEEDED). Win32-OpenSSH
// speaks SFTP version 3, which has no such code: it reports ERROR_DISK_FULL
// as a bare SSH_FX_FAILURE whose message is not reliable either. For that
// code we ask the host for its free space (statvfs@openssh.com, which
// OpenSSH implements) and call the disk full when less room is left than
// the rest of the file needed. No error text is ever inspected.
func classifyWriteErr(c *sftp.Client, dst, dir, tmp string, size int64, err error) error {
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case fxNoSpaceOnFilesystem, fxQuotaExceeded:
		return &DiskFullError{Path: dst, Free: freeBytes(c, dir), Needed: remaining(c, tmp, size), Err: err}
	case fxFailure:
		free := freeBytes(c, dir)
		need := remaining(c, tmp, size)
		if free >= 0 && need > 0 && free < need {
			return &DiskFullError{Path: dst, Free: free, Needed: need, Err: err}
		}
	}
	return err
}

// freeBytes returns the space available in dir's file system, or -1 when
// the host cannot tell. Win32-OpenSSH answers statvfs@openssh.com with
// GetDiskFreeSpaceW, which may refuse a directory that is not a drive
// root, so the drive root is asked as well.
func freeBytes(c *sftp.Client, dir string) int64 {
	if _, ok := c.HasExtension("statvfs@openssh.com"); !ok {
		return -1
	}
	for _, p := range []string{dir, dir[:3]} {
		st, err := c.StatVFS(toSFTPPath(p))
		if err != nil || st.Frsize == 0 {
			continue
		}
		if st.Bavail > math.MaxInt64/st.Frsize {
			return math.MaxInt64
		}
		return int64(st.Bavail * st.Frsize)
	}
	return -1
}

// remaining returns how many bytes of a size-byte file are not yet in tmp.
func remaining(c *sftp.Client, tmp string, size int64) int64 {
	fi, err := c.Stat(toSFTPPath(tmp))
	if err != nil {
		return size
	}
	return size - fi.Size()
}

func hasStatus(err error, code uint32) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.Code == code
}

func parseSHA256(s string) (string, error) {
	if len(s) != sha256.Size*2 {
		return "", fmt.Errorf("sha256 must be %d hex digits, got %d characters", sha256.Size*2, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("sha256 is not hexadecimal")
	}
	return strings.ToLower(s), nil
}

// Errors a guardedReader returns; they abort the transfer.
var (
	errSourceTooLong = errors.New("source has more bytes than the declared size")
	errDetached      = errors.New("upload finished")
)

// guardedReader feeds the caller's reader to the SFTP writer. It hashes
// what passes (unless the source is a VerifiedSource), refuses to yield
// more than limit bytes, stops as soon as ctx is done, and after detach
// never touches the caller's reader again (the SFTP writer may still be
// running in the background after a cancellation).
type guardedReader struct {
	ctx   context.Context
	limit int64

	mu       sync.Mutex
	r        io.Reader
	h        hash.Hash // nil for a VerifiedSource: not hashed
	n        int64
	err      error // the error this reader itself produced, if any
	detached bool
}

func (g *guardedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.detached {
		return 0, errDetached
	}
	if err := g.ctx.Err(); err != nil {
		g.err = err
		return 0, err
	}
	if g.n == g.limit {
		// Make sure the source really ends here, without passing on
		// the extra byte.
		var probe [1]byte
		for range 3 {
			k, err := g.r.Read(probe[:])
			if k > 0 {
				g.err = errSourceTooLong
				return 0, g.err
			}
			if err != nil {
				return 0, err
			}
		}
		return 0, io.EOF
	}
	if rest := g.limit - g.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := g.r.Read(p)
	if g.h != nil {
		g.h.Write(p[:n])
	}
	g.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		g.err = fmt.Errorf("read source: %w", err)
		return n, g.err
	}
	return n, err
}

// failed reports whether err originates from this reader rather than from
// the host.
func (g *guardedReader) failed(err error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err != nil && errors.Is(err, g.err)
}

func (g *guardedReader) count() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

// sum is the hex SHA-256 of what was read; hashed is false when the
// source was not hashed (a VerifiedSource).
func (g *guardedReader) sum() (sum string, hashed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil {
		return "", false
	}
	return hex.EncodeToString(g.h.Sum(nil)), true
}

func (g *guardedReader) detach() {
	g.mu.Lock()
	g.detached = true
	g.mu.Unlock()
}
