//go:build windows

package windows

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc/mgr"
)

// defenderExclusionsKey lists Defender's excluded paths as value names.
const defenderExclusionsKey = `SOFTWARE\Microsoft\Windows Defender\Exclusions\Paths`

// defender is wicd.Defender: Defender is present when its service
// (WinDefend) is installed; exclusions are read from the registry and
// added with Add-MpPreference.
type defender struct{}

func (defender) Present(context.Context) (bool, error) {
	m, err := mgr.Connect()
	if err != nil {
		return false, fmt.Errorf("connect to the service manager: %w", err)
	}
	defer func() { _ = m.Disconnect() }()
	s, err := m.OpenService("WinDefend")
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open service WinDefend: %w", err)
	}
	_ = s.Close()
	return true, nil
}

func (defender) Exclusions(context.Context) ([]string, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, defenderExclusionsKey, registry.QUERY_VALUE)
	if errors.Is(err, registry.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open HKLM\\%s: %w", defenderExclusionsKey, err)
	}
	defer func() { _ = k.Close() }()
	names, err := k.ReadValueNames(-1)
	if err != nil {
		return nil, fmt.Errorf("read HKLM\\%s: %w", defenderExclusionsKey, err)
	}
	return names, nil
}

// AddExclusion runs Add-MpPreference through powershell.exe. The path was
// validated by the plan (absolute, no quotes) and is single-quoted, so it
// is one literal argument of a fixed script.
func (defender) AddExclusion(ctx context.Context, path string) error {
	if strings.ContainsAny(path, "'\"`\r\n") {
		return fmt.Errorf("exclusion %q for Defender has quotes or line breaks", path)
	}
	ps, err := systemProgram(`WindowsPowerShell\v1.0\powershell.exe`)
	if err != nil {
		return err
	}
	_, err = execer{}.Run(ctx, []string{ps, "-NoProfile", "-NonInteractive", "-Command",
		"Add-MpPreference -ErrorAction Stop -ExclusionPath '" + path + "'"})
	if err != nil {
		return fmt.Errorf("Add-MpPreference -ExclusionPath %s: %w", path, err)
	}
	return nil
}
