//go:build windows

package windows

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// tcpipParametersKey holds the DNS host name in effect ("Hostname") and
// the one for the next boot ("NV Hostname"); SetComputerNameEx with
// ComputerNamePhysicalDnsHostname writes the latter.
const tcpipParametersKey = `SYSTEM\CurrentControlSet\Services\Tcpip\Parameters`

// procSetComputerNameExW is kernel32's SetComputerNameExW, which
// golang.org/x/sys/windows does not wrap.
var procSetComputerNameExW = windows.NewLazySystemDLL("kernel32.dll").NewProc("SetComputerNameExW")

// SetHostname sets the DNS host name, from which Windows also derives
// the NetBIOS computer name (its first 15 characters, upper case), with
// SetComputerNameExW(ComputerNamePhysicalDnsHostname). Both take effect
// at the next boot. The caller must be an administrator.
func (system) SetHostname(name string) error {
	p, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return fmt.Errorf("computer name %q: %w", name, err)
	}
	if err := procSetComputerNameExW.Find(); err != nil {
		return fmt.Errorf("SetComputerNameExW: %w", err)
	}
	r, _, callErr := procSetComputerNameExW.Call(uintptr(windows.ComputerNamePhysicalDnsHostname), uintptr(unsafe.Pointer(p)))
	if r == 0 {
		return fmt.Errorf("SetComputerNameExW(ComputerNamePhysicalDnsHostname, %q): %w", name, callErr)
	}
	return nil
}

// PendingHostname is the "NV Hostname" of the TCP/IP parameters when it
// differs (case-insensitively) from their "Hostname", the name in effect;
// "" when they agree or no name was ever set for the next boot.
func (system) PendingHostname() (string, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, tcpipParametersKey, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("open registry key HKLM\\%s: %w", tcpipParametersKey, err)
	}
	defer func() { _ = k.Close() }()
	next, _, err := k.GetStringValue("NV Hostname")
	if errors.Is(err, registry.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read HKLM\\%s NV Hostname: %w", tcpipParametersKey, err)
	}
	cur, _, err := k.GetStringValue("Hostname")
	if errors.Is(err, registry.ErrNotExist) {
		// No name in effect recorded there: compare with the one the
		// host reports.
		cur, err = system{}.Hostname()
	}
	if err != nil {
		return "", fmt.Errorf("read HKLM\\%s Hostname: %w", tcpipParametersKey, err)
	}
	if next == "" || strings.EqualFold(next, cur) {
		return "", nil
	}
	return next, nil
}
