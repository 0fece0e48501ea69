package payload

import (
	"os"
	"syscall"
)

// fileID tells whether a file is still the one that was hashed: its
// device, inode, size, and modification and change times. Writing to a
// file or replacing it changes one of them; the change time cannot be set
// back. The zero fileID is no identity.
type fileID struct {
	dev, ino, size   uint64
	mtimeNs, ctimeNs int64
	known            bool
}

// identify returns the identity of the open file f.
func identify(f *os.File) (fileID, bool) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{
		dev: st.Dev, ino: st.Ino, size: uint64(st.Size), //nolint:gosec // a size is never negative
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano(), known: true,
	}, true
}
