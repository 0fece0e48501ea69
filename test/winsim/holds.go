package winsim

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Errors Windows returns for a file a running process holds open.
var (
	// ErrAccessDenied is ERROR_ACCESS_DENIED, what DeleteFile and
	// MoveFileEx(MOVEFILE_REPLACE_EXISTING) return for the image of a
	// running process.
	ErrAccessDenied = errors.New("Access is denied.")
	// ErrSharingViolation is ERROR_SHARING_VIOLATION, what opening a
	// running image for writing returns.
	ErrSharingViolation = errors.New("The process cannot access the file because it is being used by another process.")
)

// InUseError is the error inside the *fs.PathError of an operation refused
// because a process holds the file. It unwraps to ErrAccessDenied or
// ErrSharingViolation, whose text it prints, as Windows words it; Holders
// names the processes, as the Restart Manager (RmGetList) would on Windows.
type InUseError struct {
	Err     error
	Holders []string
}

func (e *InUseError) Error() string { return e.Err.Error() }

// Unwrap returns ErrAccessDenied or ErrSharingViolation.
func (e *InUseError) Unwrap() error { return e.Err }

// hold is one process holding one file open: as its running image
// (Hold), or as data, exclusively (Lock: readers are refused too),
// shared for reading only (HoldForReading: writers are refused) or
// shared for reading and writing (HoldOpen: writers may open it too).
// No kind of data file shares deletion, so none can be renamed.
type hold struct {
	holder    string
	exclusive bool
	open      bool
	reading   bool
}

// image reports whether the hold is a running image's.
func (h *hold) image() bool { return !h.exclusive && !h.open && !h.reading }

var nextPID atomic.Int64

func init() { nextPID.Store(4000) }

// newPID returns a process ID for a simulated process: multiples of four,
// as Windows hands them out.
func newPID() int64 { return nextPID.Add(4) }

// Hold makes the file at path behave as the image of a running process
// until release is called: deleting it, renaming another file over it,
// opening it for writing, or deleting or renaming a directory that
// contains it fails with an *InUseError naming holder. Reading and
// renaming the file itself still work, as Windows lets a running
// executable be renamed (a data file held open cannot be: HoldOpen).
// release is idempotent.
func (d *Disk) Hold(path, holder string) (release func(), err error) {
	return d.hold(path, &hold{holder: holder})
}

// Lock is Hold without sharing reads, as a process that opened the file
// exclusively: reading it fails with an *InUseError for
// ErrSharingViolation as well, and so do renaming and deleting it, as for
// HoldOpen.
func (d *Disk) Lock(path, holder string) (release func(), err error) {
	return d.hold(path, &hold{holder: holder, exclusive: true})
}

// HoldOpen makes the file at path behave as a data file a process has
// open as Go's os.OpenFile opens files on Windows (FILE_SHARE_READ |
// FILE_SHARE_WRITE, without FILE_SHARE_DELETE), as kube-log-runner holds
// its log, until release is called: others may still read and write it,
// but deleting or renaming it, or renaming another file over it, fails
// with an *InUseError for ErrSharingViolation naming holder, and deleting
// or renaming a directory that contains it fails as for Hold. release is
// idempotent.
func (d *Disk) HoldOpen(path, holder string) (release func(), err error) {
	return d.hold(path, &hold{holder: holder, open: true})
}

// HoldForReading makes the file at path behave as a data file a process
// has open for reading, sharing reads only (FILE_SHARE_READ, as many log
// viewers open a file), until release is called: others may read it,
// but opening it for writing, deleting or renaming it fails with an
// *InUseError for ErrSharingViolation naming holder. release is
// idempotent.
func (d *Disk) HoldForReading(path, holder string) (release func(), err error) {
	return d.hold(path, &hold{holder: holder, reading: true})
}

func (d *Disk) hold(path string, h *hold) (release func(), err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("open", path)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errIsDirectory}
	}
	if n.holds == nil {
		n.holds = map[*hold]struct{}{}
	}
	n.holds[h] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			defer d.mu.Unlock()
			delete(n.holds, h)
		})
	}, nil
}

// Holders returns who holds the file at path, or any file under the
// directory at path, sorted; nil when nothing does or path does not exist.
func (d *Disk) Holders(path string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("open", path)
	if err != nil {
		return nil
	}
	return n.holders()
}

// holders lists the holders of n and everything under it. Callers hold
// d.mu.
func (n *node) holders() []string {
	var out []string
	var visit func(*node)
	visit = func(n *node) {
		for h := range n.holds {
			if !slices.Contains(out, h.holder) {
				out = append(out, h.holder)
			}
		}
		for _, c := range n.children {
			visit(c)
		}
	}
	visit(n)
	slices.Sort(out)
	return out
}

// inUse returns the error for an operation on n that its holders forbid,
// or nil when nothing holds n (or anything under it). Callers hold d.mu.
func inUse(n *node, op, path string, code error) error {
	if hs := n.holders(); len(hs) > 0 {
		return &fs.PathError{Op: op, Path: path, Err: &InUseError{Err: code, Holders: hs}}
	}
	return nil
}

// readLocked returns the error for reading n while a process has it open
// exclusively. Callers hold d.mu.
func readLocked(n *node, op, path string) error {
	return heldBy(n, op, path, func(h *hold) bool { return h.exclusive })
}

// writeLocked returns the error for opening n for writing while a
// process holds it other than shared for writing (HoldOpen). Callers hold
// d.mu.
func writeLocked(n *node, op, path string) error {
	return heldBy(n, op, path, func(h *hold) bool { return !h.open })
}

// heldAsData returns the error for renaming the file n itself while a
// process holds it open as data (HoldOpen, Lock) without
// FILE_SHARE_DELETE, which Windows refuses as it does not a running
// image's rename. Callers hold d.mu.
func heldAsData(n *node, op, path string) error {
	return heldBy(n, op, path, func(h *hold) bool { return !h.image() })
}

// deleteCode is the error Windows returns for deleting the file n, or
// renaming another file over it, while processes hold it: a sharing
// violation if one holds it open as data, else (a running image) access
// denied. Callers hold d.mu.
func deleteCode(n *node) error {
	for h := range n.holds {
		if !h.image() {
			return ErrSharingViolation
		}
	}
	return ErrAccessDenied
}

// heldBy returns an *InUseError for ErrSharingViolation naming the
// holders of n that refuse, or nil when none does. Callers hold d.mu.
func heldBy(n *node, op, path string, refuses func(*hold) bool) error {
	var hs []string
	for h := range n.holds {
		if refuses(h) && !slices.Contains(hs, h.holder) {
			hs = append(hs, h.holder)
		}
	}
	if len(hs) == 0 {
		return nil
	}
	slices.Sort(hs)
	return &fs.PathError{Op: op, Path: path, Err: &InUseError{Err: ErrSharingViolation, Holders: hs}}
}

// Process is a simulated process outside the service manager, such as a
// container a DaemonSet pod left running, that holds files open until it
// exits.
type Process struct {
	name     string
	pid      int64
	release  []func()
	exitOnce sync.Once
	exited   chan struct{}
}

// Name returns the process's image name and ID, as holders report it:
// "name.exe (PID 4008)".
func (p *Process) Name() string { return fmt.Sprintf("%s (PID %d)", p.name, p.pid) }

// Exit ends the process: its files are released. Exit is idempotent.
func (p *Process) Exit() {
	p.exitOnce.Do(func() {
		for _, r := range p.release {
			r()
		}
		close(p.exited)
	})
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// StartProcess is a fault knob: it starts a process named image (a base
// name such as "pause.exe") that holds files open, each as Hold does, until
// Exit is called or the host goes down. Every file must exist.
func (h *Host) StartProcess(image string, files ...string) (*Process, error) {
	if image == "" || strings.ContainsAny(image, `\/`) {
		return nil, fmt.Errorf("winsim: process image %q is not a base name", image)
	}
	p := &Process{name: image, pid: newPID(), exited: make(chan struct{})}
	for _, f := range files {
		rel, err := h.disk.Hold(f, p.Name())
		if err != nil {
			p.Exit()
			return nil, fmt.Errorf("winsim: start process %s: %w", image, err)
		}
		p.release = append(p.release, rel)
	}
	h.mu.Lock()
	if h.state != StateUp {
		h.mu.Unlock()
		p.Exit()
		return nil, ErrNotUp
	}
	h.processes = append(h.processes, p)
	h.mu.Unlock()
	return p, nil
}

// exitProcesses ends every process StartProcess started, as a shutdown
// does. Callers hold h.mu.
func (h *Host) exitProcesses() {
	for _, p := range h.processes {
		p.Exit()
	}
	h.processes = nil
}
