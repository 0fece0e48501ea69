/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Defaults of TestPayloadOptions.
const (
	DefaultTestVersion           = "v0.0.0-test"
	DefaultTestKubernetesVersion = "v1.37.2"
)

// TestPayloadOptions shape the fake payload WriteTestPayload writes.
type TestPayloadOptions struct {
	// Version of the payload; DefaultTestVersion when empty.
	Version string
	// KubernetesVersion of the payload; DefaultTestKubernetesVersion when
	// empty.
	KubernetesVersion string
	// FileSize, when positive, makes every file exactly this many bytes of
	// deterministic pseudo-random data (for transfer benchmarks). When
	// zero, each file is one short line of text.
	FileSize int64
}

// WriteTestPayload writes a fake payload into dir, for tests and the demo:
// every component's required files, with content derived only from the
// version and the path (the same options always give the same bytes), and
// a real manifest.json. The files are not Windows programs.
func WriteTestPayload(dir string, opts TestPayloadOptions) (*Manifest, error) {
	if opts.Version == "" {
		opts.Version = DefaultTestVersion
	}
	if opts.KubernetesVersion == "" {
		opts.KubernetesVersion = DefaultTestKubernetesVersion
	}
	if opts.FileSize < 0 {
		return nil, fmt.Errorf("write test payload: FileSize %d must not be negative", opts.FileSize)
	}
	if err := ValidateVersion(opts.Version); err != nil {
		return nil, fmt.Errorf("write test payload: version %q: %w", opts.Version, err)
	}
	for _, c := range Components() {
		for _, p := range requiredFiles[c] {
			if err := writeTestFile(dir, opts, p); err != nil {
				return nil, fmt.Errorf("write test payload: %w", err)
			}
		}
	}
	m, err := Create(dir, opts.Version, opts.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("write test payload: %w", err)
	}
	if err := m.WriteFile(dir); err != nil {
		return nil, fmt.Errorf("write test payload: %w", err)
	}
	return m, nil
}

func writeTestFile(dir string, opts TestPayloadOptions, path string) error {
	name := filepath.Join(dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
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
