package winsim

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync"
	"time"
)

// DefaultDiskQuota is the capacity of a simulated C: drive unless
// Options.DiskQuota says otherwise.
const DefaultDiskQuota = 128 << 30

// ErrDiskFull is returned (wrapped in *fs.PathError) by writes that would
// exceed the disk's quota. Its text is Windows' ERROR_DISK_FULL message.
var ErrDiskFull = errors.New("There is not enough space on the disk.")

// Errors mirroring Windows' for the cases the disk distinguishes.
var (
	errAlreadyExists = errors.New("Cannot create a file when that file already exists.")
	errNotEmpty      = errors.New("The directory is not empty.")
	errIsDirectory   = errors.New("Access is denied.")
	errNotDirectory  = errors.New("The directory name is invalid.")
	errIsRoot        = errors.New("Access is denied.")
	errNegativeSize  = errors.New("An attempt was made to move the file pointer before the beginning of the file.")
)

// Disk is a host's virtual C: drive, held in memory. Names are
// case-preserving and case-insensitive, paths are accepted in any form
// Windows OpenSSH accepts ("C:\a", "C:/a", "/C:/a"), and the total size of
// all files is limited by a quota. Disk survives reboots. It is safe for
// concurrent use by tests, programs and the SFTP server.
type Disk struct {
	mu    sync.Mutex
	root  *node
	quota int64
	used  int64
	now   func() time.Time
}

// node is a file or directory.
type node struct {
	name     string
	dir      bool
	children map[string]*node // by foldName, directories only
	data     content
	modTime  time.Time
	parent   *node
	removed  bool // unlinked; writes through open handles no longer count
	// holds are the processes holding the file open (Disk.Hold).
	holds map[*hold]struct{}
	// security is the file's own security descriptor in SDDL, "" while
	// it inherits its directory's (SetSecurity). It moves with the file
	// on rename and survives rewriting the file, as on NTFS.
	security string
}

func newDisk(quota int64) *Disk {
	d := &Disk{quota: quota, now: time.Now}
	d.root = &node{name: `C:\`, dir: true, children: map[string]*node{}, modTime: d.now()}
	return d
}

// SetQuota sets the drive's capacity in bytes. Lowering it below Used fills
// the disk: further growth of any file fails with ErrDiskFull.
func (d *Disk) SetQuota(bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.quota = bytes
}

// Quota returns the drive's capacity in bytes.
func (d *Disk) Quota() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.quota
}

// Used returns the total size of all files in bytes.
func (d *Disk) Used() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.used
}

// Free returns the bytes that can still be written, never negative.
func (d *Disk) Free() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return max(d.quota-d.used, 0)
}

// Fill lowers the quota to what is used now, so that nothing more fits.
func (d *Disk) Fill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.quota = d.used
}

// lookup returns the node at path. Callers hold d.mu.
func (d *Disk) lookup(op, path string) (*node, error) {
	drive, parts, err := splitPath(path)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: path, Err: err}
	}
	if drive != 'C' {
		return nil, &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
	}
	n := d.root
	for _, p := range parts {
		if !n.dir {
			return nil, &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
		}
		c, ok := n.children[foldName(p)]
		if !ok {
			return nil, &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
		}
		n = c
	}
	return n, nil
}

// lookupParent returns the directory that holds path and path's final
// component. Callers hold d.mu.
func (d *Disk) lookupParent(op, path string) (*node, string, error) {
	drive, parts, err := splitPath(path)
	if err != nil {
		return nil, "", &fs.PathError{Op: op, Path: path, Err: err}
	}
	if drive != 'C' {
		return nil, "", &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
	}
	if len(parts) == 0 {
		return nil, "", &fs.PathError{Op: op, Path: path, Err: errIsRoot}
	}
	dir := d.root
	for _, p := range parts[:len(parts)-1] {
		c, ok := dir.children[foldName(p)]
		if !ok || !c.dir {
			return nil, "", &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
		}
		dir = c
	}
	return dir, parts[len(parts)-1], nil
}

// Stat describes the file or directory at path.
func (d *Disk) Stat(path string) (fs.FileInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("stat", path)
	if err != nil {
		return nil, err
	}
	return n.info(), nil
}

// ReadFile returns a copy of the content of the file at path.
func (d *Disk) ReadFile(path string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.openRead(path)
	if err != nil {
		return nil, err
	}
	return n.data.bytes(), nil
}

// openRead finds the file at path for reading: not a directory, not held
// exclusively by a process. Callers hold d.mu.
func (d *Disk) openRead(path string) (*node, error) {
	n, err := d.lookup("open", path)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, &fs.PathError{Op: "open", Path: path, Err: errIsDirectory}
	}
	if err := readLocked(n, "open", path); err != nil {
		return nil, err
	}
	return n, nil
}

// Open opens the file at path for reading, as a program does with
// CreateFile(GENERIC_READ): each read copies only what it asks for, from
// the file as it is at that moment, so hashing or parsing a large file
// does not copy all of it first. A file a process holds exclusively
// (Lock) fails with an *InUseError, as ReadFile does.
func (d *Disk) Open(path string) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.openRead(path)
	if err != nil {
		return nil, err
	}
	return &fileReader{d: d, n: n}, nil
}

// fileReader reads an open file from the start (Disk.Open).
type fileReader struct {
	d   *Disk
	n   *node
	off int64
}

func (r *fileReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	k, err := r.d.readAt(r.n, p, r.off)
	r.off += int64(k)
	if k > 0 && errors.Is(err, io.EOF) {
		err = nil // the next read reports the end
	}
	return k, err
}

// WriteTo implements io.WriterTo, which io.Copy prefers: the chunks a
// file shares (every full chunk of an uploaded payload file) go to w as
// they are, without the copy Read makes, since they are never written
// again. Hashing payload files is most of what simulated hosts read.
func (r *fileReader) WriteTo(w io.Writer) (int64, error) {
	var (
		total int64
		buf   []byte
	)
	for {
		b, err := r.d.viewAt(r.n, r.off)
		if err == nil && b == nil {
			if buf == nil {
				buf = make([]byte, 32<<10)
			}
			var k int
			k, err = r.d.readAt(r.n, buf, r.off)
			b = buf[:k]
		}
		if len(b) > 0 {
			k, werr := w.Write(b)
			r.off += int64(k)
			total += int64(k)
			if werr != nil {
				return total, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (r *fileReader) Close() error { return nil }

// WriteFile creates or replaces the file at path, creating missing parent
// directories (a convenience for tests and programs; SFTP clients must
// create directories themselves).
func (d *Disk) WriteFile(path string, data []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.mkdirAll("open", path, true); err != nil {
		return err
	}
	n, err := d.create("open", path, true, false)
	if err != nil {
		return err
	}
	return d.writeAt(n, "write", path, data, 0)
}

// CopyFile creates or replaces the file at to with the content of the
// file at from, as CopyFile does on Windows: from is opened for reading
// (a file a process holds exclusively fails with an *InUseError), to for
// writing (one a process holds fails the same way), and to's directory
// must exist. It returns the bytes copied. The full chunks from shares
// (every full chunk of an uploaded payload file) are shared by the copy
// too, as nothing writes them again; the rest are copied.
func (d *Disk) CopyFile(from, to string) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	src, err := d.openRead(from)
	if err != nil {
		return 0, err
	}
	return d.copyLocked(src, to)
}

// copyLocked is CopyFile once from is open as src. Callers hold d.mu.
func (d *Disk) copyLocked(src *node, to string) (int64, error) {
	if dir, name, err := d.lookupParent("open", to); err == nil && dir.children[foldName(name)] == src {
		// Opening the source for writing too: Windows refuses it.
		return 0, &fs.PathError{Op: "open", Path: to, Err: ErrSharingViolation}
	}
	dst, err := d.create("open", to, true, false)
	if err != nil {
		return 0, err
	}
	size := src.data.len()
	if !dst.removed && d.used+size > d.quota {
		return 0, &fs.PathError{Op: "write", Path: to, Err: ErrDiskFull}
	}
	if !dst.removed {
		d.used += size
	}
	dst.data.copyFrom(&src.data)
	dst.modTime = d.now()
	return size, nil
}

// MkdirAll creates the directory at path and any missing parents.
func (d *Disk) MkdirAll(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mkdirAll("mkdir", path, false)
}

// mkdirAll creates path's directories; with parentOnly, all but the last
// component. Callers hold d.mu.
func (d *Disk) mkdirAll(op, path string, parentOnly bool) error {
	drive, parts, err := splitPath(path)
	if err != nil {
		return &fs.PathError{Op: op, Path: path, Err: err}
	}
	if drive != 'C' {
		return &fs.PathError{Op: op, Path: path, Err: fs.ErrNotExist}
	}
	if parentOnly && len(parts) > 0 {
		parts = parts[:len(parts)-1]
	}
	n := d.root
	for _, p := range parts {
		c, ok := n.children[foldName(p)]
		if !ok {
			c = &node{name: p, dir: true, children: map[string]*node{}, modTime: d.now(), parent: n}
			n.children[foldName(p)] = c
			n.modTime = d.now()
		} else if !c.dir {
			return &fs.PathError{Op: op, Path: path, Err: errNotDirectory}
		}
		n = c
	}
	return nil
}

// Mkdir creates one directory; its parent must exist.
func (d *Disk) Mkdir(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, name, err := d.lookupParent("mkdir", path)
	if err != nil {
		return err
	}
	if _, ok := dir.children[foldName(name)]; ok {
		return &fs.PathError{Op: "mkdir", Path: path, Err: errAlreadyExists}
	}
	dir.children[foldName(name)] = &node{name: name, dir: true, children: map[string]*node{}, modTime: d.now(), parent: dir}
	dir.modTime = d.now()
	return nil
}

// List returns the entries of the directory at path, sorted by name
// (case-insensitively, as Explorer does).
func (d *Disk) List(path string) ([]fs.FileInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("readdir", path)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: path, Err: errNotDirectory}
	}
	keys := make([]string, 0, len(n.children))
	for k := range n.children {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]fs.FileInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, n.children[k].info())
	}
	return out, nil
}

// Remove deletes a file or an empty directory.
func (d *Disk) Remove(path string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remove(path, true, true)
}

// remove deletes path if its kind is allowed. Callers hold d.mu.
func (d *Disk) remove(path string, files, dirs bool) error {
	n, err := d.lookup("remove", path)
	if err != nil {
		return err
	}
	switch {
	case n == d.root:
		return &fs.PathError{Op: "remove", Path: path, Err: errIsRoot}
	case n.dir && !dirs:
		return &fs.PathError{Op: "remove", Path: path, Err: errIsDirectory}
	case !n.dir && !files:
		return &fs.PathError{Op: "remove", Path: path, Err: errNotDirectory}
	case n.dir && len(n.children) > 0:
		return &fs.PathError{Op: "remove", Path: path, Err: errNotEmpty}
	}
	if err := inUse(n, "remove", path, deleteCode(n)); err != nil {
		return err
	}
	d.unlink(n)
	return nil
}

// unlink detaches n from the tree and releases its space. Callers hold d.mu.
func (d *Disk) unlink(n *node) {
	delete(n.parent.children, foldName(n.name))
	n.parent.modTime = d.now()
	if !n.dir {
		d.used -= n.data.len()
	}
	n.removed = true
	n.parent = nil
}

// Rename moves from to to. With replace, an existing file at to is
// replaced (MoveFileEx with MOVEFILE_REPLACE_EXISTING); without, an
// existing target is an error, as with MoveFile. A directory target is
// never replaced. A target a process holds (Hold) is not replaced: the
// error is an *InUseError for ErrAccessDenied, as Windows refuses to
// replace a running executable. A file a process holds open as data
// (HoldOpen, Lock) neither moves nor is replaced: the error is an
// *InUseError for ErrSharingViolation. Renaming a file to a name differing only in
// case changes its case.
func (d *Disk) Rename(from, to string, replace bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	src, err := d.lookup("rename", from)
	if err != nil {
		return err
	}
	if src == d.root {
		return &fs.PathError{Op: "rename", Path: from, Err: errIsRoot}
	}
	dir, name, err := d.lookupParent("rename", to)
	if err != nil {
		return err
	}
	for p := dir; p != nil; p = p.parent {
		if p == src {
			return &fs.PathError{Op: "rename", Path: to, Err: errInvalidName} // into itself
		}
	}
	if src.dir {
		// A directory holding a running image cannot move; the image
		// itself can.
		if err := inUse(src, "rename", from, ErrAccessDenied); err != nil {
			return err
		}
	} else if err := heldAsData(src, "rename", from); err != nil {
		// A data file open without FILE_SHARE_DELETE cannot move.
		return err
	}
	if existing, ok := dir.children[foldName(name)]; ok && existing != src {
		if !replace || existing.dir || src.dir {
			return &fs.PathError{Op: "rename", Path: to, Err: errAlreadyExists}
		}
		if err := inUse(existing, "rename", to, deleteCode(existing)); err != nil {
			return err
		}
		d.unlink(existing)
	}
	delete(src.parent.children, foldName(src.name))
	src.parent.modTime = d.now()
	src.name = name
	src.parent = dir
	dir.children[foldName(name)] = src
	dir.modTime = d.now()
	return nil
}

// create opens or creates the file at path for the SFTP server and
// WriteFile. Callers hold d.mu.
func (d *Disk) create(op, path string, truncate, exclusive bool) (*node, error) {
	dir, name, err := d.lookupParent(op, path)
	if err != nil {
		return nil, err
	}
	if n, ok := dir.children[foldName(name)]; ok {
		switch {
		case n.dir:
			return nil, &fs.PathError{Op: op, Path: path, Err: errIsDirectory}
		case exclusive:
			return nil, &fs.PathError{Op: op, Path: path, Err: errAlreadyExists}
		}
		if err := writeLocked(n, op, path); err != nil {
			return nil, err
		}
		if truncate {
			d.used -= n.data.len()
			n.data.truncate(0)
			n.modTime = d.now()
		}
		return n, nil
	}
	n := &node{name: name, modTime: d.now(), parent: dir}
	dir.children[foldName(name)] = n
	dir.modTime = d.now()
	return n, nil
}

// writeAt writes p at off into n, growing it within the quota. A write that
// does not fit fails whole with ErrDiskFull. Callers hold d.mu.
func (d *Disk) writeAt(n *node, op, path string, p []byte, off int64) error {
	if off < 0 {
		return &fs.PathError{Op: op, Path: path, Err: errNegativeSize}
	}
	end := off + int64(len(p))
	if grow := end - n.data.len(); grow > 0 {
		if !n.removed && d.used+grow > d.quota {
			return &fs.PathError{Op: op, Path: path, Err: ErrDiskFull}
		}
		if !n.removed {
			d.used += grow
		}
	}
	n.data.writeAt(p, off)
	n.modTime = d.now()
	return nil
}

// truncate sets n's size. Callers hold d.mu.
func (d *Disk) truncate(n *node, op, path string, size int64) error {
	if size < 0 {
		return &fs.PathError{Op: op, Path: path, Err: errNegativeSize}
	}
	cur := n.data.len()
	if size > cur {
		return d.writeAt(n, op, path, make([]byte, size-cur), cur)
	}
	if !n.removed {
		d.used -= cur - size
	}
	n.data.truncate(size)
	n.modTime = d.now()
	return nil
}

// readAt reads from n at off. Callers must not hold d.mu.
func (d *Disk) readAt(n *node, p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= n.data.len() {
		return 0, io.EOF
	}
	k := n.data.readAt(p, off)
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

// viewAt returns n's shared bytes from off to the end of their chunk (see
// content.view); nil with a nil error when they must be copied (readAt),
// io.EOF at or past the end.
func (d *Disk) viewAt(n *node, off int64) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off >= n.data.len() {
		return nil, io.EOF
	}
	return n.data.view(off), nil
}

func (n *node) info() fs.FileInfo {
	return &fileInfo{name: n.name, size: n.data.len(), dir: n.dir, modTime: n.modTime}
}

// fileInfo describes a node at one moment.
type fileInfo struct {
	name    string
	size    int64
	dir     bool
	modTime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) ModTime() time.Time { return fi.modTime }
func (fi *fileInfo) IsDir() bool        { return fi.dir }
func (fi *fileInfo) Sys() any           { return nil }
func (fi *fileInfo) Mode() fs.FileMode {
	if fi.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// SetSecurity gives the file or directory at path its own security
// descriptor, in SDDL ("O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)"), as
// SetNamedSecurityInfo does; "" makes it inherit its directory's again.
// The disk only records it: sshd checks it (see Host.AuthorizedKeysPath),
// nothing else does.
func (d *Disk) SetSecurity(path, sddl string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("setsecurity", path)
	if err != nil {
		return err
	}
	n.security = sddl
	return nil
}

// Security returns the security descriptor SetSecurity gave the file at
// path, "" when it inherits its directory's.
func (d *Disk) Security(path string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("getsecurity", path)
	if err != nil {
		return "", err
	}
	return n.security, nil
}
