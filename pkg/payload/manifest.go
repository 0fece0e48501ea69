/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	sigsjson "sigs.k8s.io/json"
)

// ManifestFile is the manifest's name inside a payload directory.
const ManifestFile = "manifest.json"

// Errors a caller can tell apart with errors.Is.
var (
	// ErrInvalidManifest: the manifest cannot be decoded or breaks a rule
	// of [Manifest.Validate].
	ErrInvalidManifest = errors.New("invalid payload manifest")
	// ErrFileMismatch: a file on disk is missing, is not a regular file,
	// or differs in size or SHA-256 from the manifest.
	ErrFileMismatch = errors.New("payload file does not match the manifest")
)

// Manifest lists the files of one payload version.
type Manifest struct {
	// Version of the payload; names its directory on a host.
	Version string `json:"version"`
	// KubernetesVersion of the kubelet and kube-proxy it ships, e.g.
	// v1.37.2.
	KubernetesVersion string `json:"kubernetesVersion"`
	// Files of the payload.
	Files []File `json:"files"`
}

// File is one file of a payload.
type File struct {
	// Path relative to the payload directory, with forward slashes, e.g.
	// "kubelet.exe" or "cni/win-overlay.exe".
	Path string `json:"path"`
	// Component the file belongs to.
	Component Component `json:"component"`
	// Size in bytes.
	Size int64 `json:"size"`
	// SHA256 of the content, lower-case hex.
	SHA256 string `json:"sha256"`
	// Source the file was built from, optional: the upstream Go module
	// and version, e.g. "k8s.io/kubernetes@v1.37.2" (see [ValidateSource]).
	Source string `json:"source,omitempty"`
	// Version of the program as it reports it, optional, e.g. "v1.37.2"
	// for kubelet.exe (see [ValidateVersion]).
	Version string `json:"version,omitempty"`
}

// Decode parses a manifest strictly (unknown fields, duplicate fields and
// fields spelled in another case are errors) and validates it. It does not
// look at the disk.
func Decode(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidManifest, len(data), MaxManifestBytes)
	}
	var m Manifest
	strict, err := sigsjson.UnmarshalStrict(data, &m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, errors.Join(strict...))
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Load reads dir/manifest.json, decodes and validates it, and verifies
// every listed file in dir against its size and SHA-256.
func Load(dir string) (*Manifest, error) {
	name := filepath.Join(dir, ManifestFile)
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read payload manifest: %w", err)
	}
	defer f.Close() //nolint:errcheck // read-only: Close cannot lose data
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read payload manifest %s: %w", name, err)
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := m.Verify(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// Verify checks every file of the manifest in dir: present, a regular file
// reached without symbolic links, and of the listed size and SHA-256. The
// error names every file that does not match and wraps ErrFileMismatch.
// An invalid manifest is refused before any file is opened.
func (m *Manifest) Verify(dir string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	var errs []error
	for _, f := range m.Files {
		if err := verifyFile(dir, f); err != nil {
			errs = append(errs, fmt.Errorf("payload file %q: %w", f.Path, err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

func verifyFile(dir string, f File) error {
	// Walk the path so that a symbolic link anywhere cannot lead outside
	// the payload directory.
	segs := strings.Split(f.Path, "/")
	cur := dir
	for i, seg := range segs {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: missing from %s", ErrFileMismatch, dir)
		}
		if err != nil {
			return err
		}
		last := i == len(segs)-1
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symbolic link", ErrFileMismatch, cur)
		case !last && !fi.IsDir():
			return fmt.Errorf("%w: %s is not a directory", ErrFileMismatch, cur)
		case last && !fi.Mode().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file", ErrFileMismatch, cur)
		case last && fi.Size() != f.Size:
			return fmt.Errorf("%w: size is %d bytes, the manifest says %d", ErrFileMismatch, fi.Size(), f.Size)
		}
	}
	sum, n, id, err := hashFile(cur, f.Size+1)
	if err != nil {
		return err
	}
	if n != f.Size {
		return fmt.Errorf("%w: size changed to %d bytes while reading, the manifest says %d", ErrFileMismatch, n, f.Size)
	}
	if sum != f.SHA256 {
		return fmt.Errorf("%w: sha256 is %s, the manifest says %s", ErrFileMismatch, sum, f.SHA256)
	}
	rememberVerified(localPath(dir, f), id, sum)
	return nil
}

// hashFile returns the SHA-256 (hex) and length of at most limit bytes of
// the file at name, and the file's identity when it stayed the same while
// it was read (see identify).
func hashFile(name string, limit int64) (string, int64, fileID, error) {
	fh, err := os.Open(name)
	if err != nil {
		return "", 0, fileID{}, err
	}
	defer fh.Close() //nolint:errcheck // read-only: Close cannot lose data
	before, _ := identify(fh)
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(fh, limit))
	if err != nil {
		return "", n, fileID{}, fmt.Errorf("read %s: %w", name, err)
	}
	if after, ok := identify(fh); !ok || after != before {
		before = fileID{}
	}
	return hex.EncodeToString(h.Sum(nil)), n, before, nil
}

// File returns the manifest's entry for path, compared as Windows does,
// ignoring case.
func (m *Manifest) File(path string) (File, bool) {
	for _, f := range m.Files {
		if strings.EqualFold(f.Path, path) {
			return f, true
		}
	}
	return File{}, false
}

// ComponentFiles returns the manifest's files of component c, sorted by
// path.
func (m *Manifest) ComponentFiles(c Component) []File {
	var out []File
	for _, f := range m.Files {
		if f.Component == c {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// HostPath is where the payload file at path lives on a host, in this
// manifest's version directory. See [HostPath].
func (m *Manifest) HostPath(path string) string {
	return HostPath(m.Version, path)
}

// Encode validates the manifest and returns it as indented JSON with its
// files sorted by path, ending with a newline.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	out := *m
	out.Files = slices.Clone(m.Files)
	slices.SortFunc(out.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&out); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Create builds the manifest of the payload in dir: every regular file
// under dir except manifest.json must belong to a component (see
// [ComponentOf]); each one is hashed. The result is validated but not
// written; see [Manifest.WriteFile].
func Create(dir, version, kubernetesVersion string) (*Manifest, error) {
	m := &Manifest{Version: version, KubernetesVersion: kubernetesVersion}
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, name)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case rel == ManifestFile:
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%w: %s is not a regular file", ErrInvalidManifest, name)
		}
		c, ok := ComponentOf(rel)
		if !ok {
			return fmt.Errorf("%w: %q belongs to no component", ErrInvalidManifest, rel)
		}
		sum, n, _, err := hashFile(name, 1<<62)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, File{Path: rel, Component: c, Size: n, SHA256: sum})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create payload manifest for %s: %w", dir, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// ContentVersion is the payload version make payload gives a manifest:
// its Kubernetes version, a dash and the first 12 hex digits of the
// SHA-256 of one line "<path> <sha256>" per file, in the manifest's order.
// Any change of a file's content or path gives another version (and so
// another directory on the hosts); a file's Source and Version do not
// count.
func (m *Manifest) ContentVersion() string {
	h := sha256.New()
	for _, f := range m.Files {
		fmt.Fprintf(h, "%s %s\n", f.Path, f.SHA256)
	}
	return m.KubernetesVersion + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// WriteFile writes the manifest to dir/manifest.json.
func (m *Manifest) WriteFile(dir string) error {
	data, err := m.Encode()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestFile), data, 0o644)
}
