/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"strconv"
	"strings"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// kube-log-runner's flags (k8s.io/component-base/logs/kube-log-runner).
// It parses them with Go's flag package: one or two dashes, "-name=value"
// or "-name value", flags end at the first argument that is not one (the
// program to run) or after "--".
const (
	logRunnerLogFile       = "log-file"
	logRunnerLogFileSize   = "log-file-size"
	logRunnerLogFileAge    = "log-file-age"
	logRunnerFlushInterval = "flush-interval"
	logRunnerAlsoStdout    = "also-stdout"
	logRunnerRedirectErr   = "redirect-stderr"
)

// logRunnerValueFlags take a value; the others are booleans.
var logRunnerValueFlags = map[string]bool{
	logRunnerLogFile:       true,
	logRunnerLogFileSize:   true,
	logRunnerLogFileAge:    true,
	logRunnerFlushInterval: true,
}

// LogRunnerFlushInterval is how often kube-log-runner flushes a log to
// disk, so that a service's recent output is readable on the host.
const LogRunnerFlushInterval = "5s"

// LogRunnerArgs returns kube-log-runner's flags for writing a service's
// output to logFile, rotated by rotation (which must have its defaults
// applied): a new file once the log reaches MaxFileSizeMiB, rotated files
// removed after MaxAgeDays.
//
// kube-log-runner has no limit on the number of rotated files; the API
// offers none either (size and age bound the logs).
func LogRunnerArgs(logFile string, rotation wmcov1alpha1.LogRotationSpec) []string {
	return []string{
		"-" + logRunnerLogFile + "=" + logFile,
		"-" + logRunnerLogFileSize + "=" + strconv.Itoa(int(rotation.MaxFileSizeMiB)) + "Mi",
		"-" + logRunnerLogFileAge + "=" + strconv.Itoa(int(rotation.MaxAgeDays)*24) + "h",
		"-" + logRunnerFlushInterval + "=" + LogRunnerFlushInterval,
	}
}

// IsLogRunner reports whether a service binary (a Windows path) is
// kube-log-runner.
func IsLogRunner(binary string) bool {
	base := binary[strings.LastIndexAny(binary, `\/`)+1:]
	return strings.EqualFold(base, payload.KubeLogRunnerPath)
}

// UnwrapLogRunner splits kube-log-runner's arguments into the program it
// runs and that program's arguments, skipping kube-log-runner's own flags
// as its flag parser does. binary is empty when args name no program.
func UnwrapLogRunner(args []string) (binary string, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			if i < len(args) {
				return args[i], args[i+1:]
			}
			return "", nil
		}
		if len(a) < 2 || a[0] != '-' {
			return a, args[i+1:]
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if _, _, hasValue := strings.Cut(name, "="); !hasValue && logRunnerValueFlags[name] {
			i++ // the value is the next argument
		}
	}
	return "", nil
}

// LogRunnerFlag returns the value of one of kube-log-runner's flags, by
// name without dashes (e.g. "log-file"), from its arguments.
func LogRunnerFlag(args []string, name string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return "", false
		}
		flag, value, hasValue := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-"), "=")
		if !hasValue && logRunnerValueFlags[flag] {
			if i+1 < len(args) {
				value = args[i+1]
			}
			i++
		} else if !hasValue {
			value = "true"
		}
		if flag == name {
			return value, true
		}
	}
	return "", false
}

// Command returns the program a service really runs and its arguments:
// for a service wrapped by kube-log-runner, the wrapped program.
func Command(s wicdapi.Service) (binary string, args []string) {
	if IsLogRunner(s.Binary) {
		return UnwrapLogRunner(s.Args)
	}
	return s.Binary, s.Args
}
