/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"testing"

	. "github.com/onsi/gomega"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

func TestLogRunnerArgs(t *testing.T) {
	g := NewWithT(t)
	args := LogRunnerArgs(`C:\k\log\kubelet.log`, wmcov1alpha1.LogRotationSpec{MaxFileSizeMiB: 100, MaxAgeDays: 7})
	g.Expect(args).To(Equal([]string{
		`-log-file=C:\k\log\kubelet.log`,
		"-log-file-size=100Mi",
		"-log-file-age=168h",
		"-flush-interval=5s",
	}))
}

func TestUnwrapLogRunner(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		wantBin  string
		wantArgs []string
	}{
		{
			name:     "rendered form",
			args:     []string{`-log-file=C:\k\log\kubelet.log`, "-log-file-size=100Mi", "-flush-interval=5s", `C:\k\kubelet.exe`, "--v=2", "--windows-service"},
			wantBin:  `C:\k\kubelet.exe`,
			wantArgs: []string{"--v=2", "--windows-service"},
		},
		{
			name:     "values as separate arguments, double dashes",
			args:     []string{"--log-file", `C:\log`, "-log-file-age", "24h", `C:\k\kube-proxy.exe`, "--config=x"},
			wantBin:  `C:\k\kube-proxy.exe`,
			wantArgs: []string{"--config=x"},
		},
		{
			name:     "boolean flags take no value",
			args:     []string{"-also-stdout", "-redirect-stderr=false", `C:\x.exe`, "a"},
			wantBin:  `C:\x.exe`,
			wantArgs: []string{"a"},
		},
		{
			name:     "-- ends the flags",
			args:     []string{"-log-file=x", "--", "-weird.exe", "-v"},
			wantBin:  "-weird.exe",
			wantArgs: []string{"-v"},
		},
		{name: "no program", args: []string{"-log-file=x"}},
		{name: "nothing", args: nil},
		{name: "dangling value flag", args: []string{"-log-file"}},
		{name: "program without flags", args: []string{`C:\x.exe`}, wantBin: `C:\x.exe`, wantArgs: []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			bin, args := UnwrapLogRunner(tc.args)
			g.Expect(bin).To(Equal(tc.wantBin))
			if len(tc.wantArgs) == 0 {
				g.Expect(args).To(BeEmpty())
			} else {
				g.Expect(args).To(Equal(tc.wantArgs))
			}
		})
	}
}

func TestLogRunnerFlag(t *testing.T) {
	g := NewWithT(t)
	args := []string{"-log-file=a.log", "--log-file-size", "10Mi", "-also-stdout", `C:\x.exe`, "-log-file-age=1h"}
	g.Expect(runnerFlag(args, "log-file")).To(Equal("a.log"))
	g.Expect(runnerFlag(args, "log-file-size")).To(Equal("10Mi"))
	g.Expect(runnerFlag(args, "also-stdout")).To(Equal("true"))
	_, ok := LogRunnerFlag(args, "log-file-age")
	g.Expect(ok).To(BeFalse(), "flags after the program belong to the program")
}

func TestCommand(t *testing.T) {
	g := NewWithT(t)
	bin, args := Command(wicdapi.Service{Binary: `C:\k\payload\v1\KUBE-LOG-RUNNER.EXE`, Args: []string{"-log-file=x", `C:\k\payload\v1\kubelet.exe`, "--v=2"}})
	g.Expect(bin).To(Equal(`C:\k\payload\v1\kubelet.exe`))
	g.Expect(args).To(Equal([]string{"--v=2"}))

	bin, args = Command(wicdapi.Service{Binary: `C:\k\wicd.exe`, Args: []string{"run"}})
	g.Expect(bin).To(Equal(`C:\k\wicd.exe`))
	g.Expect(args).To(Equal([]string{"run"}))

	g.Expect(IsLogRunner("kube-log-runner.exe")).To(BeTrue())
	g.Expect(IsLogRunner("/payload/kube-log-runner.exe")).To(BeTrue())
	g.Expect(IsLogRunner(`C:\k\not-kube-log-runner.exe`)).To(BeFalse())
}

// runnerFlag is LogRunnerFlag's value, for assertions.
func runnerFlag(args []string, name string) string {
	v, _ := LogRunnerFlag(args, name)
	return v
}
