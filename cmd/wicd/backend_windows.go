//go:build windows

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"

	"github.com/openwmco/wmco/pkg/wicd"
	wicdwindows "github.com/openwmco/wmco/pkg/wicd/windows"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// stopWaitHint tells the service manager how long stopping may take: the
// current step of the run loop ends when its context is cancelled.
const stopWaitHint = 30_000 // milliseconds

// newBackend is the Windows host the agent runs on.
func newBackend() (*wicd.Backend, error) {
	return wicdwindows.New()
}

// run runs one command line. `wicd run` started by the service control
// manager runs as a Windows service; everything else, including `wicd run`
// from a console, runs directly.
func run(ctx context.Context, b *wicd.Backend, args []string) int {
	if len(args) > 0 && args[0] == "run" {
		isService, err := svc.IsWindowsService()
		if err != nil {
			fmt.Fprintln(os.Stderr, "wicd: find out whether this is a Windows service:", err)
			return 1
		}
		if isService {
			h := &serviceHandler{ctx: ctx, b: b, args: args}
			if err := svc.Run(wicdapi.AgentServiceName, h); err != nil {
				fmt.Fprintln(os.Stderr, "wicd: run as a Windows service:", err)
				return 1
			}
			return h.code
		}
	}
	return wicd.Main(ctx, b, args, os.Stdout, os.Stderr)
}

// serviceHandler runs wicd.Main as a Windows service: Stop and Shutdown
// cancel its context; svc.Run reports Stopped, with Main's exit status as a
// service-specific exit code, once Execute returns.
type serviceHandler struct {
	ctx  context.Context
	b    *wicd.Backend
	args []string
	code int // Main's exit status
}

// Execute implements svc.Handler.
func (h *serviceHandler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	// A service has no console: its output goes to the Application event
	// log, under the service's name as the event source.
	var log io.Writer = io.Discard
	if el, err := eventlog.Open(wicdapi.AgentServiceName); err == nil {
		defer func() { _ = el.Close() }()
		log = eventLogWriter{el}
	}
	done := make(chan int, 1)
	go func() { done <- wicd.Main(ctx, h.b, h.args, log, log) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case h.code = <-done:
			return true, uint32(h.code)
		case req := <-requests:
			switch req.Cmd {
			case svc.Interrogate:
				status <- req.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending, WaitHint: stopWaitHint}
				cancel()
				h.code = <-done
				return true, uint32(h.code)
			}
		}
	}
}

// eventLogWriter writes each diagnostic line as an informational event.
type eventLogWriter struct{ l *eventlog.Log }

func (w eventLogWriter) Write(p []byte) (int, error) {
	if err := w.l.Info(1, strings.TrimRight(string(p), "\r\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}
