package wicd

import (
	"slices"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// loggedCommands change the host: the agent writes what they do to its log
// file (wicdapi.AgentLogPath) as well as to stderr.
var loggedCommands = []string{"apply", "cleanup", "enable-features", "run", wicdapi.SelfUpgradeArg, wicdapi.SetHostnameArg}

// Logged reports whether the command line args (without the program)
// runs a command that changes the host, whose output the agent also
// writes to its log file.
func Logged(args []string) bool {
	return len(args) > 0 && slices.Contains(loggedCommands, args[0])
}
