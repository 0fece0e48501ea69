package remote

import (
	"strings"
	"unicode/utf8"
)

const (
	// maxPathLen is the longest path NTFS can address (UTF-16 code units
	// of the \\?\ form); we count bytes, which is stricter.
	maxPathLen = 32767
	// maxComponentLen is NTFS's limit for one name.
	maxComponentLen = 255
)

// reservedNames are the DOS device names Windows resolves in every
// directory, with or without an extension ("NUL.txt" is the NUL device).
var reservedNames = func() map[string]bool {
	m := map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}
	for _, d := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"} {
		m["COM"+d] = true
		m["LPT"+d] = true
	}
	return m
}()

// NormalizePath returns the canonical form of an absolute Windows path on a
// drive: upper-case drive letter, backslash separators, no empty or "."
// components and no trailing separator except for a drive root ("C:\").
// The case of the other components is preserved; compare with SamePath.
//
// Accepted inputs: "C:\k\wicd.exe", "C:/k/wicd.exe", mixed separators, and
// the form Windows OpenSSH's sftp-server uses, "/C:/k/wicd.exe" (including
// "/C:" for the drive root).
//
// Rejected with *InvalidPathError: empty or relative paths, drive-relative
// paths ("C:k"), UNC and device paths ("\\server\share", "\\?\C:\"), any ".."
// component (even one that would stay inside the drive: the operator never
// needs one), NUL and other control characters, invalid UTF-8, the
// characters < > : " | ? * outside the drive colon (":" would name an
// alternate data stream), components ending in a dot or a space (Windows
// strips those, so two spellings would name one file), reserved device names
// (CON, PRN, AUX, NUL, COM0-9, LPT0-9, CONIN$, CONOUT$; with or without an
// extension) and over-long names.
//
// NormalizePath is pure and idempotent: NormalizePath(NormalizePath(p))
// returns the same path.
func NormalizePath(p string) (string, error) {
	bad := func(reason string) (string, error) {
		return "", &InvalidPathError{Path: p, Reason: reason}
	}
	if p == "" {
		return bad("empty")
	}
	if len(p) > maxPathLen {
		return bad("too long")
	}
	if !utf8.ValidString(p) {
		return bad("not valid UTF-8")
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return bad("contains a control character")
		}
	}

	rest := p
	sftpForm := false
	if isSep(rest[0]) {
		// Only the SFTP form "/C:..." may start with a separator.
		if len(rest) < 3 || !isDriveLetter(rest[1]) || rest[2] != ':' {
			return bad("not an absolute path on a drive (UNC, device and rooted paths are not accepted)")
		}
		rest = rest[1:]
		sftpForm = true
	}
	if len(rest) < 2 || !isDriveLetter(rest[0]) || rest[1] != ':' {
		return bad("not an absolute path on a drive")
	}
	drive := strings.ToUpper(rest[:1])
	rest = rest[2:]
	if rest == "" {
		if sftpForm {
			return drive + `:\`, nil
		}
		return bad("drive-relative path")
	}
	if !isSep(rest[0]) {
		return bad("drive-relative path")
	}

	var b strings.Builder
	b.Grow(len(p))
	b.WriteString(drive)
	b.WriteString(`:`)
	n := 0
	for _, c := range strings.FieldsFunc(rest, func(r rune) bool { return r == '\\' || r == '/' }) {
		if c == "." {
			continue
		}
		if reason := checkComponent(c); reason != "" {
			return bad(reason)
		}
		b.WriteByte('\\')
		b.WriteString(c)
		n++
	}
	if n == 0 {
		b.WriteByte('\\')
	}
	return b.String(), nil
}

// checkComponent returns why c cannot be a Windows file name, or "".
func checkComponent(c string) string {
	if c == ".." {
		return `".." component`
	}
	if len(c) > maxComponentLen {
		return "component longer than 255 bytes"
	}
	if i := strings.IndexAny(c, `<>:"|?*`); i >= 0 {
		return "invalid character " + quoteRune(c[i]) + " in a component"
	}
	if last := c[len(c)-1]; last == '.' || last == ' ' {
		return "component ends with a dot or a space"
	}
	base, _, _ := strings.Cut(c, ".")
	base = strings.TrimRight(base, " ")
	if reservedNames[strings.ToUpper(base)] {
		return "reserved device name " + quoteString(base)
	}
	return ""
}

// SamePath reports whether a and b name the same file on Windows: both are
// valid paths (see NormalizePath) and their canonical forms are equal when
// compared case-insensitively. Case is folded rune by rune with Unicode
// simple upper-casing, which approximates NTFS's $UpCase table; it does not
// treat distinct characters that merely fold together elsewhere (such as
// the Kelvin sign and "K") as equal unless upper-casing maps them together.
func SamePath(a, b string) bool {
	na, err := NormalizePath(a)
	if err != nil {
		return false
	}
	nb, err := NormalizePath(b)
	if err != nil {
		return false
	}
	return na == nb || strings.EqualFold(na, nb)
}

// toSFTPPath converts a canonical Windows path ("C:\k\x") to the form
// Windows OpenSSH's sftp-server expects ("/C:/k/x").
func toSFTPPath(canonical string) string {
	return "/" + strings.ReplaceAll(canonical, `\`, "/")
}

// parentPath returns the parent of a canonical path and false for a drive
// root.
func parentPath(canonical string) (string, bool) {
	i := strings.LastIndexByte(canonical, '\\')
	if i < 0 || i == len(canonical)-1 {
		return "", false
	}
	if i == 2 {
		return canonical[:3], true
	}
	return canonical[:i], true
}

func isSep(c byte) bool { return c == '\\' || c == '/' }

func isDriveLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func quoteRune(c byte) string { return "'" + string(c) + "'" }

func quoteString(s string) string { return `"` + s + `"` }
