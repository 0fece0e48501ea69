/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"encoding/json"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and
// whatever it accepts must be safe to use as paths on the host and in the
// operator's payload directory.
func FuzzDecode(f *testing.F) {
	valid, err := validManifest().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":"v1","kubernetesVersion":"v1.37.2","files":[{"path":"../x","component":"cni","size":1,"sha256":""}]}`))
	f.Add([]byte(strings.Replace(string(valid), `"cni/host-local.exe"`, `"cni/../host-local.exe"`, 1)))
	f.Add([]byte(strings.Replace(string(valid), `"cni/host-local.exe"`, `"cni\\host-local.exe"`, 1)))
	f.Add([]byte(strings.Replace(string(valid), `"cni/host-local.exe"`, `"CNI/HOST-LOCAL.EXE"`, 1)))
	f.Add([]byte(strings.Replace(string(valid), `"component": "cni",`, `"component": "cni", "source": "github.com/containernetworking/plugins@v1.9.1", "version": "v1.9.1",`, 1)))
	f.Add([]byte(strings.Replace(string(valid), `"component": "cni",`, `"component": "cni", "source": "../x@v1 y", "version": "nul",`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		checkSafe(t, m)
	})
}

// FuzzManifestPath puts an arbitrary path, as an extra CNI file, into an
// otherwise valid manifest: reaching path validation through the decoder
// far more often than byte mutations of a whole manifest do.
func FuzzManifestPath(f *testing.F) {
	for _, seed := range []string{
		"cni/win-bridge.exe", "cni/../x", "cni/./x", `cni\x`, "cni/x/", "cni//x", "cni/nul", "cni/x.",
		"cni/ x", "cni/x:y", "/cni/x", "C:/x", "cni/\u00e9", "cni/x\x00", "cni/host-local.exe/x", "CNI/WIN-OVERLAY.EXE",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, p string) {
		m := validManifest()
		m.Files = append(m.Files, File{Path: p, Component: ComponentCNI, Size: 1, SHA256: strings.Repeat("0", 64)})
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(data)
		if err != nil {
			return
		}
		checkSafe(t, got)
	})
}

// checkSafe asserts, independently of ValidatePath, that every path of an
// accepted manifest stays inside the payload directory on Linux and on
// Windows and that no two name the same file on NTFS.
func checkSafe(t *testing.T, m *Manifest) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("Decode accepted a manifest Validate rejects: %v", err)
	}
	if m.Version == "." || m.Version == ".." || strings.ContainsAny(m.Version, "/\\:\x00") {
		t.Fatalf("unsafe version %q accepted", m.Version)
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		p := f.Path
		if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\:\x00") || filepath.IsAbs(p) {
			t.Fatalf("unsafe path %q accepted", p)
		}
		if path.Clean(p) != p {
			t.Fatalf("non-canonical path %q accepted", p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == ".." || seg == "." || strings.TrimRight(seg, ". ") != seg {
				t.Fatalf("path %q with segment %q accepted", p, seg)
			}
		}
		joined := filepath.Join("/payload", filepath.FromSlash(p))
		if !strings.HasPrefix(joined, "/payload/") {
			t.Fatalf("path %q leaves the payload directory: %s", p, joined)
		}
		host := HostPath(m.Version, p)
		if !strings.HasPrefix(host, HostDir(m.Version)+`\`) || strings.Contains(host, `\..\`) {
			t.Fatalf("host path %q of %q leaves the version directory", host, p)
		}
		key := strings.ToLower(p)
		if seen[key] {
			t.Fatalf("two files named %q ignoring case", p)
		}
		seen[key] = true
		if strings.ContainsAny(f.Source, " \t\n\x00\\") || strings.Contains(f.Source, "..") ||
			(f.Source != "" && strings.Count(f.Source, "@") != 1) {
			t.Fatalf("unsafe source %q accepted", f.Source)
		}
		if f.Version != "" && ValidateVersion(f.Version) != nil {
			t.Fatalf("invalid file version %q accepted", f.Version)
		}
		if f.Size < 0 || len(f.SHA256) != 64 || !f.Component.Known() {
			t.Fatalf("bad file entry accepted: %+v", f)
		}
	}
}
