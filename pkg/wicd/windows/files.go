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
func (files) WriteFile(path string, data []byte) (err error) {
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
	if _, err = f.Write(data); err != nil {
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
		return diskFull(err)
	}
	return nil
}

func (files) MkdirAll(path string) error { return diskFull(os.MkdirAll(path, 0o755)) }

func (files) Stat(path string) (fs.FileInfo, error) { return os.Stat(path) }

func (files) Remove(path string) error { return os.Remove(path) }

func (files) RemoveAll(path string) error { return os.RemoveAll(path) }

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

// diskFull adds wicd.ErrDiskFull to an error caused by a full volume.
func diskFull(err error) error {
	if errors.Is(err, windows.ERROR_DISK_FULL) || errors.Is(err, windows.ERROR_HANDLE_DISK_FULL) {
		return fmt.Errorf("%w: %w", wicd.ErrDiskFull, err)
	}
	return err
}
