/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package testpayload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/proc"
)

// RealRequiredEnv is the environment variable that, set to 1, makes tests that use the real payload fail
// when it has not been built instead of skipping (make test-real-payload).
const RealRequiredEnv = "WMCO_REAL_PAYLOAD"

// ErrNoRealPayload is returned when make payload has not built a payload
// in this clone.
var ErrNoRealPayload = errors.New("no real payload: run make payload to build payload/<kubernetes-version>/")

// Real finds the payload make payload built, the highest version under
// the repository's payload/ directory, and loads it (checking every
// file's SHA-256). parent is payload/ itself, as the operator's
// --payload-dir takes it; dir is the chosen version's directory.
func Real() (parent, dir string, m *payload.Manifest, err error) {
	root, err := proc.RepoRoot()
	if err != nil {
		return "", "", nil, err
	}
	parent = filepath.Join(root, "payload")
	if _, err := os.Stat(parent); errors.Is(err, os.ErrNotExist) {
		return "", "", nil, ErrNoRealPayload
	}
	dir, _, err = payload.FindDir(parent)
	if err != nil {
		return "", "", nil, fmt.Errorf("%w: %w", ErrNoRealPayload, err)
	}
	if m, err = payload.Load(dir); err != nil {
		return "", "", nil, err
	}
	return parent, dir, m, nil
}

// RealRequired reports whether RealRequiredEnv asks for the real payload.
func RealRequired() bool { return os.Getenv(RealRequiredEnv) == "1" }
