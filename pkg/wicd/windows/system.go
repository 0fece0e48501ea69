//go:build windows

package windows

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// systemDirectory is C:\Windows\System32.
func systemDirectory() (string, error) {
	dir, err := windows.GetSystemDirectory()
	if err != nil {
		return "", fmt.Errorf("find the system directory: %w", err)
	}
	return dir, nil
}

// vmcomputeKey is the registry key of the Host Compute Service (vmcompute),
// which the Containers feature installs.
const vmcomputeKey = `SYSTEM\CurrentControlSet\Services\vmcompute`

// system is wicd.System for the local host.
type system struct{}

// Hostname is the host's DNS host name (GetComputerNameEx with
// ComputerNamePhysicalDnsHostname).
func (system) Hostname() (string, error) { return os.Hostname() }

// OSBuild is the build number from RtlGetVersion, which, unlike
// GetVersionEx, is not subject to compatibility shims.
func (system) OSBuild() (int, error) { return int(windows.RtlGetVersion().BuildNumber), nil }

func (system) Now() time.Time { return time.Now() }

// Addresses are the unicast addresses of the interfaces that are up,
// without loopback and link-local ones, IPv4 first.
func (system) Addresses() ([]string, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var v4, v6 []string
	seen := map[string]bool{}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of interface %s: %w", iface.Name, err)
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet) // unicast; anycast addresses are *net.IPAddr
			if !ok {
				continue
			}
			ip := ipnet.IP
			if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || seen[ip.String()] {
				continue
			}
			seen[ip.String()] = true
			if ip.To4() != nil {
				v4 = append(v4, ip.String())
			} else {
				v6 = append(v6, ip.String())
			}
		}
	}
	return append(v4, v6...), nil
}

// Features reports whether the Containers feature is enabled. Asking DISM
// (dismapi.dll, or parsing dism.exe's localised output) is heavy; instead
// the presence of the Host Compute Service's registry key, which enabling
// Containers creates, stands for the feature. Hyper-V installs the same
// service, so a Hyper-V host without Containers reads as enabled. Other
// feature names are an error.
func (system) Features(names []string) (map[string]bool, error) {
	out := make(map[string]bool, len(names))
	for _, name := range names {
		if name != wicd.FeatureContainers {
			return nil, fmt.Errorf("feature %q: only %s is known", name, wicd.FeatureContainers)
		}
		k, err := registry.OpenKey(registry.LOCAL_MACHINE, vmcomputeKey, registry.QUERY_VALUE)
		switch {
		case err == nil:
			_ = k.Close()
			out[name] = true
		case errors.Is(err, registry.ErrNotExist):
			out[name] = false
		default:
			return nil, fmt.Errorf("open registry key HKLM\\%s: %w", vmcomputeKey, err)
		}
	}
	return out, nil
}

// EnableFeature enables the Containers feature with
// `dism.exe /online /enable-feature /featurename:Containers /all /norestart`
// (fixed arguments). DISM exits with 3010 (ERROR_SUCCESS_REBOOT_REQUIRED)
// when a reboot completes the change.
func (system) EnableFeature(name string) (bool, error) {
	if name != wicd.FeatureContainers {
		return false, fmt.Errorf("feature %q: only %s can be enabled", name, wicd.FeatureContainers)
	}
	sysdir, err := systemDirectory()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wicdapi.EnableFeaturesTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(sysdir, "dism.exe"),
		"/online", "/enable-feature", "/featurename:"+wicd.FeatureContainers, "/all", "/norestart")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		// Without a reboot to wait for, the feature must be on now; a
		// DISM that does nothing (Wine's stub) must not pass for one
		// that worked.
		on, ferr := system{}.Features([]string{name})
		if ferr != nil {
			return false, ferr
		}
		if !on[name] {
			return false, fmt.Errorf("dism /enable-feature /featurename:%s exited 0, but the feature is not enabled", name)
		}
		return false, nil
	case errors.As(err, &exit) && (exit.ExitCode() == int(windows.ERROR_SUCCESS_REBOOT_REQUIRED) ||
		exit.ExitCode() == int(windows.ERROR_SUCCESS_REBOOT_INITIATED)):
		return true, nil
	}
	msg := strings.TrimSpace(string(out))
	if len(msg) > 1000 {
		msg = msg[len(msg)-1000:]
	}
	return false, fmt.Errorf("dism /enable-feature /featurename:%s: %w: %s", wicd.FeatureContainers, err, msg)
}

// systemTimeOfDayInformation is SYSTEM_TIMEOFDAY_INFORMATION, what
// NtQuerySystemInformation(SystemTimeOfDayInformation) fills in; times in
// 100 ns since 1601-01-01 UTC.
type systemTimeOfDayInformation struct {
	BootTime      int64
	CurrentTime   int64
	TimeZoneBias  int64
	TimeZoneID    uint32
	Reserved      uint32
	BootTimeBias  uint64
	SleepTimeBias uint64
}

// BootTime is when the current boot began, as the kernel keeps it
// (NtQuerySystemInformation(SystemTimeOfDayInformation), where
// Win32_OperatingSystem's LastBootUpTime comes from).
func (system) BootTime() (time.Time, error) {
	var info systemTimeOfDayInformation
	var n uint32
	if err := windows.NtQuerySystemInformation(windows.SystemTimeOfDayInformation, unsafe.Pointer(&info), uint32(unsafe.Sizeof(info)), &n); err != nil {
		return time.Time{}, fmt.Errorf("NtQuerySystemInformation(SystemTimeOfDayInformation): %w", err)
	}
	ft := windows.Filetime{LowDateTime: uint32(info.BootTime), HighDateTime: uint32(uint64(info.BootTime) >> 32)}
	return time.Unix(0, ft.Nanoseconds()).UTC(), nil
}
