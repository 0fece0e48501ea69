package winsim

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzSplitPath checks the simulated host's path normalisation, which
// every SFTP request and program lookup goes through: it never panics,
// what it accepts is a drive and clean components (no separators, no "."
// or "..", no trailing dots or spaces, no characters or device names
// Windows refuses), and the canonical "C:\a" and SFTP "/C:/a" forms it
// produces parse back to the same path, as does the input with its
// separators swapped.
func FuzzSplitPath(f *testing.F) {
	for _, p := range []string{`C:\k\wicd.exe`, `/C:/k/../k/./x`, `c:/Users/a/.ssh`, `/`, `\`, `C:`, `C:\..\..\Windows`,
		`D:\a. \b...`, `C:\CON`, `C:\com1.txt`, `C:\a:b`, `C:a`, `\\server\share`, "C:\\a\x01", `/c:\mixed/sep\`} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		drive, parts, err := splitPath(p)
		if err != nil {
			if !errors.Is(err, errInvalidName) && !errors.Is(err, errPathNotFound) {
				t.Fatalf("%q: unexpected error %v", p, err)
			}
			return
		}
		if drive == 0 {
			if len(parts) > 0 {
				t.Fatalf("%q: the root above the drives has components %q", p, parts)
			}
		} else if drive < 'A' || drive > 'Z' {
			t.Fatalf("%q: drive %q", p, drive)
		}
		for _, c := range parts {
			if c == "" || c == "." || c == ".." || strings.ContainsAny(c, `/\<>:"|?*`) ||
				strings.HasSuffix(c, ".") || strings.HasSuffix(c, " ") ||
				strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 }) {
				t.Fatalf("%q: component %q", p, c)
			}
			base, _, _ := strings.Cut(c, ".")
			if reservedNames[strings.ToUpper(strings.TrimRight(base, " "))] {
				t.Fatalf("%q: device name %q accepted", p, c)
			}
		}
		for _, form := range []string{canonicalPath(drive, parts), sftpPath(drive, parts), strings.ReplaceAll(p, `\`, "/"), strings.ReplaceAll(p, "/", `\`)} {
			d2, parts2, err := splitPath(form)
			if err != nil || d2 != drive || !slices.Equal(parts2, parts) {
				t.Fatalf("%q parses as %c %q, its form %q as %c %q (%v)", p, drive, parts, form, d2, parts2, err)
			}
		}
		if c, err := CanonicalPath(p); err != nil || c != canonicalPath(drive, parts) {
			t.Fatalf("CanonicalPath(%q) = %q, %v", p, c, err)
		}
	})
}
