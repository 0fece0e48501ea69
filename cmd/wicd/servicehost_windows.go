//go:build windows

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Service-specific exit codes of the service host itself (the hosted
// program's own exit code is reported otherwise).
const (
	// hostExitConfig: the ServiceHostConfig is missing or invalid.
	hostExitConfig = 2
	// hostExitStart: the program did not start.
	hostExitStart = 3
)

// runServiceHost runs `wicd service-host --service NAME`: the service
// host of package wicdapi. It always connects to the service control
// manager (svc.IsWindowsService cannot tell under Wine); run from a
// console it fails with "The service process could not connect to the
// service controller".
func runServiceHost(ctx context.Context, b *wicd.Backend, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("wicd "+wicdapi.ServiceHostArg, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("service", "", "the service whose program to run (its configuration is "+wicdapi.ServiceHostConfigPath("<service>")+")")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *name == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: wicd %s --service NAME\n", wicdapi.ServiceHostArg)
		return 2
	}
	log := stderr
	if err := registerEventSource(); err != nil {
		fmt.Fprintln(log, "wicd service-host: register event source:", err)
	}
	// Diagnostics go to the Application event log under the agent's
	// source, naming the service: the program's own output goes where
	// its configuration says (kube-log-runner's log file).
	if el, err := eventlog.Open(wicdapi.AgentServiceName); err == nil {
		defer func() { _ = el.Close() }()
		log = teeWriter{eventLogWriter{el}, stderr}
	}
	h := &hostHandler{ctx: ctx, b: b, name: *name, log: log}
	if err := svc.Run(*name, h); err != nil {
		fmt.Fprintf(log, "wicd service-host %s: run as a Windows service: %v\n", *name, err)
		return 1
	}
	return int(h.code)
}

// hostHandler runs the hosted program as the service's process.
type hostHandler struct {
	ctx  context.Context
	b    *wicd.Backend
	name string
	log  io.Writer
	code uint32 // the service's exit code
}

// Execute implements svc.Handler.
func (h *hostHandler) Execute(_ []string, requests <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending, WaitHint: 10_000}
	cfg, err := wicd.ReadServiceHostConfig(h.b.Files, h.name)
	if err != nil {
		fmt.Fprintf(h.log, "wicd service-host %s: %v\n", h.name, err)
		h.code = hostExitConfig
		return true, h.code
	}
	p, err := startHosted(cfg)
	if err != nil {
		fmt.Fprintf(h.log, "wicd service-host %s: start %s: %v\n", h.name, cfg.Binary, err)
		h.code = hostExitStart
		return true, h.code
	}
	defer p.close()
	if p.jobErr != nil {
		// Without a job, Stop ends the program but not what it started.
		fmt.Fprintf(h.log, "wicd service-host %s: no job object for %s (%v): stopping ends it alone\n", h.name, cfg.Binary, p.jobErr)
	}
	fmt.Fprintf(h.log, "wicd service-host %s: started %s (PID %d)\n", h.name, cfg.Binary, p.pid)
	exited := make(chan uint32, 1)
	go func() { exited <- p.wait() }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case code := <-exited:
			fmt.Fprintf(h.log, "wicd service-host %s: %s exited with status %d\n", h.name, cfg.Binary, code)
			if code == 0 {
				// The program ended by itself: a failure for the service
				// manager, whose recovery actions restart it.
				h.code = uint32(windows.ERROR_PROCESS_ABORTED)
				return false, h.code
			}
			h.code = code
			return true, code
		case <-h.ctx.Done():
			h.stop(p, exited, status)
			return false, 0
		case req := <-requests:
			switch req.Cmd {
			case svc.Interrogate:
				status <- req.CurrentStatus
			case svc.Stop, svc.Shutdown:
				h.stop(p, exited, status)
				return false, 0
			}
		}
	}
}

// stop ends the program and everything it started, waiting for it at
// most wicdapi.ServiceHostStopTimeout.
func (h *hostHandler) stop(p *hosted, exited <-chan uint32, status chan<- svc.Status) {
	status <- svc.Status{State: svc.StopPending, WaitHint: uint32(wicdapi.ServiceHostStopTimeout / time.Millisecond)}
	if err := p.terminate(); err != nil {
		fmt.Fprintf(h.log, "wicd service-host %s: terminate PID %d: %v\n", h.name, p.pid, err)
	}
	select {
	case code := <-exited:
		fmt.Fprintf(h.log, "wicd service-host %s: stopped PID %d (status %d)\n", h.name, p.pid, code)
	case <-time.After(wicdapi.ServiceHostStopTimeout):
		fmt.Fprintf(h.log, "wicd service-host %s: PID %d did not end within %s\n", h.name, p.pid, wicdapi.ServiceHostStopTimeout)
	}
}

// hosted is the program's process and the job object holding it and
// every process it starts.
type hosted struct {
	process windows.Handle
	pid     uint32
	job     windows.Handle // 0 without a job
	jobErr  error
}

// startHosted starts the program suspended, puts it into a job object
// that ends every process of the job when its last handle closes (so
// neither the program nor a child of it outlives the service host), and
// lets it run. The program inherits the service's environment (the
// Environment value of the service's key) and no handles.
func startHosted(cfg *wicdapi.ServiceHostConfig) (*hosted, error) {
	app, err := windows.UTF16PtrFromString(cfg.Binary)
	if err != nil {
		return nil, err
	}
	cmdline, err := windows.UTF16PtrFromString(windows.ComposeCommandLine(append([]string{cfg.Binary}, cfg.Args...)))
	if err != nil {
		return nil, err
	}
	si := &windows.StartupInfo{}
	si.Cb = uint32(unsafe.Sizeof(*si))
	var pi windows.ProcessInformation
	flags := uint32(windows.CREATE_SUSPENDED | windows.CREATE_NO_WINDOW)
	if err := windows.CreateProcess(app, cmdline, nil, nil, false, flags, nil, nil, si, &pi); err != nil {
		return nil, err
	}
	defer func() { _ = windows.CloseHandle(pi.Thread) }()
	p := &hosted{process: pi.Process, pid: pi.ProcessId}
	p.job, p.jobErr = newKillOnCloseJob()
	if p.jobErr == nil {
		if err := windows.AssignProcessToJobObject(p.job, pi.Process); err != nil {
			_ = windows.CloseHandle(p.job)
			p.job, p.jobErr = 0, fmt.Errorf("assign to job: %w", err)
		}
	}
	if _, err := windows.ResumeThread(pi.Thread); err != nil {
		_ = windows.TerminateProcess(pi.Process, 1)
		p.close()
		return nil, fmt.Errorf("resume: %w", err)
	}
	return p, nil
}

// newKillOnCloseJob creates a job object whose processes end when its
// last handle closes.
func newKillOnCloseJob() (windows.Handle, error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, fmt.Errorf("create job: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		_ = windows.CloseHandle(job)
		return 0, fmt.Errorf("set job limits: %w", err)
	}
	return job, nil
}

// wait waits for the program to exit and returns its exit status.
func (p *hosted) wait() uint32 {
	if _, err := windows.WaitForSingleObject(p.process, windows.INFINITE); err != nil {
		return uint32(windows.ERROR_PROCESS_ABORTED)
	}
	var code uint32
	if err := windows.GetExitCodeProcess(p.process, &code); err != nil {
		return uint32(windows.ERROR_PROCESS_ABORTED)
	}
	return code
}

// terminate ends the program and, with a job, every process it started.
func (p *hosted) terminate() error {
	if p.job != 0 {
		return windows.TerminateJobObject(p.job, 1)
	}
	err := windows.TerminateProcess(p.process, 1)
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		// It has exited already.
		return nil
	}
	return err
}

func (p *hosted) close() {
	if p.job != 0 {
		_ = windows.CloseHandle(p.job)
		p.job = 0
	}
	_ = windows.CloseHandle(p.process)
}
