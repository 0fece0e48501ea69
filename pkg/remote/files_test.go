package remote_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/test/winsim"
)

func TestStatReadFileRemove(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t, winsim.Options{})
	disk := f.host.Disk()
	g.Expect(disk.WriteFile(`C:\k\plan.json`, []byte(`{"version":1}`))).To(Succeed())
	g.Expect(disk.MkdirAll(`C:\k\empty`)).To(Succeed())
	g.Expect(disk.WriteFile(`C:\k\full\x`, []byte("x"))).To(Succeed())
	s := f.dial(t)
	ctx := t.Context()

	fi, err := s.Stat(ctx, `c:/K/PLAN.JSON`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.Size()).To(BeEquivalentTo(13))
	g.Expect(fi.IsDir()).To(BeFalse())
	fi, err = s.Stat(ctx, `C:\k`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(fi.IsDir()).To(BeTrue())
	_, err = s.Stat(ctx, `C:\k\missing`)
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	_, err = s.Stat(ctx, `relative`)
	var pe *remote.InvalidPathError
	g.Expect(errors.As(err, &pe)).To(BeTrue(), "%v", err)
	g.Expect(pe.Path).To(Equal("relative"))

	b, err := s.ReadFile(ctx, `C:\k\plan.json`, 13)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(b)).To(Equal(`{"version":1}`))
	_, err = s.ReadFile(ctx, `C:\k\plan.json`, 12)
	g.Expect(err).To(MatchError(remote.ErrFileTooLarge))
	_, err = s.ReadFile(ctx, `C:\k\missing`, 100)
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	_, err = s.ReadFile(ctx, `C:\k`, 100)
	g.Expect(err).To(HaveOccurred())
	_, err = s.ReadFile(ctx, `C:\k\plan.json`, 0)
	g.Expect(err).To(HaveOccurred())

	g.Expect(s.Remove(ctx, `C:\k\PLAN.json`)).To(Succeed())
	_, err = disk.Stat(`C:\k\plan.json`)
	g.Expect(err).To(MatchError(fs.ErrNotExist))
	g.Expect(s.Remove(ctx, `C:\k\plan.json`)).To(Succeed(), "removing a missing file succeeds")
	g.Expect(s.Remove(ctx, `C:\k\empty`)).To(Succeed())
	g.Expect(s.Remove(ctx, `C:\k\full`)).To(MatchError(ContainSubstring("remove")), "a non-empty directory stays")
	g.Expect(s.Remove(ctx, `C:\`)).To(MatchError(ContainSubstring("drive root")))
	g.Expect(names(f.host, `C:\k`)).To(Equal([]string{"full"}))

	// All of it over one SFTP channel.
	g.Expect(f.host.Stats().Sessions).To(BeEquivalentTo(1))
	g.Expect(strings.Join(names(f.host, `C:\k\full`), ",")).To(Equal("x"))
}
