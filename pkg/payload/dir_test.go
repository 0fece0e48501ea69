/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestFindDir(t *testing.T) {
	manifest := func(t *testing.T, dir string) {
		writeFile(t, filepath.Join(dir, ManifestFile), []byte("{}"))
	}
	cases := []struct {
		name string
		// layout writes the payload directory's content.
		layout       func(t *testing.T, dir string)
		wantSub      string
		wantVersions []string
		wantErr      string
	}{
		{name: "manifest at the top", layout: func(t *testing.T, dir string) {
			manifest(t, dir)
			manifest(t, filepath.Join(dir, "v1.99.0"))
		}, wantSub: "."},
		{name: "one versioned payload", layout: func(t *testing.T, dir string) {
			manifest(t, filepath.Join(dir, "v1.37.2"))
		}, wantSub: "v1.37.2", wantVersions: []string{"v1.37.2"}},
		{name: "highest version, not the last name", layout: func(t *testing.T, dir string) {
			for _, v := range []string{"v1.9.0", "v1.37.2", "v1.37.10", "v1.37.11-rc.1", "v1.36.5"} {
				manifest(t, filepath.Join(dir, v))
			}
		}, wantSub: "v1.37.11-rc.1", wantVersions: []string{"v1.37.11-rc.1", "v1.37.10", "v1.37.2", "v1.36.5", "v1.9.0"}},
		{name: "a release sorts above its release candidate", layout: func(t *testing.T, dir string) {
			manifest(t, filepath.Join(dir, "v1.38.0-rc.1"))
			manifest(t, filepath.Join(dir, "v1.38.0"))
		}, wantSub: "v1.38.0", wantVersions: []string{"v1.38.0", "v1.38.0-rc.1"}},
		{name: "directories that are not payloads are passed over", layout: func(t *testing.T, dir string) {
			manifest(t, filepath.Join(dir, "v1.36.1"))
			manifest(t, filepath.Join(dir, "latest"))
			manifest(t, filepath.Join(dir, "v1.37.2.partial"))
			if err := os.MkdirAll(filepath.Join(dir, "v1.99.0"), 0o755); err != nil { // no manifest
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "v1.98.0"), []byte("a file")) // not a directory
		}, wantSub: "v1.36.1", wantVersions: []string{"v1.36.1"}},
		{name: "empty", layout: func(*testing.T, string) {}, wantErr: "no manifest.json in"},
		{name: "missing", layout: func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "read payload directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dir := t.TempDir()
			tc.layout(t, dir)
			got, versions, err := FindDir(dir)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(filepath.Join(dir, tc.wantSub)))
			g.Expect(versions).To(Equal(tc.wantVersions))
		})
	}
}
