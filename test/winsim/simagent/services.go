package simagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
)

// Process is what a service runs: it returns when ctx ends (the service is
// stopped or the host goes down) or when the process exits by itself.
type Process func(ctx context.Context, p ProcessInfo) error

// ProcessInfo describes one start of a service.
type ProcessInfo struct {
	Service wicdapi.Service
	// Binary and Args are the program really run: for a service wrapped by
	// kube-log-runner, the wrapped program.
	Binary string
	Args   []string
	Host   *winsim.Host
}

// Errors the service manager returns, worded as Windows words them.
var (
	ErrAlreadyExists  = errors.New("the specified service already exists")
	ErrDependentsRun  = wicd.ErrDependentsRunning
	ErrServiceRunning = errors.New("the service is running; stop it before deleting it")
	ErrHostDown       = errors.New("the host is not running")
	ErrBinaryNotFound = errors.New("the system cannot find the file specified")
	// ErrServiceStartFail is ERROR_SERVICE_REQUEST_TIMEOUT (1053): what
	// starting a service whose program is no Windows service fails with
	// (see serviceAware).
	ErrServiceStartFail = errors.New("the service did not respond to the start or control request in a timely fashion")
	// ErrProcessAborted is ERROR_PROCESS_ABORTED (1067), the exit code
	// the service manager records for a service whose process ended
	// before it reported running.
	ErrProcessAborted = errors.New("The process terminated unexpectedly.")
)

// processAbortedCode is ERROR_PROCESS_ABORTED; serviceRequestTimeoutCode
// is ERROR_SERVICE_REQUEST_TIMEOUT, ErrServiceStartFail's code: a
// service's process that never connected to the service manager.
const (
	processAbortedCode        = 1067
	serviceRequestTimeoutCode = 1053
)

// ServiceManager is the simulated host's service control manager. Services
// persist across reboots; automatic ones start at boot in dependency order;
// stopping a service another running service depends on fails, as on
// Windows; a process that exits unexpectedly is restarted after its
// recovery delay.
type ServiceManager struct {
	host *winsim.Host
	// processes by lower-case base name of the binary; others idle.
	processes map[string]Process
	// startDelay is how long a start takes (a realistic service start).
	startDelay time.Duration
	// recoveryScale multiplies recovery delays (tests shorten them).
	recoveryScale float64
	// failing maps the sha256 of binaries that exit at once to what they
	// print (Options.FailingBinaries).
	failing map[string]string
	// log receives what failing binaries print.
	log io.Writer
	// gates hold starts (Options.StartGates).
	gates map[string]func(ctx context.Context) error
	// stopGates hold stops (Options.StopGates).
	stopGates map[string]func(ctx context.Context) error

	mu        sync.Mutex
	services  map[string]*service // by lower-case name
	bootCtx   context.Context     // nil while the host is down
	failStart map[string]error
	starts    map[string]int
	// startLog lists the services in the order their processes started.
	startLog []string
	// startChecks by lower-case base name of the binary: a program that
	// exits at once when its check fails (kube-proxy without its HNS
	// network), see startCheck.
	startChecks map[string]startCheck
}

type service struct {
	cfg     wicdapi.Service
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
	// stopping is set by Stop so the exit is not treated as a crash.
	stopping bool
	lastErr  error
}

func newServiceManager(h *winsim.Host, processes map[string]Process, opts Options) *ServiceManager {
	return &ServiceManager{
		host: h, processes: processes, startDelay: opts.ServiceStartDelay, recoveryScale: opts.RecoveryScale,
		failing: opts.FailingBinaries, log: opts.Log, gates: opts.StartGates, stopGates: opts.StopGates,
		services: map[string]*service{}, failStart: map[string]error{}, starts: map[string]int{},
	}
}

func key(name string) string { return strings.ToLower(name) }

// FailStart makes every start of the service fail with err until it is
// called with nil.
func (m *ServiceManager) FailStart(name string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.failStart, key(name))
		return
	}
	m.failStart[key(name)] = err
}

// Starts counts how often a service was started (by anyone).
func (m *ServiceManager) Starts(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.starts[key(name)]
}

// StartLog lists the services in the order their processes started (by
// anyone, since the host was created), a service once per start.
func (m *ServiceManager) StartLog() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.startLog)
}

// Running reports whether a service runs.
func (m *ServiceManager) Running(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[key(name)]
	return s != nil && s.running
}

// LastError is the error a service's process last exited with.
func (m *ServiceManager) LastError(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.services[key(name)]; s != nil {
		return s.lastErr
	}
	return nil
}

// Query implements wicd.Services.
func (m *ServiceManager) Query(_ context.Context, name string) (wicd.ServiceState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[key(name)]
	if s == nil {
		return wicd.ServiceState{}, fmt.Errorf("query %s: %w", name, wicd.ErrServiceNotFound)
	}
	return wicd.ServiceState{Config: cloneService(s.cfg), Running: s.running}, nil
}

// List implements wicd.Services.
func (m *ServiceManager) List(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.services))
	for _, s := range m.services {
		names = append(names, s.cfg.Name)
	}
	sort.Strings(names)
	return names, nil
}

// Create implements wicd.Services.
func (m *ServiceManager) Create(_ context.Context, svc wicdapi.Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.services[key(svc.Name)] != nil {
		return fmt.Errorf("create %s: %w", svc.Name, ErrAlreadyExists)
	}
	m.services[key(svc.Name)] = &service{cfg: cloneService(svc)}
	return nil
}

// Update implements wicd.Services.
func (m *ServiceManager) Update(_ context.Context, svc wicdapi.Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[key(svc.Name)]
	if s == nil {
		return fmt.Errorf("update %s: %w", svc.Name, wicd.ErrServiceNotFound)
	}
	s.cfg = cloneService(svc)
	return nil
}

// Delete implements wicd.Services.
func (m *ServiceManager) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.services[key(name)]
	if s == nil {
		return fmt.Errorf("delete %s: %w", name, wicd.ErrServiceNotFound)
	}
	if s.running {
		return fmt.Errorf("delete %s: %w", name, ErrServiceRunning)
	}
	delete(m.services, key(name))
	return nil
}

// Start implements wicd.Services: dependencies start first, as the
// Windows service manager starts them.
func (m *ServiceManager) Start(ctx context.Context, name string) error {
	return m.start(ctx, name, map[string]bool{})
}

func (m *ServiceManager) start(ctx context.Context, name string, visiting map[string]bool) error {
	if visiting[key(name)] {
		return fmt.Errorf("start %s: circular service dependency", name)
	}
	visiting[key(name)] = true
	m.mu.Lock()
	s := m.services[key(name)]
	if s == nil {
		m.mu.Unlock()
		return fmt.Errorf("start %s: %w", name, wicd.ErrServiceNotFound)
	}
	if s.running {
		m.mu.Unlock()
		return nil
	}
	deps := slices.Clone(s.cfg.Dependencies)
	m.mu.Unlock()
	for _, d := range deps {
		if err := m.start(ctx, d, visiting); err != nil {
			return fmt.Errorf("start %s: dependency: %w", name, err)
		}
	}
	return m.launch(ctx, name)
}

// launch starts the process of a stopped service whose dependencies run.
func (m *ServiceManager) launch(ctx context.Context, name string) error {
	m.mu.Lock()
	s := m.services[key(name)]
	switch {
	case s == nil:
		m.mu.Unlock()
		return fmt.Errorf("start %s: %w", name, wicd.ErrServiceNotFound)
	case s.running:
		m.mu.Unlock()
		return nil
	case m.bootCtx == nil:
		m.mu.Unlock()
		return fmt.Errorf("start %s: %w", name, ErrHostDown)
	}
	if err := m.failStart[key(name)]; err != nil {
		m.mu.Unlock()
		return fmt.Errorf("start %s: %w", name, err)
	}
	info := ProcessInfo{Service: cloneService(s.cfg), Host: m.host}
	if _, err := m.host.Disk().Stat(s.cfg.Binary); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("start %s: %s: %w", name, s.cfg.Binary, ErrBinaryNotFound)
	}
	cmd, notAware := m.serviceCommand(s.cfg)
	if cmd.hostErr != nil {
		// The service host reports start pending, cannot read its
		// program and stops with a service-specific exit code.
		m.starts[key(name)]++
		s.lastErr = fmt.Errorf("wicd service-host: %w", cmd.hostErr)
		m.scheduleRecovery(name, s)
		m.mu.Unlock()
		return fmt.Errorf("start %s: stopped while starting: %w", name, s.lastErr)
	}
	info.Binary, info.Args = cmd.binary, cmd.args
	for _, img := range cmd.images[1:] {
		if _, err := m.host.Disk().Stat(img); err != nil {
			m.mu.Unlock()
			return fmt.Errorf("start %s: %s: %w", name, img, ErrBinaryNotFound)
		}
	}
	if notAware != "" {
		// Windows waits 30 s for the process to connect, kills it and
		// fails the start; no recovery action runs.
		m.starts[key(name)]++
		s.lastErr = fmt.Errorf("%s never connected to the service control manager: %w", notAware, ErrServiceStartFail)
		fmt.Fprintf(m.log, "simagent: service %s: %v\n", name, s.lastErr)
		m.mu.Unlock()
		return fmt.Errorf("start %s: error %d: %w", name, serviceRequestTimeoutCode, s.lastErr)
	}
	bin, msg, ok := m.failingBinary(cmd.images...)
	if check := m.startChecks[strings.ToLower(baseName(info.Binary))]; !ok && check != nil {
		if err := check(info); err != nil {
			bin, msg, ok = baseName(info.Binary), err.Error(), true
		}
	}
	if ok {
		// The process starts and exits at once: the service manager
		// counts a start, reports the service stopped with exit code
		// 1067, and applies the recovery actions as for any crash.
		m.starts[key(name)]++
		s.lastErr = fmt.Errorf("%s exited: %s", bin, msg)
		fmt.Fprintf(m.log, "simagent: service %s: %s exited at once: %s\n", name, bin, msg)
		m.scheduleRecovery(name, s)
		m.mu.Unlock()
		return fmt.Errorf("start %s: stopped while starting: exit code %d: %w", name, processAbortedCode, ErrProcessAborted)
	}
	proc := m.processes[strings.ToLower(baseName(info.Binary))]
	if proc == nil {
		proc = idle
	}
	// The process holds its image (and, under kube-log-runner or the
	// service host, the programs') until it has exited: Windows refuses
	// to replace or delete them meanwhile.
	var release []func()
	holder := fmt.Sprintf("%s (service %s)", baseName(info.Binary), s.cfg.Name)
	for _, img := range cmd.images {
		r, err := m.host.Disk().Hold(img, holder)
		if err != nil {
			for _, r := range release {
				r()
			}
			m.mu.Unlock()
			return fmt.Errorf("start %s: %s: %w", name, img, err)
		}
		release = append(release, r)
	}
	// kube-log-runner opens its log for appending and holds it open
	// while it runs: the log can be neither deleted nor renamed meanwhile,
	// as on Windows. So does a program that writes its own log
	// (containerd's --log-file, windows_exporter's --log.file), as Go's
	// os.OpenFile does on Windows: shared for reading and writing.
	var logFile, line, logHolder string
	if f, ok := nodeconfig.LogRunnerFlag(cmd.runnerArgs, "log-file"); ok && cmd.runnerArgs != nil {
		logFile, logHolder = f, "kube-log-runner.exe (service "+s.cfg.Name+")"
		line = fmt.Sprintf("I%s %7d simagent.go:1] Started %s (service %s)\r\n",
			time.Now().UTC().Format("0102 15:04:05.000000"), m.starts[key(name)]+1, baseName(info.Binary), s.cfg.Name)
	} else if f, ok := ownLogFile(cmd); ok {
		logFile, logHolder = f, fmt.Sprintf("%s (service %s)", baseName(cmd.binary), s.cfg.Name)
		line = fmt.Sprintf("time=%q level=info msg=\"started %s (service %s)\"\r\n",
			time.Now().UTC().Format(time.RFC3339Nano), baseName(cmd.binary), s.cfg.Name)
	}
	if logFile != "" {
		err := m.host.Disk().AppendFile(logFile, []byte(line))
		var r func()
		if err == nil {
			r, err = m.host.Disk().HoldOpen(logFile, logHolder)
		}
		if err != nil {
			for _, r := range release {
				r()
			}
			m.mu.Unlock()
			return fmt.Errorf("start %s: %s: open %s: %w", name, logHolder, logFile, err)
		}
		release = append(release, r)
	}
	pctx, cancel := context.WithCancel(m.bootCtx)
	s.running, s.cancel, s.done, s.stopping, s.lastErr = true, cancel, make(chan struct{}), false, nil
	m.starts[key(name)]++
	m.startLog = append(m.startLog, s.cfg.Name)
	done := s.done
	m.mu.Unlock()

	go func() {
		err := proc(pctx, info)
		m.exited(name, s, err)
		// As on Windows, the service manager reports the service
		// stopped a moment before its process has let go of its files.
		for _, r := range release {
			r()
		}
		close(done)
	}()

	if gate := m.gates[strings.ToLower(baseName(info.Binary))]; gate != nil {
		if err := gate(ctx); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
	}
	if m.startDelay > 0 {
		select {
		case <-time.After(m.startDelay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ownLogFile is the log a program not under kube-log-runner writes
// itself: the value of its --log-file= (containerd) or --log.file=
// (windows_exporter) argument, when that is a path rather than a stream
// (stderr, eventlog).
func ownLogFile(cmd serviceCommand) (string, bool) {
	if cmd.runnerArgs != nil {
		return "", false
	}
	for _, a := range cmd.args {
		for _, flag := range []string{"--log-file=", "--log.file="} {
			if v, ok := strings.CutPrefix(a, flag); ok && strings.Contains(v, `\`) {
				return v, true
			}
		}
	}
	return "", false
}

// exited records a process exit and schedules recovery for a crash.
func (m *ServiceManager) exited(name string, s *service, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.running = false
	s.cancel()
	s.lastErr = err
	if s.stopping {
		return
	}
	m.scheduleRecovery(name, s)
}

// failingBinary returns the first of the binaries whose bytes
// Options.FailingBinaries names, and what it prints. Callers hold m.mu.
func (m *ServiceManager) failingBinary(binaries ...string) (string, string, bool) {
	if len(m.failing) == 0 {
		return "", "", false
	}
	for _, b := range slices.Compact(binaries) {
		sum, err := fileSum(m.host.Disk(), b)
		if err != nil {
			continue
		}
		if msg, ok := m.failing[sum]; ok {
			return b, msg, true
		}
	}
	return "", "", false
}

// scheduleRecovery restarts a service that ended unexpectedly after its
// recovery delay. Callers hold m.mu.
func (m *ServiceManager) scheduleRecovery(name string, s *service) {
	if m.bootCtx == nil || m.services[key(name)] != s {
		return
	}
	delay := time.Duration(float64(time.Duration(s.cfg.Recovery.RestartDelaySeconds)*time.Second) * m.recoveryScale)
	if s.cfg.Recovery.RestartDelaySeconds <= 0 {
		return
	}
	bootCtx := m.bootCtx
	go func() {
		select {
		case <-time.After(delay):
		case <-bootCtx.Done():
			return
		}
		_ = m.Start(bootCtx, name)
	}()
}

// Stop implements wicd.Services.
func (m *ServiceManager) Stop(ctx context.Context, name string) error {
	m.mu.Lock()
	s := m.services[key(name)]
	if s == nil {
		m.mu.Unlock()
		return fmt.Errorf("stop %s: %w", name, wicd.ErrServiceNotFound)
	}
	if !s.running {
		m.mu.Unlock()
		return nil
	}
	for _, other := range m.services {
		if other.running && slices.ContainsFunc(other.cfg.Dependencies, func(d string) bool { return key(d) == key(name) }) {
			m.mu.Unlock()
			return fmt.Errorf("stop %s (%s depends on it): %w", name, other.cfg.Name, ErrDependentsRun)
		}
	}
	gate := m.stopGates[strings.ToLower(baseName(s.cfg.Binary))]
	m.mu.Unlock()
	if gate != nil {
		if err := gate(ctx); err != nil {
			return fmt.Errorf("stop %s: %w", name, err)
		}
	}
	m.mu.Lock()
	if s != m.services[key(name)] || !s.running {
		m.mu.Unlock()
		return nil
	}
	s.stopping = true
	s.cancel()
	done := s.done
	m.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", name, ctx.Err())
	}
}

// Boot implements winsim.Component: automatic services start in
// dependency order.
func (m *ServiceManager) Boot(ctx context.Context) error {
	m.mu.Lock()
	m.bootCtx = ctx
	var auto []string
	for _, s := range m.services {
		if s.cfg.StartType == "" || s.cfg.StartType == wicdapi.StartAutomatic {
			auto = append(auto, s.cfg.Name)
		}
	}
	m.mu.Unlock()
	sort.Strings(auto)
	// Services start in the background, as Windows does during boot.
	go func() {
		for _, n := range auto {
			_ = m.Start(ctx, n)
		}
	}()
	return nil
}

// Shutdown implements winsim.Component: every process ends.
func (m *ServiceManager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.bootCtx = nil
	var waits []chan struct{}
	for _, s := range m.services {
		if s.running {
			s.stopping = true
			s.cancel()
			waits = append(waits, s.done)
		}
	}
	m.mu.Unlock()
	for _, d := range waits {
		select {
		case <-d:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// idle is the process of a service the simulator does not emulate: it runs
// until stopped.
func idle(ctx context.Context, _ ProcessInfo) error {
	<-ctx.Done()
	return nil
}

func cloneService(s wicdapi.Service) wicdapi.Service {
	s.Args = slices.Clone(s.Args)
	s.Dependencies = slices.Clone(s.Dependencies)
	s.Env = maps.Clone(s.Env)
	return s
}

func baseName(p string) string {
	return p[strings.LastIndexAny(p, `\/`)+1:]
}

var _ wicd.Services = (*ServiceManager)(nil)
var _ winsim.Component = (*ServiceManager)(nil)
