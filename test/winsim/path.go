package winsim

import (
	"errors"
	"strings"
)

// errInvalidName mirrors Windows' ERROR_INVALID_NAME.
var errInvalidName = errors.New("The filename, directory name, or volume label syntax is incorrect.")

// errPathNotFound mirrors Windows' ERROR_PATH_NOT_FOUND for paths on a
// drive that does not exist.
var errPathNotFound = errors.New("The system cannot find the path specified.")

var reservedNames = func() map[string]bool {
	m := map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}
	for _, d := range []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³"} {
		m["COM"+d] = true
		m["LPT"+d] = true
	}
	return m
}()

// splitPath parses an absolute Windows path in any of the forms Windows
// OpenSSH accepts — "C:\a\b", "C:/a/b", "/C:/a/b", mixed separators — into
// its drive letter (upper case) and components, resolving "." and ".."
// lexically (".." at the root stays at the root) and stripping trailing
// dots and spaces from components, as Win32 path normalisation does. The
// bare "/" is the virtual root above the drives: drive 0, no components.
func splitPath(p string) (drive byte, parts []string, err error) {
	if p == "/" || p == `\` {
		return 0, nil, nil
	}
	rest := p
	if len(rest) > 0 && (rest[0] == '/' || rest[0] == '\\') {
		rest = rest[1:]
	}
	if len(rest) < 2 || rest[1] != ':' || !isLetter(rest[0]) {
		return 0, nil, errPathNotFound
	}
	drive = upperASCII(rest[0])
	rest = rest[2:]
	if rest != "" && rest[0] != '/' && rest[0] != '\\' {
		return 0, nil, errInvalidName // drive-relative: no current directory here
	}
	for _, c := range strings.FieldsFunc(rest, func(r rune) bool { return r == '/' || r == '\\' }) {
		switch c {
		case ".":
			continue
		case "..":
			if len(parts) > 0 {
				parts = parts[:len(parts)-1]
			}
			continue
		}
		c = strings.TrimRight(c, ". ")
		if c == "" || strings.ContainsAny(c, `<>:"|?*`) || strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 }) {
			return 0, nil, errInvalidName
		}
		base, _, _ := strings.Cut(c, ".")
		if reservedNames[strings.ToUpper(strings.TrimRight(base, " "))] {
			return 0, nil, errInvalidName
		}
		parts = append(parts, c)
	}
	return drive, parts, nil
}

// canonicalPath returns the "C:\a\b" form of a parsed path.
func canonicalPath(drive byte, parts []string) string {
	if drive == 0 {
		return `\`
	}
	return string(drive) + `:\` + strings.Join(parts, `\`)
}

// CanonicalPath returns the "C:\dir\file" form of a Windows path given in
// any form the host accepts, or an error for a malformed path. Programs use
// it to compare paths.
func CanonicalPath(p string) (string, error) {
	d, parts, err := splitPath(p)
	if err != nil {
		return "", err
	}
	return canonicalPath(d, parts), nil
}

// sftpPath returns the "/C:/a/b" form Windows OpenSSH's sftp-server uses.
func sftpPath(drive byte, parts []string) string {
	if drive == 0 {
		return "/"
	}
	return "/" + string(drive) + ":/" + strings.Join(parts, "/")
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func upperASCII(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// foldName is the key under which a name is stored: NTFS compares names
// case-insensitively (simple upper-casing).
func foldName(name string) string { return strings.ToUpper(name) }
