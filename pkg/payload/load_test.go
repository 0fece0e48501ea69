/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload_test

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/testpayload"
)

// Load verifies a payload written as tests write them; every kind of
// damage is named.
func TestLoadVerify(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{name: "intact", damage: func(*testing.T, string) {}},
		{name: "content changed, same size", damage: func(t *testing.T, dir string) {
			name := filepath.Join(dir, payload.KubeletPath)
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			data[0] ^= 0xff
			writeLoadTestFile(t, name, data)
		}, want: []string{`payload file "kubelet.exe": payload file does not match the manifest: sha256 is `}},
		{name: "truncated", damage: func(t *testing.T, dir string) {
			writeLoadTestFile(t, filepath.Join(dir, "cni", "win-overlay.exe"), []byte("x"))
		}, want: []string{`payload file "cni/win-overlay.exe"`, "size is 1 bytes, the manifest says"}},
		{name: "missing", damage: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, payload.CSIProxyPath)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{`payload file "csi-proxy.exe"`, "missing from"}},
		{name: "several", damage: func(t *testing.T, dir string) {
			_ = os.Remove(filepath.Join(dir, payload.CSIProxyPath))
			_ = os.Remove(filepath.Join(dir, payload.WICDPath))
		}, want: []string{`"csi-proxy.exe"`, `"wicd.exe"`}},
		{name: "symbolic link", damage: func(t *testing.T, dir string) {
			name := filepath.Join(dir, payload.KubeProxyPath)
			target := filepath.Join(t.TempDir(), "elsewhere.exe")
			data, _ := os.ReadFile(name)
			writeLoadTestFile(t, target, data)
			_ = os.Remove(name)
			if err := os.Symlink(target, name); err != nil {
				t.Skip("no symlinks:", err)
			}
		}, want: []string{`payload file "kube-proxy.exe"`, "is a symbolic link"}},
		{name: "symbolic link directory", damage: func(t *testing.T, dir string) {
			cni := filepath.Join(dir, "cni")
			moved := filepath.Join(t.TempDir(), "cni")
			if err := os.Rename(cni, moved); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(moved, cni); err != nil {
				t.Skip("no symlinks:", err)
			}
		}, want: []string{`payload file "cni/host-local.exe"`, "is a symbolic link"}},
		{name: "directory instead of file", damage: func(t *testing.T, dir string) {
			name := filepath.Join(dir, payload.WindowsExporterPath)
			_ = os.Remove(name)
			if err := os.Mkdir(name, 0o755); err != nil {
				t.Fatal(err)
			}
		}, want: []string{`payload file "windows_exporter.exe"`, "is not a regular file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dir := t.TempDir()
			_, err := testpayload.Write(dir, testpayload.Options{})
			g.Expect(err).NotTo(HaveOccurred())
			tc.damage(t, dir)
			_, err = payload.Load(dir)
			if len(tc.want) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(payload.ErrFileMismatch))
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

func writeLoadTestFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
