package wicd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

const usage = `Usage: wicd <command> [flags]

Commands (each prints JSON on stdout; a failure prints {"error":{"code":...,"message":...}} and exits 1):
  version                      the agent's version
  facts                        OS build, hostname, addresses, free disk, features, file hashes
  preflight                    checks the host can become a node
  enable-features              enables the Containers feature; says whether a reboot is needed
  apply --plan FILE            makes the host match a plan; reports what changed
  run                          as a service: re-applies the last plan, restarts stopped services
  cleanup [--file-wait D]      removes the last plan's services, files, networks and payload;
                               waits up to D for processes still holding files
  stage [--plan FILE]          copies payload files already on the host into a new version's folder
                               (C:\k\stage.json by default); only changed files need uploading
  rollback                     applies the previous plan (the one before the last payload version change)
  prune                        removes payload folders except the applied and the previous plan's
  self-upgrade                 run from C:\k\wicd.new.exe: replaces C:\k\wicd.exe with this agent
                               (stop the agent service, replace, start, check; rollback on failure)
  set-hostname --name=NAME     sets the computer name (a lower-case RFC 1123 label, at most 15 characters)
                               for the next boot; says whether a reboot is needed
  hash FILE                    sha256 and size of a file
  service-host --service NAME  only as the Windows service NAME: runs the program C:\k\service-host\NAME.json
                               names as the service's process (for programs that are no Windows service)
  authorized-keys --change FILE
                               adds and removes SSH public keys (JSON {"add":[...],"remove":[...]}) in
                               the authorized keys file sshd reads for the account the agent runs as
`

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs one wicd command line against a backend and returns the exit
// status. Output is JSON on stdout; human-readable diagnostics go to stderr.
func Main(ctx context.Context, b *Backend, args []string, stdout, stderr io.Writer) int {
	if err := b.validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("wicd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)

	var run func() (any, error)
	switch cmd {
	case "version":
		run = func() (any, error) { return wicdapi.Version{Version: b.Version, OS: b.OS, Arch: b.Arch}, nil }
	case "facts":
		run = func() (any, error) { return gatherFacts(b) }
	case "preflight":
		ref := fs.String("reference-time", "", "RFC 3339 time of the caller; the host clock must be within --max-clock-skew of it")
		skew := fs.Duration("max-clock-skew", 5*time.Minute, "largest accepted difference between the host clock and --reference-time")
		minFree := fs.Int64("min-free-disk-bytes", DefaultMinFreeDiskBytes, "free space the system drive needs")
		run = func() (any, error) {
			opts := PreflightOptions{MaxClockSkew: *skew, MinFreeDiskBytes: *minFree}
			if *ref != "" {
				t, err := time.Parse(time.RFC3339, *ref)
				if err != nil {
					return nil, &wicdapi.Error{Code: wicdapi.CodeUsage, Message: "--reference-time: " + err.Error()}
				}
				opts.ReferenceTime = t
			}
			return preflight(ctx, b, opts)
		}
	case "enable-features":
		run = func() (any, error) { return enableFeatures(b) }
	case "apply":
		planPath := fs.String("plan", wicdapi.PlanPath, "plan file to apply")
		run = func() (any, error) {
			p, err := readPlan(b.Files, *planPath)
			if err != nil {
				return nil, err
			}
			return Apply(ctx, b, p)
		}
	case wicdapi.StageArg:
		planPath := fs.String("plan", wicdapi.StagePlanPath, "stage plan file to carry out")
		run = func() (any, error) {
			sp, err := readStagePlan(b.Files, *planPath)
			if err != nil {
				return nil, err
			}
			return Stage(ctx, b, sp)
		}
	case wicdapi.RollbackArg:
		run = func() (any, error) { return Rollback(ctx, b) }
	case wicdapi.PruneArg:
		run = func() (any, error) { return Prune(ctx, b) }
	case "run":
		interval := fs.Duration("interval", DefaultRunInterval, "how often the last plan is re-applied")
		run = func() (any, error) { return nil, RunLoop(ctx, b, *interval, stderr) }
	case "cleanup":
		wait := fs.Duration("file-wait", wicdapi.DefaultStepTimeout, "how long to wait for processes that still hold files")
		run = func() (any, error) { return Cleanup(ctx, b, CleanupOptions{FileWait: *wait, Progress: stderr}) }
	case wicdapi.SelfUpgradeArg:
		step := fs.Duration("step-timeout", wicdapi.DefaultStepTimeout, "deadline of each step")
		run = func() (any, error) {
			return SelfUpgrade(ctx, b, SelfUpgradeOptions{StepTimeout: *step, Progress: stderr})
		}
	case wicdapi.AuthorizedKeysArg:
		changePath := fs.String("change", wicdapi.AuthorizedKeysChangePath, "change file to apply")
		run = func() (any, error) {
			c, err := readAuthorizedKeysChange(b.Files, *changePath)
			if err != nil {
				return nil, err
			}
			return AuthorizedKeys(ctx, b, c)
		}
	case wicdapi.SetHostnameArg:
		name := fs.String("name", "", "the computer name to set")
		run = func() (any, error) { return SetHostname(b, *name) }
	case "hash":
		run = func() (any, error) {
			if fs.NArg() != 1 {
				return nil, &wicdapi.Error{Code: wicdapi.CodeUsage, Message: "hash takes exactly one file"}
			}
			return hashAndRemember(ctx, b, fs.Arg(0))
		}
	case wicdapi.ServiceHostArg:
		fs.String("service", "", "the service whose program to run")
		run = func() (any, error) {
			return nil, codedError(wicdapi.CodeUsage, "%s runs only as a Windows service, started by the service control manager", wicdapi.ServiceHostArg)
		}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "wicd: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	if err := fs.Parse(rest); err != nil {
		return exitUsage
	}
	if cmd != "hash" && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wicd %s: unexpected arguments %q\n", cmd, fs.Args())
		return exitUsage
	}

	out, err := run()
	if err != nil {
		var we *wicdapi.Error
		if !errors.As(err, &we) {
			we = &wicdapi.Error{Code: wicdapi.CodeInternal, Message: err.Error()}
		}
		writeJSON(stdout, wicdapi.ErrorOutput{Error: we})
		if we.Code == wicdapi.CodeUsage {
			return exitUsage
		}
		return exitError
	}
	if out != nil {
		writeJSON(stdout, out)
	}
	return exitOK
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// codedError wraps err with a stable code, keeping err's message.
func codedError(code wicdapi.ErrorCode, format string, args ...any) *wicdapi.Error {
	return &wicdapi.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
