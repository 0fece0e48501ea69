// Command wicd is the Windows Instance Config Daemon, the node agent the
// operator uploads to every Windows host and runs over SSH with fixed
// arguments. Its subcommands print JSON on stdout.
//
// Only `version` exists so far; facts, preflight, enable-features, apply,
// run and cleanup arrive with the agent issue.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"

	"github.com/openwmco/wmco/pkg/version"
)

const usage = `Usage: wicd <command>

Commands:
  version   print the agent's version as JSON
`

func main() {
	if len(os.Args) != 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch os.Args[1] {
	case "version":
		_ = json.NewEncoder(os.Stdout).Encode(map[string]string{
			"version": version.Get(), "os": runtime.GOOS, "arch": runtime.GOARCH,
		})
	case "-h", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
	default:
		fmt.Fprintf(os.Stderr, "wicd: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
