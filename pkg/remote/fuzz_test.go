package remote

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{
		`C:\k\wicd.exe`, `C:/k/wicd.exe`, `/C:/k/`, `c:\`, `C:`, `\\server\share`,
		`C:\k\..\x`, `C:\k\NUL.txt`, `C:\k\a.`, "C:\\k\\a\x00", `C:\k\a:b`, `C:\Program Files\x`,
		`C:\k\ÉTÉ`, `/C:`, `C:\k\COM¹`, `C:\.\.\k`, `C:\k\\\x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		out, err := NormalizePath(p)
		if err != nil {
			var pe *InvalidPathError
			if !errors.As(err, &pe) {
				t.Fatalf("NormalizePath(%q) error %T is not *InvalidPathError", p, err)
			}
			if SamePath(p, p) {
				t.Fatalf("SamePath accepts invalid path %q", p)
			}
			return
		}
		again, err := NormalizePath(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", p, out, again, err)
		}
		if len(out) < 3 || out[0] < 'A' || out[0] > 'Z' || out[1] != ':' || out[2] != '\\' {
			t.Fatalf("%q -> %q: not drive-absolute", p, out)
		}
		if strings.Contains(out, "/") || strings.Contains(out, `\\`) || (len(out) > 3 && strings.HasSuffix(out, `\`)) {
			t.Fatalf("%q -> %q: not canonical separators", p, out)
		}
		if strings.ContainsAny(out[2:], `<>:"|?*`) || strings.ContainsFunc(out, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("%q -> %q: invalid character", p, out)
		}
		if len(out) > 3 {
			for _, c := range strings.Split(out[3:], `\`) {
				if c == "" || c == "." || c == ".." {
					t.Fatalf("%q -> %q: component %q", p, out, c)
				}
			}
		}
		if !SamePath(p, out) || !SamePath(out, strings.ToUpper(out[:1])+out[1:]) {
			t.Fatalf("SamePath(%q, %q) is false", p, out)
		}
		if back, err := NormalizePath(toSFTPPath(out)); err != nil || back != out {
			t.Fatalf("SFTP form of %q does not round-trip: %q, %v", out, back, err)
		}
	})
}

// shellMeta are characters cmd.exe or PowerShell give a meaning to, plus
// whitespace. None may appear in an accepted argument.
const shellMeta = " \t\r\n\v\f\"'`$%&|<>^();,!@{}#*?~[]\x00"

func FuzzCheckArgv(f *testing.F) {
	for _, s := range [][2]string{
		{"apply", `C:\k\plan.json`}, {"a&b", "x"}, {"%PATH%", ""}, {"$(x)", "`y`"},
		{"a b", "c"}, {"--v=4", "1.2.3+x"}, {"\uff02", "é"}, {"a,b", "x;y"}, {"C:", `..\x`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, argv := range [][]string{{a}, {a, b}, {`C:\k\wicd.exe`, a, b}} {
			err := CheckArgv(argv)
			if err != nil {
				var ae *ArgvError
				if !errors.As(err, &ae) {
					t.Fatalf("CheckArgv(%q) error %T is not *ArgvError", argv, err)
				}
				if ae.Index < -1 || ae.Index >= len(argv) {
					t.Fatalf("CheckArgv(%q) index %d out of range", argv, ae.Index)
				}
				continue
			}
			for _, arg := range argv {
				if arg == "" {
					t.Fatalf("accepted an empty argument in %q", argv)
				}
				if i := strings.IndexAny(arg, shellMeta); i >= 0 {
					t.Fatalf("accepted %q containing shell metacharacter %q", arg, arg[i])
				}
				for j := 0; j < len(arg); j++ {
					if arg[j] < 0x21 || arg[j] > 0x7e {
						t.Fatalf("accepted %q containing byte 0x%02x", arg, arg[j])
					}
				}
			}
			// Splitting the joined line on spaces recovers argv exactly.
			if back := strings.Split(strings.Join(argv, " "), " "); !slices.Equal(back, argv) {
				t.Fatalf("argv %q does not round-trip: %q", argv, back)
			}
			cmd, err := commandLine(argv)
			if err != nil {
				var ae *ArgvError
				if !errors.As(err, &ae) || ae.Index != 0 {
					t.Fatalf("commandLine(%q) = %v", argv, err)
				}
				continue
			}
			if strings.ContainsAny(cmd, shellMeta[1:]) || len(strings.Split(cmd, " ")) != len(argv) {
				t.Fatalf("commandLine(%q) = %q", argv, cmd)
			}
		}
	})
}
