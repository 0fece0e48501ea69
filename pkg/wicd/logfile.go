package wicd

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Defaults of the agent's own log (wicdapi.AgentLogPath).
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogKeep     = 5
)

// RotatingLog is the agent's log file: each Write becomes a line stamped
// with the time and the process ID; once the file would exceed maxBytes it
// is renamed to <path>.1 (older ones shift up to <path>.<keep>, the oldest
// dropped) and a new file is started. Several agent processes (the
// service and commands over SSH) may share it: if another one holds the
// file so that it cannot be renamed, as Windows refuses while any other
// process has it open, writing goes on, nothing is shifted, and rotation
// is tried again later.
type RotatingLog struct {
	fs       logFS
	path     string
	maxBytes int64
	keep     int
	now      func() time.Time

	mu   sync.Mutex
	f    logFile
	size int64
}

// logFS is where a RotatingLog keeps its files: osLogFS, but in tests.
type logFS interface {
	MkdirAll(dir string) error
	// OpenAppend opens the file at path for appending, creating it.
	OpenAppend(path string) (logFile, error)
	Rename(from, to string) error
	Remove(path string) error
}

// logFile is an open log file.
type logFile interface {
	io.StringWriter
	io.Closer
	Stat() (fs.FileInfo, error)
}

// osLogFS is the host's file system.
type osLogFS struct{}

func (osLogFS) MkdirAll(dir string) error    { return os.MkdirAll(dir, 0o755) }
func (osLogFS) Rename(from, to string) error { return os.Rename(from, to) }
func (osLogFS) Remove(path string) error     { return os.Remove(path) }
func (osLogFS) OpenAppend(path string) (logFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// OpenRotatingLog opens (creating it and its directory) the log at path.
func OpenRotatingLog(path string, maxBytes int64, keep int) (*RotatingLog, error) {
	return openRotatingLog(osLogFS{}, path, maxBytes, keep)
}

func openRotatingLog(fsys logFS, path string, maxBytes int64, keep int) (*RotatingLog, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultLogMaxBytes
	}
	if keep <= 0 {
		keep = DefaultLogKeep
	}
	if err := fsys.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	l := &RotatingLog{fs: fsys, path: path, maxBytes: maxBytes, keep: keep, now: time.Now}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *RotatingLog) open() error {
	f, err := l.fs.OpenAppend(l.path)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.path, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat log %s: %w", l.path, err)
	}
	l.f, l.size = f, info.Size()
	return nil
}

// Write writes p as one line (a trailing newline is added if missing).
func (l *RotatingLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	line := l.now().UTC().Format(time.RFC3339Nano) + " [" + strconv.Itoa(os.Getpid()) + "] " + string(p)
	if len(line) == 0 || line[len(line)-1] != '\n' {
		line += "\n"
	}
	if l.size > 0 && l.size+int64(len(line)) > l.maxBytes {
		l.rotate()
	}
	n, err := l.f.WriteString(line)
	l.size += int64(n)
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// rotate shifts the files; on failure it keeps writing the current file.
// The current file is renamed first, to <path>.0: that is what fails
// while another process has it open, and the kept files shift (<path>.0
// to <path>.1 last) only once it has succeeded, or every failed attempt
// would drop one of them. Callers hold l.mu.
func (l *RotatingLog) rotate() {
	if err := l.f.Close(); err != nil {
		return
	}
	rerr := l.fs.Rename(l.path, l.rotated(0))
	if rerr == nil {
		_ = l.fs.Remove(l.rotated(l.keep))
		for i := l.keep - 1; i >= 0; i-- {
			_ = l.fs.Rename(l.rotated(i), l.rotated(i+1))
		}
	}
	if err := l.open(); err != nil {
		l.f = nil
		return
	}
	if rerr != nil {
		// Another process holds the file: try again next time, a
		// little later.
		l.size = 0
	}
}

// rotated is the name of the i-th rotated file, <path>.<i>.
func (l *RotatingLog) rotated(i int) string { return l.path + "." + strconv.Itoa(i) }

// Close closes the file.
func (l *RotatingLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
