package payload_test

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/testpayload"
)

// Open vouches for a file's hash only while the file is the one Load
// verified, unchanged: touched, replaced, or never verified, an upload
// hashes it again.
func TestOpenVouchesOnlyForTheVerifiedFile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("files are identified on Linux only, where the operator runs")
	}
	g := NewWithT(t)
	dir := t.TempDir()
	_, err := testpayload.Write(dir, testpayload.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	vouched := func(m *payload.Manifest, path string) string {
		f, ok := m.File(path)
		g.Expect(ok).To(BeTrue(), path)
		src, err := payload.Open(dir, f)
		g.Expect(err).NotTo(HaveOccurred())
		defer func() { _ = src.Close() }()
		data, err := io.ReadAll(src)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(int64(len(data))).To(Equal(f.Size), "Open reads the file")
		return src.VerifiedSHA256()
	}
	name := filepath.Join(dir, payload.KubeletPath)

	// Not verified in this process yet.
	m, err := payload.Decode(mustRead(t, filepath.Join(dir, payload.ManifestFile)))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vouched(m, payload.KubeletPath)).To(BeEmpty())

	m, err = payload.Load(dir)
	g.Expect(err).NotTo(HaveOccurred())
	kubelet, _ := m.File(payload.KubeletPath)
	g.Expect(vouched(m, payload.KubeletPath)).To(Equal(kubelet.SHA256))

	// Touched (its times change): hashed again, until verified again.
	g.Expect(os.Chtimes(name, time.Now(), time.Now().Add(-time.Hour))).To(Succeed())
	g.Expect(vouched(m, payload.KubeletPath)).To(BeEmpty())
	_, err = payload.Load(dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vouched(m, payload.KubeletPath)).To(Equal(kubelet.SHA256))

	// Replaced by a file with the same bytes and times: another file.
	data := mustRead(t, name)
	info, err := os.Stat(name)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.WriteFile(name+".new", data, 0o644)).To(Succeed())
	g.Expect(os.Chtimes(name+".new", info.ModTime(), info.ModTime())).To(Succeed())
	g.Expect(os.Rename(name+".new", name)).To(Succeed())
	g.Expect(vouched(m, payload.KubeletPath)).To(BeEmpty())

	// A manifest that lists another hash for the path is not vouched for.
	_, err = payload.Load(dir)
	g.Expect(err).NotTo(HaveOccurred())
	other := *m
	other.Files = append([]payload.File(nil), m.Files...)
	for i := range other.Files {
		if other.Files[i].Path == payload.KubeletPath {
			other.Files[i].SHA256 = "00" + other.Files[i].SHA256[2:]
		}
	}
	g.Expect(vouched(&other, payload.KubeletPath)).To(BeEmpty())
	g.Expect(vouched(m, payload.KubeletPath)).To(Equal(kubelet.SHA256))
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
