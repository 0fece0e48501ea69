package winsim_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/pkg/sftp"

	"github.com/openwmco/wmco/test/winsim"
)

// An observer hears each exec'd command as it starts and after its program
// returned (before the client has its exit status), each SFTP session, and
// each file an SFTP client creates before any byte of it is written, and
// each file open for writing until the client closes it or the session
// ends (a file opened for reading is not heard); once removed it hears
// nothing.
func TestObserver(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	g.Expect(s.RegisterProgram(`C:\k\tool.exe`, winsim.ProgramFunc(func(context.Context, *winsim.Invocation) int { return 3 }))).To(Succeed())

	var mu sync.Mutex
	var events []string
	add := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	get := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), events...)
	}
	remove := s.Observe(winsim.Observer{
		Request: func(r winsim.Request) func() {
			add("start " + r.Kind + " " + r.User + " " + strings.Join(r.Args, " "))
			return func() { add("end " + r.Kind) }
		},
		FileCreated: func(p string) {
			size := int64(-1)
			if fi, err := s.Disk().Stat(p); err == nil {
				size = fi.Size()
			}
			add("created " + p + " " + strconv.FormatInt(size, 10))
		},
		Writing: func(p string) func() {
			add("writing " + p)
			return func() { add("closed " + p) }
		},
	})
	c := s.connect(t)
	_, _, code := run(t, c, `C:\k\tool.exe apply --plan x`, "")
	g.Expect(code).To(Equal(3))
	// The program's end is heard before the client has its exit status.
	g.Expect(get()).To(Equal([]string{"start exec Administrator C:\\k\\tool.exe apply --plan x", "end exec"}))

	g.Expect(s.Disk().MkdirAll(`C:\k`)).To(Succeed())
	sc, err := sftp.NewClient(c)
	g.Expect(err).NotTo(HaveOccurred())
	f, err := sc.Create(`C:\k\a.txt`)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = f.Write([]byte("data"))
	g.Expect(err).NotTo(HaveOccurred())
	opened := []string{"start exec Administrator C:\\k\\tool.exe apply --plan x", "end exec",
		"start sftp Administrator ", `created C:\k\a.txt 0`, `writing C:\k\a.txt`}
	g.Expect(get()).To(Equal(opened), "the file is being written until it is closed")
	g.Expect(f.Close()).To(Succeed())
	g.Expect(get()).To(Equal(append(opened, `closed C:\k\a.txt`)))
	// Reading is not writing.
	r, err := sc.Open(`C:\k\a.txt`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.Close()).To(Succeed())
	// A file left open is closed when the session ends.
	_, err = sc.OpenFile(`C:\k\a.txt`, os.O_WRONLY)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sc.Close()).To(Succeed())
	g.Eventually(get).Should(Equal(append(opened, `closed C:\k\a.txt`, `writing C:\k\a.txt`, `closed C:\k\a.txt`, "end sftp")))

	remove()
	_, _, code = run(t, c, `C:\k\tool.exe`, "")
	g.Expect(code).To(Equal(3))
	g.Consistently(get, "200ms").Should(HaveLen(9))
}
