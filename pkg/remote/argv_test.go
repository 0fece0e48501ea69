package remote

import (
	"errors"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

func TestCheckArgvAccepts(t *testing.T) {
	tests := [][]string{
		{`C:\k\wicd.exe`, "apply", "--plan", `C:\k\plan.json`},
		{`C:/k/wicd.exe`, "version"},
		{"wicd.exe", "facts", "--output=json"},
		{"hostname"},
		{`.\wicd.exe`},
		{`\\server\share\tool.exe`},
		{"_tool", "-v=4", "/quiet", "1.31.0+abc", "a:b", "x=y"},
	}
	for _, argv := range tests {
		t.Run(strings.Join(argv, " "), func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(CheckArgv(argv)).To(Succeed())
			cmd, err := commandLine(argv)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(strings.Split(cmd, " ")).To(HaveLen(len(argv)))
		})
	}
}

func TestCheckArgvRejects(t *testing.T) {
	long := strings.Repeat("a", 8000)
	tests := []struct {
		name  string
		argv  []string
		index int
	}{
		{"nil", nil, -1},
		{"empty vector", []string{}, -1},
		{"empty program", []string{""}, 0},
		{"empty argument", []string{"wicd.exe", ""}, 1},
		{"ampersand", []string{"wicd.exe", "a&b"}, 1},
		{"pipe", []string{"wicd.exe", "a|b"}, 1},
		{"double quote", []string{"wicd.exe", `"a"`}, 1},
		{"single quote", []string{"wicd.exe", "'a'"}, 1},
		{"percent variable", []string{"wicd.exe", "%PATH%"}, 1},
		{"dollar subexpression", []string{"wicd.exe", "$(x)"}, 1},
		{"dollar variable", []string{"wicd.exe", "$env:PATH"}, 1},
		{"semicolon", []string{"wicd.exe", "a;b"}, 1},
		{"backtick", []string{"wicd.exe", "a`b"}, 1},
		{"newline", []string{"wicd.exe", "a\nb"}, 1},
		{"carriage return", []string{"wicd.exe", "a\rb"}, 1},
		{"space", []string{"wicd.exe", "a b"}, 1},
		{"tab", []string{"wicd.exe", "a\tb"}, 1},
		{"caret", []string{"wicd.exe", "a^b"}, 1},
		{"redirect out", []string{"wicd.exe", ">x"}, 1},
		{"redirect in", []string{"wicd.exe", "<x"}, 1},
		{"parentheses", []string{"wicd.exe", "(a)"}, 1},
		{"bang", []string{"wicd.exe", "!x!"}, 1},
		{"comma", []string{"wicd.exe", "a,b"}, 1},
		{"at splat", []string{"wicd.exe", "@x"}, 1},
		{"braces", []string{"wicd.exe", "{x}"}, 1},
		{"hash comment", []string{"wicd.exe", "#x"}, 1},
		{"wildcard", []string{"wicd.exe", "*"}, 1},
		{"NUL byte", []string{"wicd.exe", "a\x00b"}, 1},
		{"fullwidth quote", []string{"wicd.exe", "\uff02x"}, 1},
		{"non-ASCII letter", []string{"wicd.exe", "é"}, 1},
		{"stop parsing", []string{"wicd.exe", "--%"}, 1},
		{"program label", []string{":label"}, 0},
		{"program switch", []string{"/c"}, 0},
		{"program dash", []string{"-x"}, 0},
		{"program dot-source", []string{".", `C:\x.ps1`}, 0},
		{"program dots", []string{".."}, 0},
		{"too long", []string{"wicd.exe", long, long}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := CheckArgv(tt.argv)
			g.Expect(err).To(HaveOccurred())
			var ae *ArgvError
			g.Expect(errors.As(err, &ae)).To(BeTrue())
			g.Expect(ae.Index).To(Equal(tt.index))
			_, err = commandLine(tt.argv)
			g.Expect(errors.As(err, &ae)).To(BeTrue())
		})
	}
}

func TestArgvErrorDoesNotEchoArgument(t *testing.T) {
	g := NewWithT(t)
	secret := "s3cr3tTOKENvalue&"
	err := CheckArgv([]string{"wicd.exe", secret})
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).NotTo(ContainSubstring("s3cr3t"))
	g.Expect(err.Error()).To(ContainSubstring(`'&'`))
}

func TestCommandLineCanonicalisesProgramPath(t *testing.T) {
	g := NewWithT(t)
	cmd, err := commandLine([]string{"c:/k/wicd.exe", "apply", "--plan", "C:/k/plan.json"})
	g.Expect(err).NotTo(HaveOccurred())
	// The program path uses backslashes (cmd.exe reads "/" as a switch);
	// arguments are sent as given.
	g.Expect(cmd).To(Equal(`C:\k\wicd.exe apply --plan C:/k/plan.json`))

	_, err = commandLine([]string{`C:\k\..\x.exe`})
	var ae *ArgvError
	g.Expect(errors.As(err, &ae)).To(BeTrue())
	g.Expect(ae.Index).To(Equal(0))
}
