/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package testpayload_test

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/testpayload"
)

func TestWriteAndLoad(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	written, err := testpayload.Write(dir, testpayload.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(written.Version).To(Equal(testpayload.DefaultVersion))
	g.Expect(written.KubernetesVersion).To(Equal(testpayload.DefaultKubernetesVersion))

	loaded, err := payload.Load(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(loaded).To(Equal(written))

	// Every component's required and optional files are there, with
	// their component, and win-bridge for flannel's host-gw.
	for _, c := range payload.Components() {
		files := loaded.ComponentFiles(c)
		var paths []string
		for _, f := range files {
			g.Expect(f.Component).To(Equal(c))
			paths = append(paths, f.Path)
		}
		want := append(payload.RequiredFiles(c), payload.OptionalFiles(c)...)
		if c == payload.ComponentCNI {
			want = append(want, payload.CNIWinBridgePath)
		}
		g.Expect(paths).To(ConsistOf(want), "component %s", c)
	}
	g.Expect(loaded.ComponentFiles(payload.ComponentFlannel)).To(HaveLen(1))
	g.Expect(loaded.ComponentFiles(payload.ComponentContainerd)).To(HaveLen(2))
	g.Expect(loaded.ComponentFiles("nope")).To(BeEmpty())

	f, ok := loaded.File("CNI/Win-Overlay.exe")
	g.Expect(ok).To(BeTrue(), "lookup ignores case, as Windows does")
	g.Expect(f.Path).To(Equal(payload.CNIWinOverlayPath))
	_, ok = loaded.File("kubectl.exe")
	g.Expect(ok).To(BeFalse())
}

func TestWriteDeterministic(t *testing.T) {
	g := NewWithT(t)
	a, err := testpayload.Write(t.TempDir(), testpayload.Options{Version: "v1", FileSize: 100_000})
	g.Expect(err).NotTo(HaveOccurred())
	b, err := testpayload.Write(t.TempDir(), testpayload.Options{Version: "v1", FileSize: 100_000})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(a).To(Equal(b), "same options, same bytes")

	c, err := testpayload.Write(t.TempDir(), testpayload.Options{Version: "v2", FileSize: 100_000})
	g.Expect(err).NotTo(HaveOccurred())
	seen := map[string]bool{}
	for i := range a.Files {
		g.Expect(a.Files[i].Size).To(BeEquivalentTo(100_000))
		g.Expect(a.Files[i].SHA256).NotTo(Equal(c.Files[i].SHA256), "content depends on the version")
		g.Expect(seen[a.Files[i].SHA256]).To(BeFalse(), "content depends on the path")
		seen[a.Files[i].SHA256] = true
	}

	_, err = testpayload.Write(t.TempDir(), testpayload.Options{Version: "../x"})
	g.Expect(err).To(MatchError(ContainSubstring(`version "../x"`)))
	_, err = testpayload.Write(t.TempDir(), testpayload.Options{FileSize: -1})
	g.Expect(err).To(HaveOccurred())
}
