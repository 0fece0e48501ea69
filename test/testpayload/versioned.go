/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package testpayload

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/openwmco/wmco/pkg/payload"
)

// DefaultChangedFileSize is the size of a file Derive rewrites unless
// told otherwise: 4 MiB, so the few KB of plan that travel with a change
// are under 5% of it (a real windows_exporter.exe is about 25 MB).
const DefaultChangedFileSize = 4 << 20

// kubernetesSource is the module a real payload's kubelet.exe and
// kube-proxy.exe are built from.
const kubernetesSource = "k8s.io/kubernetes"

// WriteVersioned writes one fake payload per Kubernetes version into
// parent/<kubernetes version>/, as make payload lays them out and as the
// operator's --payload-dir takes them. Each payload's Version is its
// [payload.Manifest.ContentVersion] (the Kubernetes version and a digest
// of its files), as make payload names it; every file's content differs
// between versions; kubelet.exe and kube-proxy.exe record their source and
// version as a real payload does (see KubeletBinaries). opts.FileSize
// sizes the files as for Write; opts.Version and opts.KubernetesVersion
// must be empty. The manifests come in the order of kubernetesVersions.
func WriteVersioned(parent string, opts Options, kubernetesVersions ...string) ([]*payload.Manifest, error) {
	switch {
	case opts.Version != "" || opts.KubernetesVersion != "":
		return nil, errors.New("write versioned test payloads: the versions come from kubernetesVersions, not Options")
	case len(kubernetesVersions) == 0:
		return nil, errors.New("write versioned test payloads: no Kubernetes version")
	case opts.FileSize < 0:
		return nil, fmt.Errorf("write versioned test payloads: FileSize %d must not be negative", opts.FileSize)
	}
	out := make([]*payload.Manifest, 0, len(kubernetesVersions))
	for i, kv := range kubernetesVersions {
		if err := payload.ValidateKubernetesVersion(kv); err != nil {
			return nil, fmt.Errorf("write versioned test payloads: %q: %w", kv, err)
		}
		if slices.Contains(kubernetesVersions[:i], kv) {
			return nil, fmt.Errorf("write versioned test payloads: %s given twice", kv)
		}
		m, err := writeVersioned(filepath.Join(parent, kv), kv, opts.FileSize)
		if err != nil {
			return nil, fmt.Errorf("write versioned test payload %s: %w", kv, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func writeVersioned(dir, kv string, size int64) (*payload.Manifest, error) {
	for _, c := range payload.Components() {
		for _, p := range payload.RequiredFiles(c) {
			var content io.Reader
			if size == 0 {
				content = bytes.NewReader(fmt.Appendf(nil, "fake %s of Kubernetes %s\n", p, kv))
			} else {
				content = pseudoRandom("wmco versioned test payload", size, kv, p)
			}
			if err := writeFile(dir, p, content); err != nil {
				return nil, err
			}
		}
	}
	m, err := payload.Create(dir, kv, kv)
	if err != nil {
		return nil, err
	}
	for i, f := range m.Files {
		if f.Component == payload.ComponentKubelet || f.Component == payload.ComponentKubeProxy {
			m.Files[i].Source, m.Files[i].Version = kubernetesSource+"@"+kv, kv
		}
	}
	return finish(dir, m)
}

// DeriveOptions say which files Derive changes.
type DeriveOptions struct {
	// Change lists the payload paths whose content changes, at least one,
	// e.g. payload.WindowsExporterPath alone, or with payload.KubeletPath.
	Change []string
	// Size of each changed file; DefaultChangedFileSize when zero.
	Size int64
	// Salt tells derived payloads of the same source apart: the same
	// source, Change, Size and Salt give the same bytes.
	Salt string
	// KubernetesVersion, when set, is the derived payload's Kubernetes
	// version (the source's when empty): a changed kubelet.exe or
	// kube-proxy.exe then records it as its version, as a rebuild of a
	// new Kubernetes release would.
	KubernetesVersion string
}

// Derive writes into dst (created; it must not hold anything yet) the
// payload in src with the content of each of opts.Change replaced by
// opts.Size bytes of deterministic pseudo-random data, and returns its
// manifest. Every other file is copied byte for byte and keeps its
// manifest entry, source and version included; a changed file keeps its
// source and version (a rebuilt kubelet.exe still reports src's Kubernetes
// version, which KubeletBinaries maps its new SHA-256 to). The Kubernetes
// version is src's and the payload Version the new content's
// [payload.Manifest.ContentVersion], so it differs from src's.
func Derive(src, dst string, opts DeriveOptions) (*payload.Manifest, error) {
	fail := func(err error) (*payload.Manifest, error) {
		return nil, fmt.Errorf("derive test payload from %s: %w", src, err)
	}
	if opts.Size == 0 {
		opts.Size = DefaultChangedFileSize
	}
	if opts.Size < 0 {
		return fail(fmt.Errorf("size %d must not be negative", opts.Size))
	}
	from, err := payload.Load(src)
	if err != nil {
		return fail(err)
	}
	if len(opts.Change) == 0 {
		return fail(errors.New("no file to change"))
	}
	for i, p := range opts.Change {
		if !slices.ContainsFunc(from.Files, func(f payload.File) bool { return f.Path == p }) {
			return fail(fmt.Errorf("%q is not a file of payload %s", p, from.Version))
		}
		if slices.Contains(opts.Change[:i], p) {
			return fail(fmt.Errorf("%q given twice", p))
		}
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fail(err)
	}
	if entries, err := os.ReadDir(dst); err != nil {
		return fail(err)
	} else if len(entries) > 0 {
		return fail(fmt.Errorf("%s is not empty", dst))
	}
	for _, f := range from.Files {
		var err error
		if slices.Contains(opts.Change, f.Path) {
			err = writeFile(dst, f.Path, pseudoRandom("wmco derived test payload", opts.Size, from.Version, opts.Salt+opts.KubernetesVersion, f.Path))
		} else {
			err = copyFile(src, dst, f.Path)
		}
		if err != nil {
			return fail(err)
		}
	}
	kv := from.KubernetesVersion
	if opts.KubernetesVersion != "" {
		kv = opts.KubernetesVersion
	}
	m, err := payload.Create(dst, from.Version, kv)
	if err != nil {
		return fail(err)
	}
	for i, f := range m.Files {
		old, _ := from.File(f.Path)
		changed := slices.Contains(opts.Change, f.Path)
		if changed && f.SHA256 == old.SHA256 {
			return fail(fmt.Errorf("%s: the new content is the old one", f.Path))
		}
		m.Files[i].Source, m.Files[i].Version = old.Source, old.Version
		if changed && kv != from.KubernetesVersion && (f.Component == payload.ComponentKubelet || f.Component == payload.ComponentKubeProxy) {
			m.Files[i].Source, m.Files[i].Version = kubernetesSource+"@"+kv, kv
		}
	}
	if m, err = finish(dst, m); err != nil {
		return fail(err)
	}
	return m, nil
}

// KubeletBinaries maps the SHA-256 of each manifest's kubelet.exe to the
// version it reports (the file's recorded version, else the manifest's
// Kubernetes version), for simagent.Options.KubeletBinaries: a simulated
// host then reports the kubelet version of the bytes it really runs.
func KubeletBinaries(manifests ...*payload.Manifest) map[string]string {
	out := make(map[string]string, len(manifests))
	for _, m := range manifests {
		f, ok := m.File(payload.KubeletPath)
		if !ok {
			continue
		}
		v := f.Version
		if v == "" {
			v = m.KubernetesVersion
		}
		out[f.SHA256] = v
	}
	return out
}

// finish names the payload by its content, validates it and writes its
// manifest.
func finish(dir string, m *payload.Manifest) (*payload.Manifest, error) {
	m.Version = m.ContentVersion()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := m.WriteFile(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// pseudoRandom is size bytes of deterministic pseudo-random data seeded by
// parts.
func pseudoRandom(kind string, size int64, parts ...string) io.Reader {
	h := sha256.New()
	_, _ = io.WriteString(h, kind)
	for _, p := range parts {
		_, _ = io.WriteString(h, "\x00"+p)
	}
	var seed [32]byte
	copy(seed[:], h.Sum(nil))
	return io.LimitReader(rand.NewChaCha8(seed), size)
}

// copyFile copies srcDir/path to dstDir/path (forward slashes).
func copyFile(srcDir, dstDir, path string) error {
	in, err := os.Open(filepath.Join(srcDir, filepath.FromSlash(path)))
	if err != nil {
		return err
	}
	defer in.Close() //nolint:errcheck // read-only: Close cannot lose data
	return writeFile(dstDir, path, in)
}

// writeFile writes dir/path (forward slashes) from content.
func writeFile(dir, path string, content io.Reader) error {
	name := filepath.Join(dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // for the error paths; the success path returns Close's error
	if _, err := io.Copy(f, content); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}
