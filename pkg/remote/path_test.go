package remote

import (
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means rejected
	}{
		{in: `C:\k\wicd.exe`, want: `C:\k\wicd.exe`},
		{in: `C:/k/wicd.exe`, want: `C:\k\wicd.exe`},
		{in: `c:\k\wicd.exe`, want: `C:\k\wicd.exe`},
		{in: `C:\K\WICD.EXE`, want: `C:\K\WICD.EXE`},
		{in: `C:/k\sub/./x.json`, want: `C:\k\sub\x.json`},
		{in: `C:\\k\\\wicd.exe`, want: `C:\k\wicd.exe`},
		{in: `C:\k\`, want: `C:\k`},
		{in: `C:\`, want: `C:\`},
		{in: `C:/`, want: `C:\`},
		{in: `d:\data`, want: `D:\data`},
		{in: `/C:/k/wicd.exe`, want: `C:\k\wicd.exe`},
		{in: `/c:/k/`, want: `C:\k`},
		{in: `/C:`, want: `C:\`},
		{in: `\C:\k`, want: `C:\k`},
		{in: `C:\Program Files\containerd\containerd.exe`, want: `C:\Program Files\containerd\containerd.exe`},
		{in: `C:\k\.hidden`, want: `C:\k\.hidden`},
		{in: `C:\k\kubelet.exe.wmco-upload`, want: `C:\k\kubelet.exe.wmco-upload`},
		{in: `C:\k\ünïcödé\файл`, want: `C:\k\ünïcödé\файл`},
		{in: `C:\k\CONFIG`, want: `C:\k\CONFIG`},
		{in: `C:\k\console.log`, want: `C:\k\console.log`},
		{in: `C:\k\COM10`, want: `C:\k\COM10`},
		{in: `C:\k\NULL`, want: `C:\k\NULL`},

		// Relative, drive-relative, UNC and device paths.
		{in: ``},
		{in: `k\wicd.exe`},
		{in: `\k\wicd.exe`},
		{in: `/k/wicd.exe`},
		{in: `C:`},
		{in: `C:k\wicd.exe`},
		{in: `/C:k`},
		{in: `\\server\share\x`},
		{in: `//server/share/x`},
		{in: `\\?\C:\k`},
		{in: `\\.\C:\k`},
		{in: `1:\k`},
		{in: `CC:\k`},
		// Escapes.
		{in: `C:\..`},
		{in: `C:\k\..\..\Windows`},
		{in: `C:\k\..\k\wicd.exe`},
		{in: `C:/k/../x`},
		// Invalid characters.
		{in: "C:\\k\\a\x00b"},
		{in: "C:\\k\\a\nb"},
		{in: "C:\\k\\a\x7fb"},
		{in: `C:\k\a<b`},
		{in: `C:\k\a>b`},
		{in: `C:\k\a"b`},
		{in: `C:\k\a|b`},
		{in: `C:\k\a?b`},
		{in: `C:\k\a*b`},
		{in: `C:\k\file.txt:stream`},
		{in: `C:\k:\x`},
		{in: "C:\\k\\\xff\xfe"},
		// Names Windows would alias.
		{in: `C:\k\wicd.exe.`},
		{in: `C:\k\wicd.exe `},
		{in: `C:\k...\x`},
		{in: `C:\k\...`},
		// Reserved device names, any case, with or without extension.
		{in: `C:\k\CON`},
		{in: `C:\k\con`},
		{in: `C:\k\NUL.txt`},
		{in: `C:\k\nul.tar.gz`},
		{in: `C:\k\COM1`},
		{in: `C:\k\com9.log`},
		{in: `C:\k\LPT1`},
		{in: `C:\k\lpt0`},
		{in: `C:\k\COM¹`},
		{in: `C:\k\AUX\x`},
		{in: `C:\k\PRN`},
		{in: `C:\k\CONIN$`},
		{in: `C:\k\conout$.txt`},
		{in: `C:\k\NUL .txt`},
		// Lengths.
		{in: `C:\` + strings.Repeat("a", 256)},
		{in: `C:\` + strings.Repeat(`a\`, 20000)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			g := NewWithT(t)
			got, err := NormalizePath(tt.in)
			if tt.want == "" {
				g.Expect(err).To(HaveOccurred(), "got %q", got)
				var pe *InvalidPathError
				g.Expect(errors.As(err, &pe)).To(BeTrue())
				g.Expect(pe.Path).To(Equal(tt.in))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
			again, err := NormalizePath(got)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(again).To(Equal(got), "idempotent")
		})
	}
}

func TestNormalizePathLongestComponent(t *testing.T) {
	g := NewWithT(t)
	name := strings.Repeat("a", 255)
	got, err := NormalizePath(`C:\` + name)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(`C:\` + name))
}

func TestSamePath(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`C:\k\wicd.exe`, `C:\k\wicd.exe`, true},
		{`C:\k\wicd.exe`, `c:/K/WICD.EXE`, true},
		{`C:\k\wicd.exe`, `/C:/k/wicd.exe`, true},
		{`C:\k\wicd.exe`, `C:\k\\wicd.exe`, true},
		{`C:\k\`, `c:\K`, true},
		{`C:\k\ÉTÉ`, `c:\k\été`, true},
		{`C:\k\файл`, `C:\k\ФАЙЛ`, true},
		{`C:\k\wicd.exe`, `C:\k\wicd.ex`, false},
		{`C:\k\wicd.exe`, `D:\k\wicd.exe`, false},
		{`C:\k\a`, `C:\k\a\b`, false},
		{`C:\k\wicd.exe`, `C:\k\wicd.exe.`, false}, // invalid b
		{`C:\k\..\k\x`, `C:\k\x`, false},           // invalid a
		{``, ``, false},
		{`k\x`, `k\x`, false},
	}
	for _, tt := range tests {
		t.Run(tt.a+"|"+tt.b, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(SamePath(tt.a, tt.b)).To(Equal(tt.want))
			g.Expect(SamePath(tt.b, tt.a)).To(Equal(tt.want), "symmetric")
		})
	}
}

func TestToSFTPPath(t *testing.T) {
	g := NewWithT(t)
	g.Expect(toSFTPPath(`C:\k\wicd.exe`)).To(Equal("/C:/k/wicd.exe"))
	g.Expect(toSFTPPath(`C:\`)).To(Equal("/C:/"))
	for _, p := range []string{`C:\k\wicd.exe`, `C:\`, `C:\Program Files\x`} {
		back, err := NormalizePath(toSFTPPath(p))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(back).To(Equal(p))
	}
}

func TestParentPath(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`C:\k\wicd.exe`, `C:\k`, true},
		{`C:\k`, `C:\`, true},
		{`C:\`, ``, false},
		{`C:\a\b\c`, `C:\a\b`, true},
	}
	for _, tt := range tests {
		g := NewWithT(t)
		got, ok := parentPath(tt.in)
		g.Expect(ok).To(Equal(tt.ok), tt.in)
		g.Expect(got).To(Equal(tt.want), tt.in)
	}
}
