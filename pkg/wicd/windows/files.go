//go:build windows

package windows

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"

	"github.com/openwmco/wmco/pkg/wicd"
)

// files is wicd.Files over the os package. NTFS compares names
// case-insensitively, as the interface asks.
type files struct{}

func (files) Open(path string) (io.ReadCloser, error) { return os.Open(path) }

func (files) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }

// WriteFile writes data to a temporary file in the same directory, flushes
// it and renames it over path (MoveFileEx with MOVEFILE_REPLACE_EXISTING),
// so readers see the old or the new content, never a part.
func (files) WriteFile(path string, data []byte) error {
	return replaceFile(path, func(f *os.File) (err error) {
		_, err = f.Write(data)
		return err
	})
}

// CopyFile copies from to path as WriteFile writes, 32 KiB at a time, so
// the agent does not hold a payload binary (kubelet.exe is over 100 MB)
// in memory.
func (files) CopyFile(from, to string) (n int64, err error) {
	src, err := os.Open(from)
	if err != nil {
		return 0, inUse(err)
	}
	defer func() { _ = src.Close() }()
	err = replaceFile(to, func(f *os.File) (err error) {
		n, err = io.Copy(f, src)
		return err
	})
	return n, err
}

// CopyAndEmpty opens from for reading and writing, sharing reads and
// writes as the process that appends to it does, so a process holding it
// otherwise fails it before anything is copied; it copies it as CopyFile
// does through that handle and sets its end at 0 (SetEndOfFile). Lines
// appended between the copy's last read and the truncation are lost.
func (files) CopyAndEmpty(from, to string) (n int64, err error) {
	src, err := os.OpenFile(from, os.O_RDWR, 0)
	if err != nil {
		return 0, inUse(err)
	}
	defer func() { err = errors.Join(err, src.Close()) }()
	err = replaceFile(to, func(f *os.File) (err error) {
		n, err = io.Copy(f, src)
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := src.Truncate(0); err != nil {
		_ = os.Remove(to)
		return 0, err
	}
	return n, nil
}

// replaceFile has write fill a temporary file in path's directory, flushes
// it and renames it over path.
func replaceFile(path string, write func(*os.File) error) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return diskFull(err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err = write(f); err != nil {
		_ = f.Close()
		return diskFull(err)
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return diskFull(err)
	}
	if err = f.Close(); err != nil {
		return diskFull(err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return inUse(diskFull(err))
	}
	return nil
}

func (files) MkdirAll(path string) error { return diskFull(os.MkdirAll(path, 0o755)) }

func (files) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

func (files) Remove(path string) error { return inUse(os.Remove(path)) }

// Rename moves a file over another (MoveFileEx with
// MOVEFILE_REPLACE_EXISTING); a target that is a running image is
// ErrFileInUse.
func (files) Rename(from, to string) error { return inUse(os.Rename(from, to)) }

// RemoveAll removes path and everything under it, files first, one
// DeleteFile or RemoveDirectory at a time, so that the error names the
// file a process holds. (os.RemoveAll would do, but fails under Wine with
// "unlinkat: Invalid function", and its error does not say which file was
// held.) Junctions and symbolic links are removed, not followed.
func (f files) RemoveAll(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() && info.Mode()&fs.ModeSymlink == 0 && info.Mode()&fs.ModeIrregular == 0 {
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := f.RemoveAll(filepath.Join(path, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return inUse(err)
	}
	return nil
}

func (files) ReadDir(path string) ([]fs.DirEntry, error) { return os.ReadDir(path) }

// Walk calls fn for every regular file under root in lexical order; it does
// not follow symbolic links or junctions.
func (files) Walk(root string, fn func(path string, info fs.FileInfo) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(path, info)
	})
}

// FreeBytes is the space on path's volume available to this process
// (GetDiskFreeSpaceEx, which honours quotas).
func (files) FreeBytes(path string) (int64, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	var free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &free, nil, nil); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	return int64(free), nil
}

// inUse adds wicd.ErrFileInUse to the errors Windows gives for a file a
// process holds: a sharing violation, or access denied for a running
// image (which, for an administrator, is the usual cause; the holders
// then tell).
func inUse(err error) error {
	if errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_ACCESS_DENIED) ||
		errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return fmt.Errorf("%w: %w", wicd.ErrFileInUse, err)
	}
	return err
}

// diskFull adds wicd.ErrDiskFull to an error caused by a full volume.
func diskFull(err error) error {
	if errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL) {
		return fmt.Errorf("%w: %w", wicd.ErrDiskFull, err)
	}
	return err
}
