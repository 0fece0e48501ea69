// Command wicd is the Windows Instance Config Daemon, the node agent the
// operator uploads to every Windows host and runs over SSH with fixed
// arguments (`wicd apply --plan C:\k\plan.json`). Its subcommands print
// JSON on stdout; `wicd help` lists them. The logic is in pkg/wicd; this
// file only picks the host backend.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"

	"github.com/openwmco/wmco/pkg/version"
)

func main() { os.Exit(mainCode()) }

// mainCode runs the agent and returns its exit status, so that deferred
// calls run before main exits.
func mainCode() int {
	b, err := newBackend()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wicd:", err)
		return 1
	}
	b.Version, b.OS, b.Arch = version.Get(), runtime.GOOS, runtime.GOARCH
	if exe, err := os.Executable(); err == nil {
		b.Executable = exe
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return run(ctx, b, os.Args[1:])
}
