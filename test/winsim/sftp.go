package winsim

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
)

// fxNoSpaceOnFilesystem is SSH_FX_NO_SPACE_ON_FILESYSTEM
// (draft-ietf-secsh-filexfer-13, section 9.1). pkg/sftp exports constants
// only for the version 3 codes; its request server sends the code of any
// error that unwraps to its (unexported) status type, which this constant
// expression has.
const fxNoSpaceOnFilesystem = sftp.ErrSSHFxOk + 14

// noSpaceError reports a full disk with SSH_FX_NO_SPACE_ON_FILESYSTEM and
// Windows' message.
type noSpaceError struct{}

func (noSpaceError) Error() string { return ErrDiskFull.Error() }
func (noSpaceError) Unwrap() error { return fxNoSpaceOnFilesystem }

// sftpFS serves the SFTP request server from a Disk, as Windows OpenSSH's
// sftp-server serves NTFS.
type sftpFS struct {
	obs           *observers
	disk          *Disk
	noSpace       bool   // report a full disk with SSH_FX_NO_SPACE_ON_FILESYSTEM
	noPosixRename bool   // refuse posix-rename@openssh.com
	home          string // the user's home directory, "/C:/Users/<user>"
	log           *slog.Logger
	// admin says whether the session's user is in Administrators now.
	admin func() bool
}

// denied is ErrAccessDenied when the session's user is not an
// administrator and the security descriptor Windows checks for n
// (effectiveSecurity) grants SYSTEM and Administrators only: Windows
// refuses to open, list, change or delete it. That is so of the keys and
// kubeconfigs wicd's RestrictToAdministrators restricts, and of
// everything in the folders its SecureFolder secures. Callers hold
// f.disk.mu.
func (f *sftpFS) denied(n *node, op, path string) error {
	if f.admin == nil || f.admin() {
		return nil
	}
	if sd := effectiveSecurity(n); sd == "" || !adminsOnly(sd) {
		return nil
	}
	return &fs.PathError{Op: op, Path: path, Err: ErrAccessDenied}
}

// deniedIn is denied for the folder that holds path: creating, renaming
// or removing an entry needs access to the folder. A missing folder is
// left for the operation to report. Callers hold f.disk.mu.
func (f *sftpFS) deniedIn(op, path string) error {
	dir, _, err := f.disk.lookupParent(op, path)
	if err != nil {
		return nil
	}
	return f.denied(dir, op, path)
}

// effectiveSecurity is the descriptor Windows checks access to n
// against: its own, or else the one of the nearest folder above it that
// has its own, whose entries it inherits ("" when that is the drive's:
// C:\'s ACL on Windows Server lets every user read and create files and
// folders). A folder's new descriptor reaches everything below it that
// has none of its own, as SetNamedSecurityInfo passes it on and new files
// inherit it; unlike NTFS, a file moved in from elsewhere inherits it too.
func effectiveSecurity(n *node) string {
	for m := n; m != nil; m = m.parent {
		if m.security != "" {
			return m.security
		}
	}
	return ""
}

// aceTrustee is the trustee SID of an access control entry in SDDL.
var aceTrustee = regexp.MustCompile(`\(A;[^;]*;[^;]*;[^;]*;[^;]*;([^)]*)\)`)

// adminsOnly says whether an SDDL's protected DACL allows SYSTEM (SY) and
// Administrators (BA) only.
func adminsOnly(sddl string) bool {
	if !strings.Contains(sddl, "D:P") {
		return false // inherits other entries
	}
	for _, m := range aceTrustee.FindAllStringSubmatch(sddl, -1) {
		if m[1] != "SY" && m[1] != "BA" {
			return false
		}
	}
	return true
}

var (
	_ sftp.FileReader           = (*sftpFS)(nil)
	_ sftp.OpenFileWriter       = (*sftpFS)(nil)
	_ sftp.PosixRenameFileCmder = (*sftpFS)(nil)
	_ sftp.StatVFSFileCmder     = (*sftpFS)(nil)
	_ sftp.LstatFileLister      = (*sftpFS)(nil)
	_ sftp.RealPathFileLister   = (*sftpFS)(nil)
)

// status converts a disk error into what the SFTP client should see. Only
// the code matters to a client; the text is Windows'. A missing file keeps
// fs.ErrNotExist (SSH_FX_NO_SUCH_FILE); a full disk becomes
// SSH_FX_NO_SPACE_ON_FILESYSTEM when configured, otherwise, like every
// other error, SSH_FX_FAILURE.
func (f *sftpFS) status(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrDiskFull) {
		if f.noSpace {
			return noSpaceError{}
		}
		return ErrDiskFull
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fs.ErrNotExist
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Fileread implements sftp.FileReader.
func (f *sftpFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	d := f.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("open", f.path(r.Filepath))
	if err != nil {
		return nil, f.status(err)
	}
	if n.dir {
		return nil, f.status(errIsDirectory)
	}
	if err := f.denied(n, "open", f.path(r.Filepath)); err != nil {
		return nil, f.status(err)
	}
	if err := readLocked(n, "open", f.path(r.Filepath)); err != nil {
		return nil, f.status(err)
	}
	return &handle{fs: f, n: n, path: f.path(r.Filepath)}, nil
}

// Filewrite implements sftp.FileWriter.
func (f *sftpFS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return f.open(r)
}

// OpenFile implements sftp.OpenFileWriter.
func (f *sftpFS) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	return f.open(r)
}

func (f *sftpFS) open(r *sftp.Request) (*handle, error) {
	h, err := f.openLocked(r)
	if err == nil && r.Pflags().Creat && f.obs != nil {
		f.obs.fileCreated(h.path)
	}
	if err == nil && r.Pflags().Write && f.obs != nil {
		h.closed = sync.OnceFunc(f.obs.writing(h.path))
	}
	return h, err
}

func (f *sftpFS) openLocked(r *sftp.Request) (*handle, error) {
	flags := r.Pflags()
	d := f.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	var n *node
	var err error
	if flags.Creat {
		if n, err = d.lookup("open", f.path(r.Filepath)); err == nil {
			err = f.denied(n, "open", f.path(r.Filepath))
		} else {
			err = f.deniedIn("open", f.path(r.Filepath))
		}
		if err == nil {
			n, err = d.create("open", f.path(r.Filepath), flags.Trunc, flags.Excl)
		}
	} else {
		n, err = d.lookup("open", f.path(r.Filepath))
		if err == nil && n.dir {
			err = errIsDirectory
		}
		if err == nil {
			err = f.denied(n, "open", f.path(r.Filepath))
		}
		if err == nil && (flags.Write || flags.Trunc) {
			err = inUse(n, "open", f.path(r.Filepath), ErrSharingViolation)
		}
		if err == nil && flags.Trunc {
			err = d.truncate(n, "open", f.path(r.Filepath), 0)
		}
	}
	if err != nil {
		return nil, f.status(err)
	}
	if flags.Write {
		f.log.Debug("File opened for writing", "path", f.path(r.Filepath))
	}
	return &handle{fs: f, n: n, path: f.path(r.Filepath)}, nil
}

// Filecmd implements sftp.FileCmder.
func (f *sftpFS) Filecmd(r *sftp.Request) error {
	d := f.disk
	switch r.Method {
	case "Setstat":
		return f.status(f.setstat(r))
	case "Rename":
		if err := f.renameDenied(r); err != nil {
			return f.status(err)
		}
		// SSH_FXP_RENAME does not replace an existing target: OpenSSH's
		// sftp-server refuses when the target exists.
		return f.status(d.Rename(f.path(r.Filepath), f.path(r.Target), false))
	case "Mkdir":
		d.mu.Lock()
		err := f.deniedIn("mkdir", f.path(r.Filepath))
		d.mu.Unlock()
		if err != nil {
			return f.status(err)
		}
		return f.status(d.Mkdir(f.path(r.Filepath)))
	case "Rmdir", "Remove":
		d.mu.Lock()
		defer d.mu.Unlock()
		if n, err := d.lookup("remove", f.path(r.Filepath)); err == nil {
			if err := f.denied(n, "remove", f.path(r.Filepath)); err != nil {
				return f.status(err)
			}
		}
		return f.status(d.remove(f.path(r.Filepath), r.Method == "Remove", r.Method == "Rmdir"))
	}
	return sftp.ErrSSHFxOpUnsupported // Link, Symlink
}

// renameDenied is denied for a rename's source and the folder it moves
// into.
func (f *sftpFS) renameDenied(r *sftp.Request) error {
	d := f.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, err := d.lookup("rename", f.path(r.Filepath)); err == nil {
		if err := f.denied(n, "rename", f.path(r.Filepath)); err != nil {
			return err
		}
	}
	return f.deniedIn("rename", f.path(r.Target))
}

func (f *sftpFS) setstat(r *sftp.Request) error {
	d := f.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("setstat", f.path(r.Filepath))
	if err != nil {
		return err
	}
	if err := f.denied(n, "setstat", f.path(r.Filepath)); err != nil {
		return err
	}
	flags, attrs := r.AttrFlags(), r.Attributes()
	if flags.Size {
		if n.dir {
			return errIsDirectory
		}
		if err := inUse(n, "setstat", f.path(r.Filepath), ErrSharingViolation); err != nil {
			return err
		}
		if err := d.truncate(n, "setstat", f.path(r.Filepath), int64(attrs.Size)); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		n.modTime = time.Unix(int64(attrs.Mtime), 0)
	}
	return nil // permissions and ownership have no meaning here
}

// PosixRename implements sftp.PosixRenameFileCmder: rename replacing an
// existing file, as Win32-OpenSSH's rename() does.
func (f *sftpFS) PosixRename(r *sftp.Request) error {
	if f.noPosixRename {
		return sftp.ErrSSHFxOpUnsupported
	}
	if err := f.renameDenied(r); err != nil {
		return f.status(err)
	}
	err := f.disk.Rename(f.path(r.Filepath), f.path(r.Target), true)
	if err == nil {
		f.log.Debug("File renamed", "from", f.path(r.Filepath), "to", f.path(r.Target))
	}
	return f.status(err)
}

// StatVFS implements sftp.StatVFSFileCmder.
func (f *sftpFS) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	if _, err := f.disk.Stat(f.path(r.Filepath)); err != nil {
		return nil, f.status(err)
	}
	const block = 4096
	quota, free := f.disk.Quota(), f.disk.Free()
	return &sftp.StatVFS{
		Bsize:   block,
		Frsize:  block,
		Blocks:  uint64(max(quota, 0)) / block,
		Bfree:   uint64(free) / block,
		Bavail:  uint64(free) / block,
		Namemax: 255,
	}, nil
}

// Filelist implements sftp.FileLister.
func (f *sftpFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	drive, _, err := splitPath(f.path(r.Filepath))
	if err == nil && drive == 0 {
		// The virtual root lists the drives.
		root := &fileInfo{name: "C:", dir: true, modTime: time.Now()}
		if r.Method == "List" {
			return listerAt{root}, nil
		}
		return listerAt{&fileInfo{name: "/", dir: true, modTime: root.modTime}}, nil
	}
	switch r.Method {
	case "List":
		if err := f.listDenied(f.path(r.Filepath)); err != nil {
			return nil, f.status(err)
		}
		infos, err := f.disk.List(f.path(r.Filepath))
		if err != nil {
			return nil, f.status(err)
		}
		return listerAt(infos), nil
	case "Stat":
		fi, err := f.disk.Stat(f.path(r.Filepath))
		if err != nil {
			return nil, f.status(err)
		}
		return listerAt{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported // Readlink: no links here
}

// listDenied is denied for listing the folder at path.
func (f *sftpFS) listDenied(path string) error {
	d := f.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.lookup("list", path)
	if err != nil {
		return nil // List reports it
	}
	return f.denied(n, "list", path)
}

// Lstat implements sftp.LstatFileLister; there are no links.
func (f *sftpFS) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	r.Method = "Stat"
	return f.Filelist(r)
}

// RealPath implements sftp.RealPathFileLister, answering in the "/C:/a/b"
// form Windows OpenSSH uses. Relative paths start at the user's home.
func (f *sftpFS) RealPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, `\`) && !(len(p) >= 2 && p[1] == ':') {
		p = path.Join(f.home, strings.ReplaceAll(p, `\`, "/"))
	}
	drive, parts, err := splitPath(p)
	if err != nil {
		return "", f.status(err)
	}
	return sftpPath(drive, parts), nil
}

// path recovers the Windows path a client sent. pkg/sftp's request server
// joins any path that is not POSIX-absolute, such as "C:\k\x", to the start
// directory ("/C:/Users/u/C:\k\x"). A drive specification can only start a
// path (":" is invalid in names), so the last one found after a separator
// begins the path the client meant.
func (f *sftpFS) path(p string) string {
	for i := len(p) - 2; i > 0; i-- {
		if p[i+1] == ':' && isLetter(p[i]) && (p[i-1] == '/' || p[i-1] == '\\') {
			return p[i:]
		}
	}
	return p
}

// listerAt serves a fixed list of entries.
type listerAt []fs.FileInfo

func (l listerAt) ListAt(dst []os.FileInfo, offset int64) (int, error) {
	if offset >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[offset:])
	if offset+int64(n) >= int64(len(l)) {
		return n, io.EOF
	}
	return n, nil
}

// handle is an open file.
type handle struct {
	fs   *sftpFS
	n    *node
	path string
	// closed tells the observers a file opened for writing is closed.
	closed func()
}

// Close implements io.Closer: pkg/sftp calls it when the client closes
// the handle or the session ends.
func (h *handle) Close() error {
	if h.closed != nil {
		h.closed()
	}
	return nil
}

func (h *handle) ReadAt(p []byte, off int64) (int, error) {
	return h.fs.disk.readAt(h.n, p, off)
}

func (h *handle) WriteAt(p []byte, off int64) (int, error) {
	d := h.fs.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.writeAt(h.n, "write", h.path, p, off); err != nil {
		return 0, h.fs.status(err)
	}
	return len(p), nil
}
