/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package testpayload writes fake Windows payloads for tests, the demo and
// the benchmark. It is test code: production packages never import it.
package testpayload

import (
	"fmt"
	"strings"

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
// every component's required and optional files and cni/win-bridge.exe, with content derived only from the
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
		// The optional files too (flanneld), and win-bridge: a simulated
		// host may join with any network type.
		files := append(payload.RequiredFiles(c), payload.OptionalFiles(c)...)
		if c == payload.ComponentCNI {
			files = append(files, payload.CNIWinBridgePath)
		}
		for _, p := range files {
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
	if opts.FileSize == 0 {
		return writeFile(dir, path, strings.NewReader(fmt.Sprintf("fake %s of test payload %s\n", path, opts.Version)))
	}
	return writeFile(dir, path, pseudoRandom("wmco test payload", opts.FileSize, opts.Version, path))
}
