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

// PendingHostname is the DNS host name configured for the next boot, the
// TCP/IP parameters' "NV Hostname" that SetComputerNameEx writes, when it
// differs (case-insensitively) from the one in effect (GetComputerNameEx,
// which keeps the name the host booted with); "" otherwise. (Wine 8 keeps
// no name for the next boot: it writes "Hostname" alone and its name in
// effect is the Linux host's.)
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
	if errors.Is(err, registry.ErrNotExist) || (err == nil && next == "") {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read HKLM\\%s NV Hostname: %w", tcpipParametersKey, err)
	}
	cur, err := system{}.Hostname()
	if err != nil {
		return "", fmt.Errorf("read the computer name in effect: %w", err)
	}
	if strings.EqualFold(next, cur) {
		return "", nil
	}
	return next, nil
}
