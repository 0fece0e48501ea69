//go:build windows

// Package windows is the agent's backend for a real Windows Server host: the
// service control manager (golang.org/x/sys/windows/svc/mgr and the
// registry), the file system, DISM for Windows features, the Host Network
// Service (github.com/Microsoft/hcsshim/hcn) and a named mutex that
// serialises agents on the host. The agent runs as an administrator (over
// SSH) or as LocalSystem (the `wicd run` service).
package windows

import "github.com/openwmco/wmco/pkg/wicd"

// New returns a Backend for the Windows host the process runs on. Version,
// OS and Arch are left for the caller to fill in. Nothing is opened here:
// each call connects to the service manager, registry or HNS on its own, so
// commands that need no privileges (`wicd version`) work for any user.
func New() (*wicd.Backend, error) {
	return &wicd.Backend{
		Services:     services{},
		Files:        files{},
		System:       system{},
		Network:      network{},
		Locker:       locker{},
		Exec:         execer{},
		Firewall:     firewall{},
		Defender:     defender{},
		Accounts:     accounts{},
		Certificates: certStore{},
	}, nil
}
