//go:build windows

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"

	"github.com/openwmco/wmco/pkg/wicd"
	wicdwindows "github.com/openwmco/wmco/pkg/wicd/windows"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// stopWaitHint tells the service manager how long stopping may take: the
// current step of the run loop ends when its context is cancelled.
const stopWaitHint = 30_000 // milliseconds

// serviceFlag makes `wicd run --service` run as a Windows service even
// when svc.IsWindowsService cannot tell (Wine's service manager).
const serviceFlag = "--service"

// newBackend is the Windows host the agent runs on.
func newBackend() (*wicd.Backend, error) {
	return wicdwindows.New()
}

// run runs one command line. `wicd run` started by the service control
// manager runs as a Windows service, and `wicd service-host` always does;
// everything else, including `wicd run` from a console, runs directly.
func run(ctx context.Context, b *wicd.Backend, args []string) int {
	var stderr io.Writer = os.Stderr
	if wicd.Logged(args) {
		if l, err := wicd.OpenRotatingLog(wicdapi.AgentLogPath, wicd.DefaultLogMaxBytes, wicd.DefaultLogKeep); err == nil {
			defer func() { _ = l.Close() }()
			fmt.Fprintf(l, "wicd %s %s: started", b.Version, strings.Join(args, " "))
			stderr = teeWriter{l, os.Stderr}
			defer func() { fmt.Fprintf(l, "wicd %s: finished", args[0]) }()
		} else {
			fmt.Fprintln(os.Stderr, "wicd: no log file:", err)
		}
	}
	if len(args) > 0 && args[0] == wicdapi.ServiceHostArg {
		return runServiceHost(ctx, b, args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "run" {
		isService, err := svc.IsWindowsService()
		if err != nil {
			fmt.Fprintln(stderr, "wicd: find out whether this is a Windows service:", err)
			return 1
		}
		if i := slices.Index(args, serviceFlag); i >= 0 {
			isService = true
			args = slices.Delete(slices.Clone(args), i, i+1)
		}
		if isService {
			h := &serviceHandler{ctx: ctx, b: b, args: args, log: stderr}
			if err := svc.Run(wicdapi.AgentServiceName, h); err != nil {
				fmt.Fprintln(stderr, "wicd: run as a Windows service:", err)
				return 1
			}
			return h.code
		}
	}
	return wicd.Main(ctx, b, args, os.Stdout, stderr)
}

// serviceHandler runs wicd.Main as a Windows service: Stop and Shutdown
// cancel its context; svc.Run reports Stopped, with Main's exit status as a
// service-specific exit code, once Execute returns.
type serviceHandler struct {
	ctx  context.Context
	b    *wicd.Backend
	args []string
	log  io.Writer // the log file
	code int       // Main's exit status
}

// Execute implements svc.Handler.
func (h *serviceHandler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	// A service has no console: its diagnostics go to the log file and
	// the Application event log, under the service's name as the event
	// source, which is registered on first start.
	log := h.log
	if err := registerEventSource(); err != nil {
		fmt.Fprintln(log, "wicd: register event source:", err)
	}
	if el, err := eventlog.Open(wicdapi.AgentServiceName); err == nil {
		defer func() { _ = el.Close() }()
		log = teeWriter{h.log, eventLogWriter{el}}
	} else {
		fmt.Fprintln(log, "wicd: open the event log:", err)
	}
	fmt.Fprintf(log, "wicd %s: running as service %s", h.b.Version, wicdapi.AgentServiceName)
	done := make(chan int, 1)
	go func() { done <- wicd.Main(ctx, h.b, h.args, io.Discard, log) }()
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

// eventSourceKey is where the Application log's event sources are
// registered.
const eventSourceKey = `SYSTEM\CurrentControlSet\Services\EventLog\Application\` + wicdapi.AgentServiceName

// registerEventSource registers the agent as an event source of the
// Application log, unless it is registered already.
func registerEventSource() error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, eventSourceKey, registry.QUERY_VALUE)
	if err == nil {
		return k.Close()
	}
	if !errors.Is(err, registry.ErrNotExist) {
		return fmt.Errorf("open HKLM\\%s: %w", eventSourceKey, err)
	}
	return eventlog.InstallAsEventCreate(wicdapi.AgentServiceName, eventlog.Error|eventlog.Warning|eventlog.Info)
}

// teeWriter writes to the log and, best effort, to a second writer: a
// service has no valid standard error, and the event log may refuse a
// message; neither may keep a line from the log file.
type teeWriter struct{ log, also io.Writer }

func (t teeWriter) Write(p []byte) (int, error) {
	_, _ = t.also.Write(p)
	return t.log.Write(p)
}

// eventLogWriter writes each diagnostic line as an informational event.
type eventLogWriter struct{ l *eventlog.Log }

func (w eventLogWriter) Write(p []byte) (int, error) {
	if err := w.l.Info(1, strings.TrimRight(string(p), "\r\n")); err != nil {
		return 0, err
	}
	return len(p), nil
}
