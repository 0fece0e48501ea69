package simagent

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
)

// agentLogMu serialises appends to the agents' log files: the agent's
// service and commands over SSH write to it at once, as on Windows.
var agentLogMu sync.Mutex

// agentLog is the agent's log file on the virtual disk, which the Windows
// build writes for the commands that change the host (wicd.Logged): each
// write is appended as lines stamped with the time, as wicd.RotatingLog
// does (without its rotation: the simulated runs are short).
type agentLog struct {
	disk *winsim.Disk
}

func (l agentLog) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		fmt.Fprintf(&b, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), line)
	}
	agentLogMu.Lock()
	defer agentLogMu.Unlock()
	if err := l.disk.MkdirAll(wicdapi.AgentLogDir); err != nil {
		return 0, err
	}
	old, _ := l.disk.ReadFile(wicdapi.AgentLogPath)
	if err := l.disk.WriteFile(wicdapi.AgentLogPath, append(bytes.Clone(old), b.String()...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// logged returns the stderr the agent runs args with: w, and for the
// commands that change the host also the agent's log file, with the lines
// the Windows build writes at the start and end of each. done writes the
// end line.
func (n *Node) logged(args []string, version string, w io.Writer) (stderr io.Writer, done func()) {
	if !wicd.Logged(args) {
		return w, func() {}
	}
	l := agentLog{disk: n.Host.Disk()}
	fmt.Fprintf(l, "wicd %s %s: started", version, strings.Join(args, " "))
	return io.MultiWriter(l, w), func() { fmt.Fprintf(l, "wicd %s: finished", args[0]) }
}
