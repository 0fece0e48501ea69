package wicd

import (
	"fmt"
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
// file so that it cannot be renamed, writing goes on and rotation is tried
// again at the next write.
type RotatingLog struct {
	path     string
	maxBytes int64
	keep     int
	now      func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
}

// OpenRotatingLog opens (creating it and its directory) the log at path.
func OpenRotatingLog(path string, maxBytes int64, keep int) (*RotatingLog, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultLogMaxBytes
	}
	if keep <= 0 {
		keep = DefaultLogKeep
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	l := &RotatingLog{path: path, maxBytes: maxBytes, keep: keep, now: time.Now}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *RotatingLog) open() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
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
// Callers hold l.mu.
func (l *RotatingLog) rotate() {
	if err := l.f.Close(); err != nil {
		return
	}
	_ = os.Remove(l.path + "." + strconv.Itoa(l.keep))
	for i := l.keep - 1; i >= 1; i-- {
		_ = os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
	}
	rerr := os.Rename(l.path, l.path+".1")
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
