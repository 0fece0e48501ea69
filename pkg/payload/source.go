package payload

import (
	"os"
	"path/filepath"
	"sync"
)

// verified holds the payload files Verify found matching their manifest
// in this process: path → verifiedFile.
var verified sync.Map

type verifiedFile struct {
	id  fileID
	sum string
}

// rememberVerified records that the file at path hashed to sum while it
// had identity id (nothing is recorded without one).
func rememberVerified(path string, id fileID, sum string) {
	if id.known {
		verified.Store(path, verifiedFile{id: id, sum: sum})
	}
}

// localPath is where f lies under dir, the key of verified.
func localPath(dir string, f File) string { return filepath.Join(dir, filepath.FromSlash(f.Path)) }

// Source is an open payload file (Open). It implements
// remote.VerifiedSource: Upload does not hash again a file that Verify
// checked and that has not changed since.
type Source struct {
	*os.File
	sum string
}

// VerifiedSHA256 is the file's SHA-256 as Verify computed it when the open
// file is the very file Verify hashed, unchanged; "" otherwise.
func (s *Source) VerifiedSHA256() string { return s.sum }

// Open opens the payload file f in dir, the directory Load or Verify
// checked. The Source vouches for f's hash only when the file opened is
// the one Verify hashed to it and is unchanged since; otherwise an upload
// hashes what it reads, as for any source.
func Open(dir string, f File) (*Source, error) {
	name := localPath(dir, f)
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	src := &Source{File: fh}
	if v, ok := verified.Load(name); ok {
		if id, ok := identify(fh); ok && id == v.(verifiedFile).id && v.(verifiedFile).sum == f.SHA256 {
			src.sum = f.SHA256
		}
	}
	return src, nil
}
