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

// CopyAndEmpty copies the file at from to to and empties from, as the
// agent does holding from open for writing (sharing reads and writes, as
// the program appending to it does) while it copies and sets its end at
// 0: a process holding from open shared for writing (HoldOpen) does not
// stop it; one running it or holding it otherwise does, with an
// *InUseError, before to is created. Appends (AppendFile) then start at
// 0. It returns the bytes copied. The disk does it in one step, so it
// loses no line appended meanwhile; Windows can.
func (d *Disk) CopyAndEmpty(from, to string) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	src, err := d.openRead(from)
	if err != nil {
		return 0, err
	}
	if err := writeLocked(src, "open", from); err != nil {
		return 0, err
	}
	size, err := d.copyLocked(src, to)
	if err != nil {
		return 0, err
	}
	return size, d.truncate(src, "truncate", from, 0)
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
