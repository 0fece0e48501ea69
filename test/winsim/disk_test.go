package winsim

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"testing"

	. "github.com/onsi/gomega"
)

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in    string
		canon string // "" means rejected
	}{
		{`C:\k\wicd.exe`, `C:\k\wicd.exe`},
		{`c:/k/wicd.exe`, `C:\k\wicd.exe`},
		{`/C:/k/wicd.exe`, `C:\k\wicd.exe`},
		{`/c:/k\sub/x`, `C:\k\sub\x`},
		{`C:\k\..\..\x`, `C:\x`},
		{`C:\k\.\x`, `C:\k\x`},
		{`C:\k\x.txt.`, `C:\k\x.txt`},
		{`C:\k\x.txt  `, `C:\k\x.txt`},
		{`/C:`, `C:\`},
		{`/`, `\`},
		{`D:\x`, `D:\x`},
		{`C:x`, ``},
		{`x`, ``},
		{`/x`, ``},
		{`C:\k\a:b`, ``},
		{`C:\k\a*b`, ``},
		{`C:\k\NUL`, ``},
		{`C:\k\com1.txt`, ``},
		{"C:\\k\\a\x01", ``},
		{`C:\k\...`, ``},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			d, parts, err := splitPath(tt.in)
			if tt.canon == "" {
				g.Expect(err).To(HaveOccurred())
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(canonicalPath(d, parts)).To(Equal(tt.canon))
		})
	}
}

func TestDiskNamesAreCaseInsensitive(t *testing.T) {
	g := NewWithT(t)
	d := newDisk(1 << 20)
	g.Expect(d.WriteFile(`C:\K\Wicd.exe`, []byte("v1"))).To(Succeed())
	g.Expect(d.ReadFile(`c:/k/WICD.EXE`)).To(Equal([]byte("v1")))
	g.Expect(d.ReadFile(`/C:/k/wicd.exe`)).To(Equal([]byte("v1")))
	g.Expect(d.ReadFile(`C:\k\wicd.exe.`)).To(Equal([]byte("v1")), "Win32 strips trailing dots")

	// Overwriting keeps the original case of the name.
	g.Expect(d.WriteFile(`C:\k\WICD.EXE`, []byte("v2"))).To(Succeed())
	entries, err := d.List(`C:\k`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(1))
	g.Expect(entries[0].Name()).To(Equal("Wicd.exe"))
	g.Expect(entries[0].Size()).To(BeEquivalentTo(2))

	fi, err := d.Stat(`C:\K`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.IsDir()).To(BeTrue())
	g.Expect(fi.Name()).To(Equal("K"))
}

func TestDiskQuota(t *testing.T) {
	g := NewWithT(t)
	d := newDisk(100)
	g.Expect(d.WriteFile(`C:\a`, make([]byte, 60))).To(Succeed())
	err := d.WriteFile(`C:\b`, make([]byte, 50))
	g.Expect(errors.Is(err, ErrDiskFull)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("There is not enough space on the disk."))
	g.Expect(d.Used()).To(BeEquivalentTo(60), "a failed write takes no space")
	g.Expect(d.Free()).To(BeEquivalentTo(40))

	g.Expect(d.WriteFile(`C:\a`, make([]byte, 100))).To(Succeed(), "truncation frees the old content first")
	g.Expect(d.Remove(`C:\a`)).To(Succeed())
	g.Expect(d.Used()).To(BeZero())

	g.Expect(d.WriteFile(`C:\c`, make([]byte, 10))).To(Succeed())
	d.Fill()
	g.Expect(d.Free()).To(BeZero())
	g.Expect(errors.Is(d.WriteFile(`C:\d`, []byte("x")), ErrDiskFull)).To(BeTrue())
	g.Expect(d.WriteFile(`C:\e`, nil)).To(Succeed(), "an empty file fits on a full disk")

	d.SetQuota(1 << 20)
	g.Expect(d.Quota()).To(BeEquivalentTo(1 << 20))
	g.Expect(d.WriteFile(`C:\d`, []byte("x"))).To(Succeed())
}

func TestDiskRenameAndRemove(t *testing.T) {
	g := NewWithT(t)
	d := newDisk(1 << 20)
	g.Expect(d.WriteFile(`C:\k\a`, []byte("a"))).To(Succeed())
	g.Expect(d.WriteFile(`C:\k\b`, []byte("b"))).To(Succeed())

	err := d.Rename(`C:\k\a`, `C:\k\B`, false)
	g.Expect(err).To(MatchError(errAlreadyExists), "MoveFile does not replace")
	g.Expect(d.Rename(`C:\k\a`, `C:\k\B`, true)).To(Succeed())
	g.Expect(d.ReadFile(`C:\k\b`)).To(Equal([]byte("a")))
	_, err = d.Stat(`C:\k\a`)
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	g.Expect(d.Used()).To(BeEquivalentTo(1))

	// Case-only rename.
	g.Expect(d.Rename(`C:\k\b`, `C:\k\Bee`, false)).To(Succeed())
	g.Expect(d.Rename(`C:\k\bee`, `C:\k\BEE`, false)).To(Succeed())
	entries, _ := d.List(`C:\k`)
	g.Expect(entries[0].Name()).To(Equal("BEE"))

	g.Expect(d.MkdirAll(`C:\k\dir\sub`)).To(Succeed())
	g.Expect(d.Rename(`C:\k\dir`, `C:\k\dir\sub\x`, false)).NotTo(Succeed(), "not into itself")
	g.Expect(d.Rename(`C:\k\BEE`, `C:\k\dir`, true)).NotTo(Succeed(), "a directory is never replaced")
	g.Expect(d.Remove(`C:\k\dir`)).To(MatchError(errNotEmpty))
	g.Expect(d.Remove(`C:\k\dir\sub`)).To(Succeed())
	g.Expect(d.Remove(`C:\`)).NotTo(Succeed())
	g.Expect(d.Remove(`C:\k\missing`)).To(MatchError(fs.ErrNotExist))
	g.Expect(d.Mkdir(`C:\k\dir`)).To(MatchError(errAlreadyExists))
	g.Expect(d.Mkdir(`C:\nope\x`)).To(MatchError(fs.ErrNotExist))
	_, err = d.ReadFile(`D:\x`)
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	_, err = d.ReadFile(`C:\k\dir`)
	g.Expect(err).To(HaveOccurred())
	g.Expect(d.WriteFile(`C:\k\BEE\x`, nil)).NotTo(Succeed(), "a file is not a directory")
}

func TestDiskWritesToRemovedFileTakeNoSpace(t *testing.T) {
	g := NewWithT(t)
	d := newDisk(100)
	d.mu.Lock()
	n, err := d.create("open", `C:\tmp`, true, false)
	d.mu.Unlock()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Remove(`C:\tmp`)).To(Succeed())
	d.mu.Lock()
	err = d.writeAt(n, "write", `C:\tmp`, make([]byte, 1000), 0)
	d.mu.Unlock()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d.Used()).To(BeZero())
}

// sliceRecorder keeps the slices it is given.
type sliceRecorder struct{ got [][]byte }

func (r *sliceRecorder) Write(p []byte) (int, error) {
	r.got = append(r.got, p)
	return len(p), nil
}

// An open file copied with io.Copy (as hashing does) hands on its shared
// full chunks without copying them, and copies the bytes of the chunk it
// owns: the whole content arrives either way.
func TestDiskFileWriteToSharesFullChunks(t *testing.T) {
	g := NewWithT(t)
	d := newDisk(8 << 20)
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*fileChunk+1000)/16)
	g.Expect(d.WriteFile(`C:\k\payload.exe`, data)).To(Succeed())

	r, err := d.Open(`C:\k\payload.exe`)
	g.Expect(err).NotTo(HaveOccurred())
	var rec sliceRecorder
	n, err := io.Copy(&rec, r)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(Equal(int64(len(data))))
	g.Expect(bytes.Join(rec.got, nil)).To(Equal(data))

	n0, err := d.lookup("stat", `C:\k\payload.exe`)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range 2 {
		shared := n0.data.chunks[i].shared
		g.Expect(shared).NotTo(BeNil(), "full chunk %d is shared", i)
		g.Expect(&rec.got[i][0]).To(BeIdenticalTo(&shared.data[0]), "chunk %d is handed on, not copied", i)
	}
	g.Expect(n0.data.chunks[2].shared).To(BeNil())
	for _, b := range rec.got[2:] {
		g.Expect(&b[0]).NotTo(BeIdenticalTo(&n0.data.chunks[2].data[0]), "the owned chunk is copied")
	}
}

func TestDiskCopyFile(t *testing.T) {
	g := NewWithT(t)
	d := newDisk(16 << 20)
	data := bytes.Repeat([]byte("0123456789abcdef"), (2*fileChunk+1000)/16)
	g.Expect(d.WriteFile(`C:\k\payload.exe`, data)).To(Succeed())
	g.Expect(d.MkdirAll(`C:\k\v2`)).To(Succeed())

	n, err := d.CopyFile(`C:\k\payload.exe`, `C:\K\V2\Payload.exe`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(BeEquivalentTo(len(data)))
	g.Expect(d.ReadFile(`C:\k\v2\payload.exe`)).To(Equal(data))
	g.Expect(d.Used()).To(BeEquivalentTo(2*len(data)), "a copy takes space as a written file does")
	src, err := d.lookup("stat", `C:\k\payload.exe`)
	g.Expect(err).NotTo(HaveOccurred())
	dst, err := d.lookup("stat", `C:\k\v2\payload.exe`)
	g.Expect(err).NotTo(HaveOccurred())
	for i := range 2 {
		g.Expect(dst.data.chunks[i].shared).To(BeIdenticalTo(src.data.chunks[i].shared), "full chunk %d is shared, not copied", i)
	}
	g.Expect(dst.data.chunks[2].shared).To(BeNil())
	g.Expect(&dst.data.chunks[2].data[0]).NotTo(BeIdenticalTo(&src.data.chunks[2].data[0]), "the owned chunk is copied")

	// Writing either file leaves the other as it was.
	g.Expect(d.WriteFile(`C:\k\v2\payload.exe`, []byte("new"))).To(Succeed())
	g.Expect(d.ReadFile(`C:\k\payload.exe`)).To(Equal(data))

	// What Windows refuses, the disk refuses.
	_, err = d.CopyFile(`C:\k\missing.exe`, `C:\k\v2\x.exe`)
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	_, err = d.CopyFile(`C:\k\payload.exe`, `C:\k\v3\x.exe`)
	g.Expect(err).To(MatchError(fs.ErrNotExist), "the target's folder must exist")
	_, err = d.CopyFile(`C:\k\payload.exe`, `C:\K\PAYLOAD.exe`)
	g.Expect(err).To(MatchError(ErrSharingViolation), "onto itself")
	g.Expect(d.ReadFile(`C:\k\payload.exe`)).To(Equal(data), "a copy onto itself leaves the file")

	release, err := d.Hold(`C:\k\v2\payload.exe`, "kubelet.exe")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = d.CopyFile(`C:\k\payload.exe`, `C:\k\v2\payload.exe`)
	var inUse *InUseError
	g.Expect(errors.As(err, &inUse)).To(BeTrue(), "a running image cannot be overwritten: %v", err)
	g.Expect(inUse.Holders).To(ConsistOf(ContainSubstring("kubelet.exe")))
	release()

	unlock, err := d.Lock(`C:\k\payload.exe`, "backup.exe")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = d.CopyFile(`C:\k\payload.exe`, `C:\k\v2\y.exe`)
	g.Expect(errors.As(err, &inUse)).To(BeTrue(), "a file held exclusively cannot be read: %v", err)
	unlock()

	d.SetQuota(d.Used() + 10)
	_, err = d.CopyFile(`C:\k\payload.exe`, `C:\k\v2\z.exe`)
	g.Expect(err).To(MatchError(ErrDiskFull))
}

// CopyAndEmpty copies a log its program holds open for appending and
// empties it; a process holding the log without sharing writes refuses
// it before any copy is made.
func TestDiskCopyAndEmpty(t *testing.T) {
	g := NewWithT(t)
	const log, copied = `C:\var\log\containerd\containerd.log`, `C:\var\log\containerd\containerd-1.log`
	d := newDisk(1 << 20)
	g.Expect(d.MkdirAll(`C:\var\log\containerd`)).To(Succeed())
	g.Expect(d.AppendFile(log, []byte("one\r\n"))).To(Succeed())
	release, err := d.HoldOpen(log, "containerd.exe")
	g.Expect(err).NotTo(HaveOccurred())
	defer release()

	unlock, err := d.HoldForReading(log, "viewer.exe")
	g.Expect(err).NotTo(HaveOccurred())
	_, err = d.CopyAndEmpty(log, copied)
	g.Expect(err).To(MatchError(ErrSharingViolation))
	_, err = d.Stat(copied)
	g.Expect(err).To(MatchError(fs.ErrNotExist), "no copy of a log that cannot be emptied")
	g.Expect(d.ReadFile(log)).To(Equal([]byte("one\r\n")))
	unlock()

	g.Expect(d.CopyAndEmpty(log, copied)).To(Equal(int64(5)))
	g.Expect(d.ReadFile(copied)).To(Equal([]byte("one\r\n")))
	g.Expect(d.ReadFile(log)).To(BeEmpty())
	g.Expect(d.AppendFile(log, []byte("two\r\n"))).To(Succeed())
	g.Expect(d.ReadFile(log)).To(Equal([]byte("two\r\n")), "the next append lands at the start")
}

// What a process holding a file lets others do with it, as Windows does:
// a running image may be read and renamed; a data file opened without
// FILE_SHARE_DELETE (as Go opens files) cannot be renamed or deleted, and
// one opened with FILE_SHARE_WRITE may still be written.
func TestDiskHolds(t *testing.T) {
	const path = `C:\k\held`
	ops := []struct {
		name string
		do   func(d *Disk) error
	}{
		{"read", func(d *Disk) error { _, err := d.ReadFile(path); return err }},
		{"append", func(d *Disk) error { return d.AppendFile(path, []byte("more")) }},
		{"copy and empty", func(d *Disk) error { _, err := d.CopyAndEmpty(path, `C:\k\copy`); return err }},
		{"rename", func(d *Disk) error { return d.Rename(path, `C:\k\moved`, false) }},
		{"rename over", func(d *Disk) error { return d.Rename(`C:\k\second`, path, true) }},
		{"remove", func(d *Disk) error { return d.Remove(path) }},
	}
	for _, tc := range []struct {
		kind string
		hold func(d *Disk) (func(), error)
		want map[string]error // by op; nil: allowed
	}{
		{
			kind: "running image",
			hold: func(d *Disk) (func(), error) { return d.Hold(path, "kubelet.exe") },
			want: map[string]error{"append": ErrSharingViolation, "copy and empty": ErrSharingViolation, "rename over": ErrAccessDenied, "remove": ErrAccessDenied},
		},
		{
			kind: "file opened exclusively",
			hold: func(d *Disk) (func(), error) { return d.Lock(path, "backup.exe") },
			want: map[string]error{"read": ErrSharingViolation, "append": ErrSharingViolation, "copy and empty": ErrSharingViolation,
				"rename": ErrSharingViolation, "rename over": ErrSharingViolation, "remove": ErrSharingViolation},
		},
		{
			kind: "file opened for reading, sharing reads only",
			hold: func(d *Disk) (func(), error) { return d.HoldForReading(path, "viewer.exe") },
			want: map[string]error{"append": ErrSharingViolation, "copy and empty": ErrSharingViolation, "rename": ErrSharingViolation,
				"rename over": ErrSharingViolation, "remove": ErrSharingViolation},
		},
		{
			kind: "file opened as Go opens files",
			hold: func(d *Disk) (func(), error) { return d.HoldOpen(path, "wicd.exe") },
			want: map[string]error{"rename": ErrSharingViolation, "rename over": ErrSharingViolation, "remove": ErrSharingViolation},
		},
	} {
		for _, op := range ops {
			t.Run(tc.kind+"/"+op.name, func(t *testing.T) {
				g := NewWithT(t)
				d := newDisk(1 << 20)
				g.Expect(d.WriteFile(path, []byte("held"))).To(Succeed())
				g.Expect(d.WriteFile(`C:\k\second`, []byte("second"))).To(Succeed())
				release, err := tc.hold(d)
				g.Expect(err).NotTo(HaveOccurred())
				err = op.do(d)
				want := tc.want[op.name]
				if want == nil {
					g.Expect(err).NotTo(HaveOccurred())
					return
				}
				var inUse *InUseError
				g.Expect(errors.As(err, &inUse)).To(BeTrue(), "%v", err)
				g.Expect(inUse.Err).To(Equal(want))
				g.Expect(inUse.Holders).To(HaveLen(1))
				release()
				g.Expect(op.do(d)).To(Succeed(), "once the process lets go")
			})
		}
	}
}
