package payload

import (
	"os"
	"syscall"
)

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
