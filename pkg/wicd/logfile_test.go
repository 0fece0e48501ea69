package wicd

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/test/winsim"
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

// simLogFS keeps a RotatingLog on a simulated host's disk, the process
// holding the open file as Go's os.OpenFile does on Windows: nobody can
// rename it meanwhile.
type simLogFS struct{ disk *winsim.Disk }

func (s simLogFS) MkdirAll(dir string) error    { return s.disk.MkdirAll(dir) }
func (s simLogFS) Rename(from, to string) error { return s.disk.Rename(from, to, true) }
func (s simLogFS) Remove(path string) error     { return s.disk.Remove(path) }
func (s simLogFS) OpenAppend(path string) (logFile, error) {
	if err := s.disk.AppendFile(path, nil); err != nil {
		return nil, err
	}
	release, err := s.disk.HoldOpen(path, "wicd.exe (PID 4242)")
	if err != nil {
		return nil, err
	}
	return &simLogFile{disk: s.disk, path: path, release: release}, nil
}

type simLogFile struct {
	disk    *winsim.Disk
	path    string
	release func()
}

func (f *simLogFile) WriteString(s string) (int, error) {
	if err := f.disk.AppendFile(f.path, []byte(s)); err != nil {
		return 0, err
	}
	return len(s), nil
}

func (f *simLogFile) Stat() (fs.FileInfo, error) { return f.disk.Stat(f.path) }
func (f *simLogFile) Close() error               { f.release(); return nil }

// A write that fills the log rotates it on a simulated host, which, as
// Windows, refuses to rename a file another process has open: while
// another agent process (the agent service) has the log open, rotation
// fails and must leave the kept files as they were, or each logged
// command would drop one; once it lets go, rotation shifts them.
func TestRotatingLogKeepsItsFilesWhenTheLogCannotBeRenamed(t *testing.T) {
	const path = `C:/var/log/wicd/wicd.log`
	for _, tc := range []struct {
		name string
		// othersHold: the agent service has the log open.
		othersHold bool
		want       map[string]string // file → a line it holds
	}{
		{
			name: "nobody else has the log open",
			want: map[string]string{path: "next: ", path + ".1": "current\n", path + ".2": "one\n"},
		},
		{
			name:       "the agent service has the log open",
			othersHold: true,
			want:       map[string]string{path: "current\n", path + ".1": "one\n", path + ".2": "two\n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			h, err := winsim.Start(t.Context(), winsim.Options{})
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(func() { _ = h.Close() })
			disk := h.Disk()
			for p, content := range map[string]string{path: "current\n", path + ".1": "one\n", path + ".2": "two\n"} {
				g.Expect(disk.WriteFile(p, []byte(content))).To(Succeed())
			}
			if tc.othersHold {
				release, err := disk.HoldOpen(path, "wicd.exe (service windows-instance-config-daemon)")
				g.Expect(err).NotTo(HaveOccurred())
				defer release()
			}
			l, err := openRotatingLog(simLogFS{disk}, path, 64, 2)
			g.Expect(err).NotTo(HaveOccurred())
			_, err = l.Write([]byte("next: a line that does not fit"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(l.Close()).To(Succeed())

			entries, err := disk.List(`C:/var/log/wicd`)
			g.Expect(err).NotTo(HaveOccurred())
			got := map[string]string{}
			for _, e := range entries {
				data, err := disk.ReadFile(`C:/var/log/wicd/` + e.Name())
				g.Expect(err).NotTo(HaveOccurred())
				got[`C:/var/log/wicd/`+e.Name()] = string(data)
			}
			g.Expect(got).To(HaveLen(len(tc.want)), "no file lost, none left over: %v", got)
			for p, content := range tc.want {
				g.Expect(got).To(HaveKeyWithValue(p, ContainSubstring(content)))
			}
			if tc.othersHold {
				g.Expect(got[path]).To(ContainSubstring("next: a line that does not fit"), "writing goes on in the current file")
			}
		})
	}
}
