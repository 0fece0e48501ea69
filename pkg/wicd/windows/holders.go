//go:build windows

package windows

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The Restart Manager (rstrtmgr.dll) names the processes that hold files.
var (
	modrstrtmgr             = windows.NewLazySystemDLL("rstrtmgr.dll")
	procRmStartSession      = modrstrtmgr.NewProc("RmStartSession")
	procRmRegisterResources = modrstrtmgr.NewProc("RmRegisterResources")
	procRmGetList           = modrstrtmgr.NewProc("RmGetList")
	procRmEndSession        = modrstrtmgr.NewProc("RmEndSession")
)

const (
	rmSessionKeyLen = 32 // CCH_RM_SESSION_KEY
	rmMaxAppName    = 255
	rmMaxSvcName    = 63
	// maxHolderFiles bounds how many files of a directory are asked
	// about.
	maxHolderFiles = 2000
)

type rmUniqueProcess struct {
	ProcessID        uint32
	ProcessStartTime windows.Filetime
}

type rmProcessInfo struct {
	Process          rmUniqueProcess
	AppName          [rmMaxAppName + 1]uint16
	ServiceShortName [rmMaxSvcName + 1]uint16
	ApplicationType  uint32
	AppStatus        uint32
	TSSessionID      uint32
	Restartable      int32
}

// Holders names the processes holding path, or files under it, through
// the Restart Manager: "name (PID n)", with the service name for a
// service's process.
func (files) Holders(path string) ([]string, error) {
	var names []*uint16
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // best effort: ask about what can be listed
		}
		u, err := windows.UTF16PtrFromString(p)
		if err != nil {
			return nil
		}
		names = append(names, u)
		if len(names) >= maxHolderFiles {
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil || len(names) == 0 {
		return nil, err
	}
	if err := procRmStartSession.Find(); err != nil {
		return nil, fmt.Errorf("restart manager: %w", err)
	}
	var session uint32
	var key [rmSessionKeyLen + 1]uint16
	if r, _, _ := procRmStartSession.Call(uintptr(unsafe.Pointer(&session)), 0, uintptr(unsafe.Pointer(&key[0]))); r != 0 {
		return nil, fmt.Errorf("RmStartSession: %w", windows.Errno(r))
	}
	defer func() { _, _, _ = procRmEndSession.Call(uintptr(session)) }()
	if r, _, _ := procRmRegisterResources.Call(uintptr(session), uintptr(len(names)), uintptr(unsafe.Pointer(&names[0])), 0, 0, 0, 0); r != 0 {
		return nil, fmt.Errorf("RmRegisterResources: %w", windows.Errno(r))
	}
	infos := make([]rmProcessInfo, 8)
	for {
		var needed, n uint32 = 0, uint32(len(infos))
		var reasons uint32
		r, _, _ := procRmGetList.Call(uintptr(session), uintptr(unsafe.Pointer(&needed)), uintptr(unsafe.Pointer(&n)),
			uintptr(unsafe.Pointer(&infos[0])), uintptr(unsafe.Pointer(&reasons)))
		if errors.Is(windows.Errno(r), windows.ERROR_MORE_DATA) && needed > uint32(len(infos)) {
			infos = make([]rmProcessInfo, needed)
			continue
		}
		if r != 0 {
			return nil, fmt.Errorf("RmGetList: %w", windows.Errno(r))
		}
		out := make([]string, 0, n)
		for _, i := range infos[:n] {
			s := fmt.Sprintf("%s (PID %d)", windows.UTF16ToString(i.AppName[:]), i.Process.ProcessID)
			if svc := windows.UTF16ToString(i.ServiceShortName[:]); svc != "" {
				s = fmt.Sprintf("%s (PID %d, service %s)", windows.UTF16ToString(i.AppName[:]), i.Process.ProcessID, svc)
			}
			out = append(out, s)
		}
		return out, nil
	}
}
