/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/version"
)

// FindDir returns the payload directory to load under dir (the operator's
// --payload-dir): dir itself when it holds a manifest.json, otherwise the
// subdirectory named as a Kubernetes version (as make payload writes
// payload/v1.37.2/) that holds a manifest.json, the highest version when
// there are several. versions lists every versioned payload found, highest
// first, so the caller can say what it passed over.
//
// The highest version is not always the one to use: [SelectVersion]
// picks among versions the one that fits the API server.
func FindDir(dir string) (chosen string, versions []string, err error) {
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		return dir, nil, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", nil, fmt.Errorf("read payload manifest: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", nil, fmt.Errorf("read payload directory: %w", err)
	}
	type candidate struct {
		name string
		v    *version.Version
	}
	var found []candidate
	for _, e := range entries {
		if !e.IsDir() || ValidateKubernetesVersion(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), ManifestFile)); err != nil {
			continue
		}
		v, err := version.ParseSemantic(e.Name())
		if err != nil {
			continue
		}
		found = append(found, candidate{e.Name(), v})
	}
	if len(found) == 0 {
		return "", nil, fmt.Errorf("read payload manifest: no %s in %s nor in a subdirectory named as a Kubernetes version such as v1.37.2 (make payload builds one)", ManifestFile, dir)
	}
	// Highest first; equal versions (v1.37.2+a, v1.37.2+b) by name.
	slices.SortFunc(found, func(a, b candidate) int {
		switch {
		case a.v.LessThan(b.v):
			return 1
		case b.v.LessThan(a.v):
			return -1
		}
		return strings.Compare(a.name, b.name)
	})
	for _, c := range found {
		versions = append(versions, c.name)
	}
	return filepath.Join(dir, versions[0]), versions, nil
}
