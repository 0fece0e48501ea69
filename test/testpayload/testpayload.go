/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package testpayload writes fake Windows payloads for tests, the demo and
// the benchmark. It is test code: production packages never import it.
package testpayload

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/openwmco/wmco/pkg/payload"
)

// Defaults of Options.
const (
	DefaultVersion           = "v0.0.0-test"
	DefaultKubernetesVersion = "v1.37.2"
)

// Options shape the fake payload Write writes.
type Options struct {
	// Version of the payload; DefaultVersion when empty.
	Version string
	// KubernetesVersion of the payload; DefaultKubernetesVersion when
	// empty.
	KubernetesVersion string
	// FileSize, when positive, makes every file exactly this many bytes of
	// deterministic pseudo-random data (for transfer benchmarks). When
	// zero, each file is one short line of text.
	FileSize int64
}

// Write writes a fake payload into dir, for tests and the demo:
// every component's required files, with content derived only from the
// version and the path (the same options always give the same bytes), and
// a real manifest.json. The files are not Windows programs.
func Write(dir string, opts Options) (*payload.Manifest, error) {
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.KubernetesVersion == "" {
		opts.KubernetesVersion = DefaultKubernetesVersion
	}
	if opts.FileSize < 0 {
		return nil, fmt.Errorf("write test payload: FileSize %d must not be negative", opts.FileSize)
	}
	if err := payload.ValidateVersion(opts.Version); err != nil {
		return nil, fmt.Errorf("write test payload: version %q: %w", opts.Version, err)
	}
	for _, c := range payload.Components() {
		for _, p := range payload.RequiredFiles(c) {
			if err := writeTestFile(dir, opts, p); err != nil {
				return nil, fmt.Errorf("write test payload: %w", err)
			}
		}
	}
	m, err := payload.Create(dir, opts.Version, opts.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("write test payload: %w", err)
	}
	if err := m.WriteFile(dir); err != nil {
		return nil, fmt.Errorf("write test payload: %w", err)
	}
	return m, nil
}

func writeTestFile(dir string, opts Options, path string) error {
	name := filepath.Join(dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // for the error paths; the success path returns Close's error
	if opts.FileSize == 0 {
		_, err = fmt.Fprintf(f, "fake %s of test payload %s\n", path, opts.Version)
	} else {
		seed := sha256.Sum256([]byte("wmco test payload\x00" + opts.Version + "\x00" + path))
		_, err = io.CopyN(f, rand.NewChaCha8(seed), opts.FileSize)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return f.Close()
}

// Derive writes into dstDir a payload of version (Kubernetes version
// kubernetesVersion) that is the payload in srcDir with the files at the
// paths change given new content of the same size, and every other file
// byte-identical: what a rebuild that changed only those components
// produces.
func Derive(srcDir, dstDir, version, kubernetesVersion string, change ...string) (*payload.Manifest, error) {
	src, err := payload.Load(srcDir)
	if err != nil {
		return nil, fmt.Errorf("derive test payload: %w", err)
	}
	for _, f := range src.Files {
		from := filepath.Join(srcDir, filepath.FromSlash(f.Path))
		to := filepath.Join(dstDir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(from)
		if err != nil {
			return nil, err
		}
		if slices.Contains(change, f.Path) {
			seed := sha256.Sum256([]byte("wmco derived payload\x00" + version + "\x00" + f.Path))
			if _, err := io.ReadFull(rand.NewChaCha8(seed), data); err != nil {
				return nil, err
			}
			if len(data) == 0 {
				data = []byte("changed " + f.Path + " of " + version + "\n")
			}
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			return nil, err
		}
	}
	m, err := payload.Create(dstDir, version, kubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("derive test payload: %w", err)
	}
	if err := m.WriteFile(dstDir); err != nil {
		return nil, fmt.Errorf("derive test payload: %w", err)
	}
	return m, nil
}
