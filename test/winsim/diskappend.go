package winsim

import (
	"io/fs"
	"time"
)

// AppendFile adds data at the end of the file at path, creating the file
// (not its folder) when it is missing, as a program opening its log with
// FILE_APPEND_DATA and OPEN_ALWAYS does: a missing folder fails with
// fs.ErrNotExist, a file another process holds with an *InUseError
// (unless it shares writing: HoldOpen).
func (d *Disk) AppendFile(path string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.create("open", path, false, false)
	if err != nil {
		return err
	}
	return d.writeAt(n, "write", path, data, n.data.len())
}

// Truncate empties the file at path, as opening it for writing and
// SetEndOfFile do: a process holding it open shared for writing
// (HoldOpen) does not stop it, one running it or holding it otherwise
// does (an *InUseError). Appends (AppendFile) then start at 0.
func (d *Disk) Truncate(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("open", path)
	if err != nil {
		return err
	}
	if n.dir {
		return &fs.PathError{Op: "open", Path: path, Err: errIsDirectory}
	}
	if err := writeLocked(n, "open", path); err != nil {
		return err
	}
	return d.truncate(n, "truncate", path, 0)
}

// SetModTime sets the last write time of the file or folder at path, as
// SetFileTime does: tests age files with it.
func (d *Disk) SetModTime(path string, t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("chtimes", path)
	if err != nil {
		return err
	}
	if n == d.root {
		return &fs.PathError{Op: "chtimes", Path: path, Err: fs.ErrPermission}
	}
	n.modTime = t
	return nil
}
