//go:build !linux

package payload

import "os"

// identify tells no identity where the operator does not run: every upload
// hashes what it reads.
func identify(*os.File) (fileID, bool) { return fileID{}, false }
