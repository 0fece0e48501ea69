package wicd

import "strings"

// foldPath is a Windows path in a form fit for comparison: backslashes,
// lower case, no trailing separator.
func foldPath(p string) string {
	p = strings.ReplaceAll(p, "/", `\`)
	p = strings.TrimRight(p, `\`)
	return strings.ToLower(p)
}

// samePath compares Windows paths as Windows does: case-insensitively and
// with / and \ alike.
func samePath(a, b string) bool { return foldPath(a) == foldPath(b) }

// underDir reports whether p is dir or inside it.
func underDir(p, dir string) bool {
	fp, fd := foldPath(p), foldPath(dir)
	return fp == fd || strings.HasPrefix(fp, fd+`\`)
}

// isAbsWindowsPath accepts C:\... (or C:/...) without . or .. components.
func isAbsWindowsPath(p string) bool {
	if len(p) < 3 || p[1] != ':' || (p[2] != '\\' && p[2] != '/') {
		return false
	}
	c := p[0] | 0x20
	if c < 'a' || c > 'z' {
		return false
	}
	for _, part := range strings.FieldsFunc(p[3:], func(r rune) bool { return r == '\\' || r == '/' }) {
		if part == "." || part == ".." || strings.ContainsAny(part, "<>:\"|?*\x00") {
			return false
		}
	}
	return true
}
