/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package testpayload_test

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/testpayload"
)

// changedPaths lists the paths whose SHA-256 differs between a and b,
// which must list the same paths.
func changedPaths(g Gomega, a, b *payload.Manifest) []string {
	g.Expect(b.Files).To(HaveLen(len(a.Files)))
	var out []string
	for i, f := range a.Files {
		g.Expect(b.Files[i].Path).To(Equal(f.Path))
		if b.Files[i].SHA256 != f.SHA256 {
			out = append(out, f.Path)
		}
	}
	return out
}

func TestWriteVersioned(t *testing.T) {
	g := NewWithT(t)
	parent := t.TempDir()
	ms, err := testpayload.WriteVersioned(parent, testpayload.Options{FileSize: 1000}, "v1.36.9", "v1.37.2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ms).To(HaveLen(2))

	// The operator's way in: the highest version first, each loadable.
	chosen, versions, err := payload.FindDir(parent)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(chosen).To(Equal(filepath.Join(parent, "v1.37.2")))
	g.Expect(versions).To(Equal([]string{"v1.37.2", "v1.36.9"}))
	g.Expect(payload.SelectVersion(versions, "v1.36.9")).To(Equal("v1.36.9"))

	for i, kv := range []string{"v1.36.9", "v1.37.2"} {
		m := ms[i]
		g.Expect(m.KubernetesVersion).To(Equal(kv))
		g.Expect(m.Version).To(Equal(m.ContentVersion()))
		g.Expect(m.Version).To(MatchRegexp(`^` + kv + `-[0-9a-f]{12}$`))
		loaded, err := payload.Load(filepath.Join(parent, kv))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(loaded).To(Equal(m))
		for _, f := range m.Files {
			g.Expect(f.Size).To(BeEquivalentTo(1000))
		}
		for _, p := range []string{payload.KubeletPath, payload.KubeProxyPath} {
			f, ok := m.File(p)
			g.Expect(ok).To(BeTrue())
			g.Expect(f.Version).To(Equal(kv), p)
			g.Expect(f.Source).To(Equal("k8s.io/kubernetes@"+kv), p)
		}
		f, _ := m.File(payload.WindowsExporterPath)
		g.Expect(f.Version).To(BeEmpty())
	}
	g.Expect(changedPaths(g, ms[0], ms[1])).To(HaveLen(len(ms[0].Files)), "every file differs between versions")

	g.Expect(testpayload.KubeletBinaries(ms...)).To(Equal(map[string]string{
		kubeletSHA(ms[0]): "v1.36.9",
		kubeletSHA(ms[1]): "v1.37.2",
	}))

	// Deterministic: the same versions give the same bytes.
	again, err := testpayload.WriteVersioned(t.TempDir(), testpayload.Options{FileSize: 1000}, "v1.36.9", "v1.37.2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(ms))
}

func kubeletSHA(m *payload.Manifest) string {
	f, _ := m.File(payload.KubeletPath)
	return f.SHA256
}

func TestWriteVersionedRefuses(t *testing.T) {
	for name, call := range map[string]func(dir string) error{
		"payload version in options": func(dir string) error {
			_, err := testpayload.WriteVersioned(dir, testpayload.Options{Version: "v1"}, "v1.37.2")
			return err
		},
		"kubernetes version in options": func(dir string) error {
			_, err := testpayload.WriteVersioned(dir, testpayload.Options{KubernetesVersion: "v1.37.2"}, "v1.37.2")
			return err
		},
		"no version": func(dir string) error {
			_, err := testpayload.WriteVersioned(dir, testpayload.Options{})
			return err
		},
		"not a Kubernetes version": func(dir string) error {
			_, err := testpayload.WriteVersioned(dir, testpayload.Options{}, "1.37")
			return err
		},
		"twice": func(dir string) error {
			_, err := testpayload.WriteVersioned(dir, testpayload.Options{}, "v1.37.2", "v1.37.2")
			return err
		},
		"negative size": func(dir string) error {
			_, err := testpayload.WriteVersioned(dir, testpayload.Options{FileSize: -1}, "v1.37.2")
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			NewWithT(t).Expect(call(t.TempDir())).To(HaveOccurred())
		})
	}
}

func TestDerive(t *testing.T) {
	g := NewWithT(t)
	parent := t.TempDir()
	ms, err := testpayload.WriteVersioned(parent, testpayload.Options{}, "v1.37.2")
	g.Expect(err).NotTo(HaveOccurred())
	src, from := filepath.Join(parent, "v1.37.2"), ms[0]

	for _, tc := range []struct {
		name   string
		change []string
	}{
		{"exporter only", []string{payload.WindowsExporterPath}},
		{"exporter and kubelet", []string{payload.WindowsExporterPath, payload.KubeletPath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			dst := filepath.Join(t.TempDir(), "derived")
			m, err := testpayload.Derive(src, dst, testpayload.DeriveOptions{Change: tc.change})
			g.Expect(err).NotTo(HaveOccurred())

			loaded, err := payload.Load(dst)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(loaded).To(Equal(m))
			g.Expect(m.KubernetesVersion).To(Equal(from.KubernetesVersion))
			g.Expect(m.Version).To(Equal(m.ContentVersion()))
			g.Expect(m.Version).NotTo(Equal(from.Version))

			g.Expect(changedPaths(g, from, m)).To(ConsistOf(tc.change))
			for i, f := range m.Files {
				old := from.Files[i]
				g.Expect(f.Source).To(Equal(old.Source), f.Path)
				g.Expect(f.Version).To(Equal(old.Version), f.Path)
				if f.SHA256 == old.SHA256 {
					g.Expect(f).To(Equal(old))
				} else {
					g.Expect(f.Size).To(BeEquivalentTo(testpayload.DefaultChangedFileSize), f.Path)
				}
			}
			// A simulated host reports the same version for the old and
			// the new kubelet bytes.
			for _, v := range testpayload.KubeletBinaries(from, m) {
				g.Expect(v).To(Equal("v1.37.2"))
			}

			// The same options give the same bytes; another salt others.
			same, err := testpayload.Derive(src, filepath.Join(t.TempDir(), "same"), testpayload.DeriveOptions{Change: tc.change})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(same).To(Equal(m))
			salted, err := testpayload.Derive(src, filepath.Join(t.TempDir(), "salted"), testpayload.DeriveOptions{Change: tc.change, Salt: "2", Size: 1000})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(changedPaths(g, m, salted)).To(ConsistOf(tc.change))
		})
	}

	// A new Kubernetes release: the changed kubelet records it, the
	// unchanged files keep theirs.
	next, err := testpayload.Derive(src, filepath.Join(t.TempDir(), "next"), testpayload.DeriveOptions{
		Change: []string{payload.KubeletPath}, KubernetesVersion: "v1.38.1",
	})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(next.KubernetesVersion).To(Equal("v1.38.1"))
	g.Expect(next.Version).To(HavePrefix("v1.38.1-"))
	g.Expect(changedPaths(g, from, next)).To(ConsistOf(payload.KubeletPath))
	kubelet, _ := next.File(payload.KubeletPath)
	g.Expect(kubelet.Version).To(Equal("v1.38.1"))
	g.Expect(kubelet.Source).To(Equal("k8s.io/kubernetes@v1.38.1"))
	g.Expect(testpayload.KubeletBinaries(next)).To(HaveKeyWithValue(kubelet.SHA256, "v1.38.1"))
}

func TestDeriveRefuses(t *testing.T) {
	g := NewWithT(t)
	parent := t.TempDir()
	_, err := testpayload.WriteVersioned(parent, testpayload.Options{}, "v1.37.2")
	g.Expect(err).NotTo(HaveOccurred())
	src := filepath.Join(parent, "v1.37.2")

	nonEmpty := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o600)).To(Succeed())
	for name, tc := range map[string]struct {
		dst  string
		opts testpayload.DeriveOptions
	}{
		"nothing to change":  {"", testpayload.DeriveOptions{}},
		"not a payload file": {"", testpayload.DeriveOptions{Change: []string{"kubectl.exe"}}},
		"a path by case":     {"", testpayload.DeriveOptions{Change: []string{"Kubelet.exe"}}},
		"twice":              {"", testpayload.DeriveOptions{Change: []string{payload.KubeletPath, payload.KubeletPath}}},
		"negative size":      {"", testpayload.DeriveOptions{Change: []string{payload.KubeletPath}, Size: -1}},
		"non-empty dst":      {nonEmpty, testpayload.DeriveOptions{Change: []string{payload.KubeletPath}}},
	} {
		t.Run(name, func(t *testing.T) {
			dst := tc.dst
			if dst == "" {
				dst = filepath.Join(t.TempDir(), "d")
			}
			_, err := testpayload.Derive(src, dst, tc.opts)
			NewWithT(t).Expect(err).To(HaveOccurred())
		})
	}

	// A source whose files do not match its manifest is refused.
	g.Expect(os.WriteFile(filepath.Join(src, payload.CSIProxyPath), []byte("tampered"), 0o600)).To(Succeed())
	_, err = testpayload.Derive(src, filepath.Join(t.TempDir(), "d"), testpayload.DeriveOptions{Change: []string{payload.KubeletPath}})
	g.Expect(err).To(MatchError(payload.ErrFileMismatch))
}
