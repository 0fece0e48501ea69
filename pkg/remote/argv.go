package remote

import (
	"errors"
	"fmt"
	"strings"
)

// maxCommandLine is cmd.exe's command-line limit in characters.
const maxCommandLine = 8191

// argAllowed reports whether c may appear in an argument sent to a Windows
// host. The set is deliberately tiny:
//
//   - ASCII letters and digits. Non-ASCII letters are refused: Windows
//     "best-fit" code page conversion maps some of them (fullwidth quotes,
//     for example) to shell metacharacters.
//   - _ - . : \ / = +, enough for paths ("C:\k\plan.json"), flags
//     ("--plan", "--v=4", "/quiet") and versions ("1.31.0+abc").
//
// Everything else is refused, notably cmd.exe's & | < > ^ % ! ( ) " and
// PowerShell's $ ` ' ; , @ { } # and whitespace. The comma is refused because
// PowerShell parses an unquoted a,b as an array and passes "a b" to native
// programs, which would split one argument into two.
func argAllowed(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '_', '-', '.', ':', '\\', '/', '=', '+':
		return true
	}
	return false
}

// CheckArgv reports whether argv can be sent to a Windows host as a command
// line that neither cmd.exe nor PowerShell would reinterpret. It returns an
// *ArgvError for:
//
//   - an empty vector or an empty argument;
//   - any byte outside the allow-list (see argAllowed in the source: ASCII
//     letters, digits and _ - . : \ / = +); in particular spaces, quotes,
//     %VAR%, $(x), backticks, ; & | < > ^ and newlines;
//   - a program (argv[0]) that does not start with a letter, digit, "_",
//     "." or "\" or contains no letter or digit (cmd.exe reads a leading ":"
//     as a label and "/" as a switch; PowerShell reads "." as dot-sourcing);
//   - a command line longer than cmd.exe's 8191 characters.
//
// Because no argument contains a space or a quote, joining the arguments
// with single spaces is unambiguous: Windows' CommandLineToArgvW and a plain
// split on spaces both recover argv exactly.
func CheckArgv(argv []string) error {
	if len(argv) == 0 {
		return &ArgvError{Index: -1, Reason: "no program"}
	}
	total := len(argv) - 1
	for i, a := range argv {
		if a == "" {
			return &ArgvError{Index: i, Reason: "empty argument"}
		}
		for j := 0; j < len(a); j++ {
			if !argAllowed(a[j]) {
				return &ArgvError{Index: i, Reason: fmt.Sprintf("character %s at offset %d is not allowed", describeByte(a[j]), j)}
			}
		}
		total += len(a)
	}
	prog := argv[0]
	if c := prog[0]; !(isAlnum(c) || c == '_' || c == '.' || c == '\\') {
		return &ArgvError{Index: 0, Reason: fmt.Sprintf("program must not start with %s", describeByte(c))}
	}
	if !strings.ContainsFunc(prog, func(r rune) bool { return r < 0x80 && isAlnum(byte(r)) }) {
		return &ArgvError{Index: 0, Reason: "program name has no letter or digit"}
	}
	if total > maxCommandLine {
		return &ArgvError{Index: -1, Reason: fmt.Sprintf("command line of %d characters exceeds cmd.exe's limit of %d", total, maxCommandLine)}
	}
	return nil
}

// commandLine checks argv and renders it as the command string sent in the
// SSH exec request. A program given as an absolute path is canonicalised to
// backslashes: cmd.exe treats "/" in a program path as a switch character.
func commandLine(argv []string) (string, error) {
	if err := CheckArgv(argv); err != nil {
		return "", err
	}
	parts := make([]string, len(argv))
	copy(parts, argv)
	if len(parts[0]) >= 2 && parts[0][1] == ':' {
		p, err := NormalizePath(parts[0])
		if err != nil {
			reason := err.Error()
			if pe := (*InvalidPathError)(nil); errors.As(err, &pe) {
				reason = pe.Reason
			}
			return "", &ArgvError{Index: 0, Reason: "program path: " + reason}
		}
		parts[0] = p
	}
	return strings.Join(parts, " "), nil
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// describeByte names a byte for an error message without echoing
// unprintable or non-ASCII input verbatim.
func describeByte(c byte) string {
	if c > 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}
