//go:build windows

package windows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

const (
	// pollInterval is how often Start and Stop ask the service manager for
	// a service's state.
	pollInterval = 250 * time.Millisecond
	// stateTimeout bounds how long Start and Stop wait for a service.
	stateTimeout = 2 * time.Minute
	// envValue is the REG_MULTI_SZ value ("K=V" strings) under a service's
	// registry key that the service manager adds to the service process's
	// environment.
	envValue = "Environment"
)

// services is wicd.Services over the Windows service control manager.
type services struct{}

// serviceKey is the registry key (under HKLM) of a service.
func serviceKey(name string) string { return `SYSTEM\CurrentControlSet\Services\` + name }

// withService connects to the service manager, opens a service and calls fn
// with it. A missing service is wicd.ErrServiceNotFound. When the service
// manager calls its own fresh handle invalid (ERROR_INVALID_HANDLE, which
// Wine's service manager answers now and then, to OpenService and to
// StartService alike; CI failed the Wine tier on both), the connection is
// closed and made again and fn runs again, a few times: fn must be safe
// to repeat (a start tolerates a service already running).
func withService(name string, fn func(*mgr.Service) error) error {
	for attempt := 1; ; attempt++ {
		err := withServiceOnce(name, fn)
		if err == nil || !errors.Is(err, windows.ERROR_INVALID_HANDLE) || attempt == serviceAttempts {
			return err
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
}

func withServiceOnce(name string, fn func(*mgr.Service) error) error {
	m, s, err := openService(name)
	if m != nil {
		defer func() { _ = m.Disconnect() }()
	}
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return fmt.Errorf("service %s: %w", name, wicd.ErrServiceNotFound)
	}
	if err != nil {
		return fmt.Errorf("open service %s: %w", name, err)
	}
	defer func() { _ = s.Close() }()
	if err := fn(s); err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	return nil
}

// serviceAttempts bounds how often withService connects anew when the
// service manager calls its own fresh handle invalid.
const serviceAttempts = 3

// openService connects to the service manager and opens a service. m is
// the connection to disconnect when it is not nil.
func openService(name string) (m *mgr.Mgr, s *mgr.Service, err error) {
	m, err = mgr.Connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the service manager: %w", err)
	}
	s, err = m.OpenService(name)
	return m, s, err
}

// Query reads a service's configuration back into a wicdapi.Service, the
// inverse of configure, so that an unchanged service compares equal.
func (services) Query(_ context.Context, name string) (wicd.ServiceState, error) {
	var st wicd.ServiceState
	err := withService(name, func(s *mgr.Service) error {
		cfg, err := queryConfig(s)
		if err != nil {
			return fmt.Errorf("read configuration: %w", err)
		}
		status, err := s.Query()
		if err != nil {
			return fmt.Errorf("read status: %w", err)
		}
		bin, args, err := splitCommandLine(cfg.BinaryPathName)
		if err != nil {
			return fmt.Errorf("parse command line %q: %w", cfg.BinaryPathName, err)
		}
		rec, err := readRecovery(s)
		if err != nil {
			return err
		}
		env, err := readEnv(name)
		if err != nil {
			return err
		}
		display := cfg.DisplayName
		if display == name { // what configure stores for an empty display name
			display = ""
		}
		st = wicd.ServiceState{
			Config: wicdapi.Service{
				Name:         name,
				DisplayName:  display,
				Description:  cfg.Description,
				Binary:       bin,
				Args:         args,
				Dependencies: cfg.Dependencies,
				Env:          env,
				StartType:    startTypeName(cfg.StartType),
				Recovery:     rec,
			},
			// Every state but Stopped has a process: pending states
			// included, so callers stop it rather than start it.
			Running: status.State != svc.Stopped,
		}
		return nil
	})
	return st, err
}

// Create installs a service and configures it like Update. A service that
// cannot be fully configured is deleted again.
func (services) Create(_ context.Context, spec wicdapi.Service) error {
	if err := checkEnv(spec.Env); err != nil {
		return fmt.Errorf("service %s: %w", spec.Name, err)
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager: %w", err)
	}
	defer func() { _ = m.Disconnect() }()
	s, err := m.CreateService(spec.Name, spec.Binary, mgr.Config{
		ServiceType:  windows.SERVICE_WIN32_OWN_PROCESS,
		StartType:    startType(spec.StartType),
		ErrorControl: mgr.ErrorNormal,
		DisplayName:  displayName(spec),
	})
	if err != nil {
		return fmt.Errorf("create service %s: %w", spec.Name, err)
	}
	defer func() { _ = s.Close() }()
	if err := configure(s, spec); err != nil {
		_ = s.Delete()
		return fmt.Errorf("service %s: %w", spec.Name, err)
	}
	return nil
}

// Update rewrites an installed service's configuration.
func (services) Update(_ context.Context, spec wicdapi.Service) error {
	return withService(spec.Name, func(s *mgr.Service) error { return configure(s, spec) })
}

// configure sets everything of spec on an installed service: command line,
// start type, dependencies, display name, description, recovery actions
// and environment. It calls ChangeServiceConfig directly rather than
// mgr.UpdateConfig because the latter passes NULL for empty dependencies
// and descriptions, which Windows reads as "leave unchanged", so they could
// never be cleared.
func configure(s *mgr.Service, spec wicdapi.Service) error {
	if err := checkEnv(spec.Env); err != nil {
		return err
	}
	cmd, err := windows.UTF16PtrFromString(commandLine(spec.Binary, spec.Args))
	if err != nil {
		return fmt.Errorf("command line: %w", err)
	}
	deps, err := multiSZ(spec.Dependencies)
	if err != nil {
		return fmt.Errorf("dependencies: %w", err)
	}
	display, err := windows.UTF16PtrFromString(displayName(spec))
	if err != nil {
		return fmt.Errorf("display name: %w", err)
	}
	err = windows.ChangeServiceConfig(s.Handle, windows.SERVICE_NO_CHANGE, startType(spec.StartType),
		windows.SERVICE_NO_CHANGE, cmd, nil, nil, deps, nil, nil, display)
	if err != nil {
		return fmt.Errorf("change configuration: %w", err)
	}
	desc, err := windows.UTF16PtrFromString(spec.Description) // "" deletes the description
	if err != nil {
		return fmt.Errorf("description: %w", err)
	}
	d := windows.SERVICE_DESCRIPTION{Description: desc}
	if err := windows.ChangeServiceConfig2(s.Handle, windows.SERVICE_CONFIG_DESCRIPTION, (*byte)(unsafe.Pointer(&d))); err != nil {
		return fmt.Errorf("change description: %w", err)
	}
	if err := setRecovery(s, spec.Recovery); err != nil {
		return err
	}
	if spec.SensitiveEnv && len(spec.Env) > 0 {
		// Before the value is written: it is never readable by others.
		if err := protectServiceKey(spec.Name); err != nil {
			return err
		}
	}
	return writeEnv(spec.Name, spec.Env)
}

// sensitiveKeySDDL is the DACL of a service's registry key whose
// Environment holds credentials (wicdapi.Service.SensitiveEnv): full
// control for LocalSystem (the service manager) and Administrators only,
// inherited by its subkeys, nothing inherited from the Services key, which
// lets every user read it.
const sensitiveKeySDDL = "D:P(A;CI;KA;;;SY)(A;CI;KA;;;BA)"

// protectServiceKey gives a service's registry key sensitiveKeySDDL. The
// key stays so: a later plan without credentials needs no wider access.
func protectServiceKey(name string) error {
	sd, err := windows.SecurityDescriptorFromString(sensitiveKeySDDL)
	if err != nil {
		return fmt.Errorf("parse %s: %w", sensitiveKeySDDL, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return fmt.Errorf("DACL of %s: %w", sensitiveKeySDDL, err)
	}
	err = windows.SetNamedSecurityInfo(`MACHINE\`+serviceKey(name), windows.SE_REGISTRY_KEY,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("restrict HKLM\\%s to administrators: %w", serviceKey(name), err)
	}
	return nil
}

// Start starts a service and waits until it runs; a service that stops
// instead has failed.
func (services) Start(ctx context.Context, name string) error {
	return withService(name, func(s *mgr.Service) error {
		if err := s.Start(); err != nil && !errors.Is(err, windows.ERROR_SERVICE_ALREADY_RUNNING) {
			return fmt.Errorf("start: %w", err)
		}
		return poll(ctx, "running", func() (bool, error) {
			st, err := s.Query()
			switch {
			case err != nil:
				return false, fmt.Errorf("read status: %w", err)
			case st.State == svc.Stopped:
				return false, fmt.Errorf("stopped while starting: %w", exitError(st))
			}
			return st.State == svc.Running, nil
		})
	})
}

// Stop asks a service to stop and waits until it has. A running dependent
// makes the service manager refuse (ERROR_DEPENDENT_SERVICES_RUNNING); the
// caller stops dependents first.
func (services) Stop(ctx context.Context, name string) error {
	return withService(name, func(s *mgr.Service) error {
		return poll(ctx, "stopped", func() (bool, error) {
			st, err := s.Query()
			if err != nil {
				return false, fmt.Errorf("read status: %w", err)
			}
			switch st.State {
			case svc.Stopped:
				return true, nil
			case svc.Running, svc.Paused: // not yet asked, or ignored the request
				_, err := s.Control(svc.Stop)
				if errors.Is(err, windows.ERROR_DEPENDENT_SERVICES_RUNNING) {
					return false, fmt.Errorf("send stop: %w (%w)", wicd.ErrDependentsRunning, err)
				}
				if err != nil && !errors.Is(err, windows.ERROR_SERVICE_CANNOT_ACCEPT_CTRL) &&
					!errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
					return false, fmt.Errorf("send stop: %w", err)
				}
			}
			return false, nil // a pending state: wait
		})
	})
}

// Delete marks a service for deletion; the service manager removes it (and
// its registry key with the environment) once no handle to it is open.
func (services) Delete(_ context.Context, name string) error {
	return withService(name, func(s *mgr.Service) error {
		if err := s.Delete(); err != nil && !errors.Is(err, windows.ERROR_SERVICE_MARKED_FOR_DELETE) {
			return fmt.Errorf("delete: %w", err)
		}
		return nil
	})
}

// List returns the names of all Win32 services (drivers excluded).
func (services) List(context.Context) ([]string, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, fmt.Errorf("connect to the service manager: %w", err)
	}
	defer func() { _ = m.Disconnect() }()
	names, err := m.ListServices()
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return names, nil
}

// poll calls check every pollInterval until it reports done or fails, ctx
// ends or stateTimeout passes.
func poll(ctx context.Context, what string, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait until %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// exitError describes why a service stopped.
func exitError(st svc.Status) error {
	if st.Win32ExitCode == uint32(windows.ERROR_SERVICE_SPECIFIC_ERROR) {
		return fmt.Errorf("service-specific exit code %d", st.ServiceSpecificExitCode)
	}
	return fmt.Errorf("exit code %d: %w", st.Win32ExitCode, windows.Errno(st.Win32ExitCode))
}

// commandLine is the service's BinaryPathName: the binary and each argument
// quoted as CommandLineToArgvW parses them back (splitCommandLine).
func commandLine(binary string, args []string) string {
	return windows.ComposeCommandLine(append([]string{binary}, args...))
}

// splitCommandLine is the inverse of commandLine, parsing as
// CommandLineToArgvW does. An unquoted binary path with spaces, which the
// service manager also accepts from services installed by others, comes
// back cut at its first space.
func splitCommandLine(cmd string) (binary string, args []string, err error) {
	parts, err := windows.DecomposeCommandLine(cmd)
	if err != nil || len(parts) == 0 {
		return "", nil, err
	}
	return parts[0], parts[1:], nil
}

// multiSZ is a double-NUL-terminated list for ChangeServiceConfig; an empty
// list is "\0\0", which removes every dependency (NULL would keep them).
func multiSZ(ss []string) (*uint16, error) {
	var b []uint16
	for _, s := range ss {
		if s == "" || strings.ContainsRune(s, 0) {
			return nil, fmt.Errorf("invalid entry %q", s)
		}
		b = append(b, utf16.Encode([]rune(s))...)
		b = append(b, 0)
	}
	b = append(b, 0)
	if len(ss) == 0 {
		b = append(b, 0)
	}
	return &b[0], nil
}

// displayName is what the service manager shows: the plan's display name or
// else the service name, which Query maps back to "".
func displayName(spec wicdapi.Service) string {
	if spec.DisplayName == "" {
		return spec.Name
	}
	return spec.DisplayName
}

func startType(t wicdapi.StartType) uint32 {
	if t == wicdapi.StartManual {
		return mgr.StartManual
	}
	return mgr.StartAutomatic
}

// startTypeName maps a Windows start type back; types a plan cannot ask for
// (disabled, boot, system) get their own names so they differ from any plan
// and Update puts the plan's type back.
func startTypeName(t uint32) wicdapi.StartType {
	switch t {
	case mgr.StartAutomatic:
		return wicdapi.StartAutomatic
	case mgr.StartManual:
		return wicdapi.StartManual
	case mgr.StartDisabled:
		return "disabled"
	}
	return wicdapi.StartType(fmt.Sprintf("start-type-%d", t))
}

// setRecovery makes the service manager restart the service after
// RestartDelaySeconds on every failure (three identical actions, so the
// Services console shows first, second and subsequent failures alike),
// including a stop with a non-zero exit code. A zero Recovery removes all
// failure actions.
func setRecovery(s *mgr.Service, r wicdapi.Recovery) error {
	if r == (wicdapi.Recovery{}) {
		if err := s.ResetRecoveryActions(); err != nil {
			return fmt.Errorf("clear recovery actions: %w", err)
		}
		return nil
	}
	if r.RestartDelaySeconds < 0 || r.ResetPeriodSeconds < 0 {
		return fmt.Errorf("recovery %+v: negative durations", r)
	}
	restart := mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: time.Duration(r.RestartDelaySeconds) * time.Second}
	if err := s.SetRecoveryActions([]mgr.RecoveryAction{restart, restart, restart}, uint32(r.ResetPeriodSeconds)); err != nil {
		return fmt.Errorf("set recovery actions: %w", err)
	}
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("set recovery on non-crash failures: %w", err)
	}
	return nil
}

// readRecovery is the inverse of setRecovery: the first failure action's
// delay, if it restarts the service, and the reset period.
func readRecovery(s *mgr.Service) (wicdapi.Recovery, error) {
	actions, err := s.RecoveryActions()
	if err != nil && errors.Is(err, windows.ERROR_INVALID_LEVEL) && onWine() {
		// Wine's QueryServiceConfig2 lacks SERVICE_CONFIG_FAILURE_ACTIONS.
		// Only there is it read as "no recovery"; setting recovery
		// fails under Wine as loudly as any error on Windows.
		return wicdapi.Recovery{}, nil
	}
	if err != nil {
		return wicdapi.Recovery{}, fmt.Errorf("read recovery actions: %w", err)
	}
	if len(actions) == 0 || actions[0].Type != mgr.ServiceRestart {
		return wicdapi.Recovery{}, nil
	}
	reset, err := s.ResetPeriod()
	if err != nil {
		return wicdapi.Recovery{}, fmt.Errorf("read recovery reset period: %w", err)
	}
	return wicdapi.Recovery{
		RestartDelaySeconds: int(actions[0].Delay / time.Second),
		ResetPeriodSeconds:  int(reset),
	}, nil
}

// checkEnv rejects variables the Environment value cannot hold.
func checkEnv(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("environment variable %q is not valid", k)
		}
	}
	return nil
}

// readEnv reads the service's Environment value; nil when there is none.
func readEnv(name string) (map[string]string, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, serviceKey(name), registry.QUERY_VALUE)
	if err != nil {
		return nil, fmt.Errorf("open registry key HKLM\\%s: %w", serviceKey(name), err)
	}
	defer func() { _ = k.Close() }()
	vals, _, err := k.GetStringsValue(envValue)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read HKLM\\%s\\%s: %w", serviceKey(name), envValue, err)
	}
	env := map[string]string{}
	for _, kv := range vals {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	return env, nil
}

// writeEnv replaces the service's Environment value with env, sorted; an
// empty env deletes the value.
func writeEnv(name string, env map[string]string) error {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, serviceKey(name), registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("open registry key HKLM\\%s: %w", serviceKey(name), err)
	}
	defer func() { _ = k.Close() }()
	if len(env) == 0 {
		if err := k.DeleteValue(envValue); err != nil && !errors.Is(err, registry.ErrNotExist) {
			return fmt.Errorf("delete HKLM\\%s\\%s: %w", serviceKey(name), envValue, err)
		}
		return nil
	}
	vals := make([]string, 0, len(env))
	for k, v := range env {
		vals = append(vals, k+"="+v)
	}
	slices.Sort(vals)
	if err := k.SetStringsValue(envValue, vals); err != nil {
		return fmt.Errorf("write HKLM\\%s\\%s: %w", serviceKey(name), envValue, err)
	}
	return nil
}

// onWine reports whether the agent runs under Wine (whose ntdll exports
// wine_get_version), where some service manager calls are missing.
var onWine = sync.OnceValue(func() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
})

// serviceConfig is the part of a service's configuration the agent
// manages.
type serviceConfig struct {
	StartType      uint32
	BinaryPathName string
	Dependencies   []string
	DisplayName    string
	Description    string
}

// queryConfig reads a service's configuration with QueryServiceConfig and
// the description (QueryServiceConfig2 level 1). mgr.Service.Config also
// asks for the delayed-start and SID settings (levels 3 and 5), which the
// agent does not manage and which Wine does not implement.
func queryConfig(s *mgr.Service) (serviceConfig, error) {
	n := uint32(1024)
	var p *windows.QUERY_SERVICE_CONFIG
	for {
		b := make([]byte, n)
		p = (*windows.QUERY_SERVICE_CONFIG)(unsafe.Pointer(&b[0]))
		err := windows.QueryServiceConfig(s.Handle, p, n, &n)
		if err == nil {
			break
		}
		if !errors.Is(err, windows.ERROR_INSUFFICIENT_BUFFER) || n <= uint32(len(b)) {
			return serviceConfig{}, err
		}
	}
	cfg := serviceConfig{
		StartType:      p.StartType,
		BinaryPathName: windows.UTF16PtrToString(p.BinaryPathName),
		Dependencies:   multiSZToStrings(p.Dependencies),
		DisplayName:    windows.UTF16PtrToString(p.DisplayName),
	}
	n = 256
	for {
		b := make([]byte, n)
		err := windows.QueryServiceConfig2(s.Handle, windows.SERVICE_CONFIG_DESCRIPTION, &b[0], n, &n)
		if err == nil {
			cfg.Description = windows.UTF16PtrToString((*windows.SERVICE_DESCRIPTION)(unsafe.Pointer(&b[0])).Description)
			return cfg, nil
		}
		if !errors.Is(err, windows.ERROR_INSUFFICIENT_BUFFER) || n <= uint32(len(b)) {
			return serviceConfig{}, fmt.Errorf("read description: %w", err)
		}
	}
}

// multiSZToStrings splits a double-NUL-terminated list.
func multiSZToStrings(p *uint16) []string {
	if p == nil {
		return nil
	}
	var out []string
	for {
		s := windows.UTF16PtrToString(p)
		if s == "" {
			return out
		}
		out = append(out, s)
		p = (*uint16)(unsafe.Add(unsafe.Pointer(p), (len(utf16.Encode([]rune(s)))+1)*2))
	}
}
