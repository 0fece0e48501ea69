package wicd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestRotatingLogKeepsTheNewestFiles(t *testing.T) {
	g := NewWithT(t)
	path := filepath.Join(t.TempDir(), "log", "wicd.log")
	l, err := OpenRotatingLog(path, 200, 2)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range 20 {
		_, err := l.Write([]byte(strings.Repeat("x", 40) + " line " + string(rune('a'+i))))
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(l.Close()).To(Succeed())
	entries, err := os.ReadDir(filepath.Dir(path))
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	g.Expect(names).To(Equal([]string{"wicd.log", "wicd.log.1", "wicd.log.2"}))
	cur, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(cur)).To(HaveSuffix(" line t\n"), "the newest line is in the current file")
	for _, n := range names {
		info, err := os.Stat(filepath.Join(filepath.Dir(path), n))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(info.Size()).To(BeNumerically("<=", 200))
	}
	old, err := os.ReadFile(path + ".2")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(old)).NotTo(ContainSubstring(" line a\n"), "the oldest file was dropped")
}
