package remote_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/pkg/sftp"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/test/winsim"
)

func TestUpload50MBThroughBandwidthLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("transfers 100 MB at 20 MB/s")
	}
	g := NewWithT(t)
	const (
		size  = 50 << 20
		limit = 20 << 20 // bytes per second, each direction
	)
	f := newFixture(t, winsim.Options{})
	f.host.SetBandwidth(limit)
	data, sum := payload(size, 1)
	s := f.dial(t)
	before := f.host.Stats()

	start := time.Now()
	err := s.Upload(t.Context(), `C:\k\kubelet.exe`, bytes.NewReader(data), size, sum)
	elapsed := time.Since(start)
	g.Expect(err).NotTo(HaveOccurred())

	got, err := f.host.Disk().ReadFile(`C:\k\kubelet.exe`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sha256Hex(got)).To(Equal(sum))
	received := f.host.Stats().BytesReceived - before.BytesReceived
	sent := f.host.Stats().BytesSent - before.BytesSent
	// The upload alone cannot beat the limit. (The default verification
	// reads the file back, which costs as much again in the other
	// direction; no upper bound is asserted on a busy machine.)
	minimum := time.Duration(float64(size) / float64(limit) * 0.8 * float64(time.Second))
	g.Expect(elapsed).To(BeNumerically(">=", minimum))
	g.Expect(received).To(BeNumerically(">=", size))
	t.Logf("uploaded and verified %d MiB through a %d MiB/s limit in %v (upload alone needs >= %v at the limit); host received %d bytes, sent %d bytes",
		size>>20, limit>>20, elapsed.Round(time.Millisecond), time.Duration(float64(size)/float64(limit)*float64(time.Second)), received, sent)
}

func TestUploadCreatesParentsAndReplaces(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)

	v1, sum1 := payload(100_000, 2)
	g.Expect(s.Upload(t.Context(), `C:\k\bin\v1\wicd.exe`, bytes.NewReader(v1), int64(len(v1)), sum1)).To(Succeed())
	g.Expect(f.host.Disk().ReadFile(`C:\k\bin\v1\wicd.exe`)).To(Equal(v1))

	// Replace, naming the same file differently.
	v2, sum2 := payload(70_000, 3)
	g.Expect(s.Upload(t.Context(), `c:/K/BIN/v1/WICD.EXE`, bytes.NewReader(v2), int64(len(v2)), strings.ToUpper(sum2))).To(Succeed())
	g.Expect(f.host.Disk().ReadFile(`C:\k\bin\v1\wicd.exe`)).To(Equal(v2))
	entries, err := f.host.Disk().List(`C:\k\bin\v1`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(entries).To(HaveLen(1))
	// MoveFileEx replacing a file takes the name as given.
	g.Expect(entries[0].Name()).To(Equal("WICD.EXE"))

	// Empty files are files too.
	g.Expect(s.Upload(t.Context(), `C:\k\empty`, strings.NewReader(""), 0, sha256Hex(nil))).To(Succeed())
	fi, err := s.Stat(t.Context(), `C:\k\empty`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.Size()).To(BeZero())

	// A directory is not replaced.
	g.Expect(f.host.Disk().MkdirAll(`C:\k\adir`)).To(Succeed())
	err = s.Upload(t.Context(), `C:\k\adir`, strings.NewReader("x"), 1, sha256Hex([]byte("x")))
	g.Expect(err).To(HaveOccurred())
	fi, err = f.host.Disk().Stat(`C:\k\adir`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.IsDir()).To(BeTrue())

	// A file where a directory is needed.
	err = s.Upload(t.Context(), `C:\k\empty\x`, strings.NewReader("x"), 1, sha256Hex([]byte("x")))
	g.Expect(err).To(MatchError(ContainSubstring("not a directory")))

	assertNoTempFiles(g, f.host, `C:\k`)
	assertNoTempFiles(g, f.host, `C:\k\bin\v1`)
}

func TestUploadReplacesWithoutPosixRename(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{DisablePosixRename: true})
	g.Expect(f.host.Disk().WriteFile(`C:\k\wicd.exe`, []byte("old"))).To(Succeed())
	s := f.dial(t)
	data, sum := payload(50_000, 13)
	g.Expect(s.Upload(t.Context(), `C:\k\wicd.exe`, bytes.NewReader(data), int64(len(data)), sum)).To(Succeed())
	g.Expect(f.host.Disk().ReadFile(`C:\k\wicd.exe`)).To(Equal(data))
	g.Expect(names(f.host, `C:\k`)).To(Equal([]string{"wicd.exe"}))
}

func TestUploadDroppedConnectionLeavesDestinationUntouched(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	const dst = `C:\k\containerd\containerd.exe`
	old := []byte("previous version")
	g.Expect(f.host.Disk().WriteFile(dst, old)).To(Succeed())

	data, sum := payload(8<<20, 4)
	s := f.dial(t)
	f.host.DropAfter(3 << 20)
	err := s.Upload(t.Context(), dst, bytes.NewReader(data), int64(len(data)), sum)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err).To(MatchError(remote.ErrConnectionLost))
	g.Expect(err.Error()).To(HavePrefix("upload " + dst))
	g.Expect(f.host.Disk().ReadFile(dst)).To(Equal(old), "dst untouched")

	// A new session retries successfully, reusing the stranded temp file.
	s2 := f.dial(t)
	g.Expect(s2.Upload(t.Context(), dst, bytes.NewReader(data), int64(len(data)), sum)).To(Succeed())
	got, err := f.host.Disk().ReadFile(dst)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sha256Hex(got)).To(Equal(sum))
	assertNoTempFiles(g, f.host, `C:\k\containerd`)
}

func TestUploadDroppedConnectionNewFile(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	const dst = `C:\k\kube-proxy.exe`
	data, sum := payload(4<<20, 5)
	s := f.dial(t)
	f.host.DropAfter(1 << 20)
	g.Expect(s.Upload(t.Context(), dst, bytes.NewReader(data), int64(len(data)), sum)).To(MatchError(remote.ErrConnectionLost))
	_, err := f.host.Disk().Stat(dst)
	g.Expect(err).To(MatchError(ContainSubstring("not exist")))

	s2 := f.dial(t)
	g.Expect(s2.Upload(t.Context(), dst, bytes.NewReader(data), int64(len(data)), sum)).To(Succeed())
	assertNoTempFiles(g, f.host, `C:\k`)
}

func TestUploadCancelled(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	const dst = `C:\k\hybrid-overlay-node.exe`
	old := []byte("old")
	g.Expect(f.host.Disk().WriteFile(dst, old)).To(Succeed())
	f.host.SetBandwidth(2 << 20)
	data, sum := payload(16<<20, 6)
	s := f.dial(t)

	ctx, cancel := context.WithCancel(t.Context())
	src := &notifyReader{r: bytes.NewReader(data), n: 2 << 20, fn: cancel}
	start := time.Now()
	err := s.Upload(ctx, dst, src, int64(len(data)), sum)
	g.Expect(err).To(MatchError(context.Canceled))
	g.Expect(time.Since(start)).To(BeNumerically("<", 5*time.Second))
	g.Expect(f.host.Disk().ReadFile(dst)).To(Equal(old))

	// The temporary file is removed in the background.
	g.Eventually(func() []string { return names(f.host, `C:\k`) }).WithTimeout(15 * time.Second).
		Should(ConsistOf("hybrid-overlay-node.exe"))

	// The session is still usable.
	f.host.SetBandwidth(0)
	g.Expect(s.Upload(t.Context(), dst, bytes.NewReader(data), int64(len(data)), sum)).To(Succeed())
}

func TestUploadChecksumMismatch(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	data, _ := payload(300_000, 7)
	_, wrong := payload(10, 8)
	err := s.Upload(t.Context(), `C:\k\a.exe`, bytes.NewReader(data), int64(len(data)), wrong)
	g.Expect(err).To(MatchError(remote.ErrChecksumMismatch))
	_, err = f.host.Disk().Stat(`C:\k\a.exe`)
	g.Expect(err).To(HaveOccurred())
	assertNoTempFiles(g, f.host, `C:\k`)
}

func TestUploadHostSideHash(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	data, sum := payload(300_000, 9)

	// A HashFunc that hashes on the host (as the node agent will) sees the
	// temporary file, not dst.
	var mu sync.Mutex
	var hashed []string
	f.dialer.Hash = func(ctx context.Context, s remote.Session, path string) (string, error) {
		mu.Lock()
		hashed = append(hashed, path)
		mu.Unlock()
		b, err := f.host.Disk().ReadFile(path)
		if err != nil {
			return "", err
		}
		return sha256Hex(b), nil
	}
	s := f.dial(t)
	g.Expect(s.Upload(t.Context(), `C:\k\b.exe`, bytes.NewReader(data), int64(len(data)), sum)).To(Succeed())
	g.Expect(hashed).To(Equal([]string{`C:\k\b.exe.wmco-upload`}))

	// The host disagrees: the file is corrupt there.
	f.dialer.Hash = func(context.Context, remote.Session, string) (string, error) {
		return strings.Repeat("0", 64), nil
	}
	s2 := f.dial(t)
	g.Expect(s2.Upload(t.Context(), `C:\k\c.exe`, bytes.NewReader(data), int64(len(data)), sum)).To(MatchError(remote.ErrChecksumMismatch))
	_, err := f.host.Disk().Stat(`C:\k\c.exe`)
	g.Expect(err).To(HaveOccurred())

	// The host cannot hash.
	f.dialer.Hash = func(context.Context, remote.Session, string) (string, error) {
		return "", errors.New("agent not installed")
	}
	s3 := f.dial(t)
	g.Expect(s3.Upload(t.Context(), `C:\k\c.exe`, bytes.NewReader(data), int64(len(data)), sum)).To(MatchError(ContainSubstring("agent not installed")))
	assertNoTempFiles(g, f.host, `C:\k`)
}

func TestUploadSourceSizeMismatch(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	data, sum := payload(100_000, 10)

	err := s.Upload(t.Context(), `C:\k\short`, bytes.NewReader(data[:50_000]), int64(len(data)), sum)
	g.Expect(err).To(MatchError(ContainSubstring("source ended after 50000 of 100000 bytes")))
	err = s.Upload(t.Context(), `C:\k\long`, io.MultiReader(bytes.NewReader(data), strings.NewReader("extra")), int64(len(data)), sum)
	g.Expect(err).To(MatchError(ContainSubstring("more bytes than the declared size")))
	g.Expect(names(f.host, `C:\k`)).To(BeEmpty())
}

func TestUploadRejectsBadArguments(t *testing.T) {
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	sum := sha256Hex([]byte("x"))
	for name, call := range map[string]func() error{
		"relative path": func() error { return s.Upload(t.Context(), `k\x`, strings.NewReader("x"), 1, sum) },
		"escape":        func() error { return s.Upload(t.Context(), `C:\k\..\..\x`, strings.NewReader("x"), 1, sum) },
		"drive root":    func() error { return s.Upload(t.Context(), `C:\`, strings.NewReader("x"), 1, sum) },
		"device":        func() error { return s.Upload(t.Context(), `C:\k\NUL`, strings.NewReader("x"), 1, sum) },
		"bad sha":       func() error { return s.Upload(t.Context(), `C:\k\x`, strings.NewReader("x"), 1, "abc") },
		"non-hex sha": func() error {
			return s.Upload(t.Context(), `C:\k\x`, strings.NewReader("x"), 1, strings.Repeat("g", 64))
		},
		"negative size": func() error { return s.Upload(t.Context(), `C:\k\x`, strings.NewReader("x"), -1, sum) },
		"nil reader":    func() error { return s.Upload(t.Context(), `C:\k\x`, nil, 1, sum) },
	} {
		t.Run(name, func(t *testing.T) {
			NewWithT(t).Expect(call()).To(HaveOccurred())
		})
	}
	NewWithT(t).Expect(f.host.Stats().Sessions).To(BeZero(), "nothing was sent")
}

func TestUploadDiskFull(t *testing.T) {
	for name, noSpace := range map[string]bool{
		"SSH_FX_FAILURE like Win32-OpenSSH, via statvfs": false,
		"SSH_FX_NO_SPACE_ON_FILESYSTEM":                  true,
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			f := newFixture(t, winsim.Options{ReportNoSpace: noSpace})
			g.Expect(f.host.Disk().WriteFile(`C:\Windows\big.dat`, make([]byte, 1<<20))).To(Succeed())
			// What the host holds besides (its authorized keys file).
			used := f.host.Disk().Used()
			f.host.Disk().SetQuota(used + 512<<10)
			s := f.dial(t)

			data, sum := payload(4<<20, 11)
			err := s.Upload(t.Context(), `C:\k\kubelet.exe`, bytes.NewReader(data), int64(len(data)), sum)
			var df *remote.DiskFullError
			g.Expect(errors.As(err, &df)).To(BeTrue(), "%v", err)
			var se *sftp.StatusError
			g.Expect(errors.As(err, &se)).To(BeTrue(), "the SFTP status is kept: %v", err)
			if noSpace {
				g.Expect(se.Code).To(BeEquivalentTo(14)) // SSH_FX_NO_SPACE_ON_FILESYSTEM
			} else {
				g.Expect(se.Code).To(BeEquivalentTo(4)) // SSH_FX_FAILURE
			}
			g.Expect(df.Path).To(Equal(`C:\k\kubelet.exe`))
			g.Expect(df.Free).To(BeNumerically("<", df.Needed))
			_, err = f.host.Disk().Stat(`C:\k\kubelet.exe`)
			g.Expect(err).To(HaveOccurred())
			assertNoTempFiles(g, f.host, `C:\k`)
			g.Expect(f.host.Disk().Used()).To(Equal(used), "the temporary file's space was released")

			// A file that fits still goes through.
			small, smallSum := payload(100<<10, 12)
			g.Expect(s.Upload(t.Context(), `C:\k\small`, bytes.NewReader(small), int64(len(small)), smallSum)).To(Succeed())
		})
	}
}

func TestConcurrentUploads(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data, sum := payload(500_000+i, uint64(100+i))
			// Two goroutines per destination: uploads to one file are
			// serialised, the rest run in parallel.
			dst := `C:\k\par\f` + string(rune('a'+i/2))
			errs <- s.Upload(t.Context(), dst, bytes.NewReader(data), int64(len(data)), sum)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Expect(names(f.host, `C:\k\par`)).To(ConsistOf("fa", "fb", "fc", "fd"))
	g.Expect(f.host.Stats().Sessions).To(BeEquivalentTo(1), "one SFTP channel served every upload")
}

func names(h *winsim.Host, dir string) []string {
	entries, err := h.Disk().List(dir)
	if err != nil {
		return nil
	}
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func assertNoTempFiles(g Gomega, h *winsim.Host, dir string) {
	g.Expect(names(h, dir)).NotTo(ContainElement(HaveSuffix(".wmco-upload")))
}

// TestReadBackWaitsForASlot: a read-back (the default verification) runs
// only when one of the process's read-back slots is free, gives up when its
// context ends while waiting, and completes once a slot frees.
func TestReadBackWaitsForASlot(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	data, sum := payload(300_000, 7)
	g.Expect(s.Upload(t.Context(), `C:\k\wicd.exe`, bytes.NewReader(data), int64(len(data)), sum)).To(Succeed())

	release := remote.HoldReadBackSlots()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()

	ctx, cancel := context.WithCancel(t.Context())
	cancelled := make(chan error, 1)
	go func() {
		_, err := remote.ReadBackHash(ctx, s, `C:\k\wicd.exe`)
		cancelled <- err
	}()
	g.Consistently(cancelled, 300*time.Millisecond).ShouldNot(Receive())
	cancel()
	g.Eventually(cancelled, 10*time.Second).Should(Receive(MatchError(context.Canceled)))

	type result struct {
		sum string
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := remote.ReadBackHash(t.Context(), s, `C:\k\wicd.exe`)
		done <- result{got, err}
	}()
	g.Consistently(done, 300*time.Millisecond).ShouldNot(Receive())
	release()
	released = true
	var r result
	g.Eventually(done, 10*time.Second).Should(Receive(&r))
	g.Expect(r.err).NotTo(HaveOccurred())
	g.Expect(r.sum).To(Equal(sum))
}

// vouching is a source that vouches for a hash, rightly or not.
type vouching struct {
	io.Reader
	sum string
}

func (v vouching) VerifiedSHA256() string { return v.sum }

// A source that vouches for the wanted hash is not hashed again: when it
// lies, the host's hash of what it received still refuses the file. A
// source vouching for another hash is hashed as any other.
func TestUploadVerifiedSource(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	s := f.dial(t)
	data, sum := payload(300_000, 11)
	g.Expect(s.Upload(t.Context(), `C:\k\a.exe`, vouching{bytes.NewReader(data), sum}, int64(len(data)), sum)).To(Succeed())
	g.Expect(f.host.Disk().ReadFile(`C:\k\a.exe`)).To(Equal(data))

	other, _ := payload(300_000, 12)
	err := s.Upload(t.Context(), `C:\k\b.exe`, vouching{bytes.NewReader(other), sum}, int64(len(other)), sum)
	g.Expect(err).To(MatchError(remote.ErrChecksumMismatch))
	g.Expect(err.Error()).To(ContainSubstring("host computed"), "not hashed here: the host's hash refused it")
	_, err = f.host.Disk().Stat(`C:\k\b.exe`)
	g.Expect(err).To(HaveOccurred())

	_, otherSum := payload(10, 13)
	err = s.Upload(t.Context(), `C:\k\c.exe`, vouching{bytes.NewReader(other), otherSum}, int64(len(other)), sum)
	g.Expect(err).To(MatchError(remote.ErrChecksumMismatch))
	g.Expect(err.Error()).To(ContainSubstring("source content hashes to"), "hashed here: it vouches for another hash")
	assertNoTempFiles(g, f.host, `C:\k`)
}
