package wicd

import (
	"strconv"
	"strings"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// validHostname checks a computer name the operator asks for: a
// lower-case RFC 1123 label of at most wicdapi.MaxHostnameLength
// characters (Windows would accept more, but a Node name must be a label
// and the NetBIOS name is cut at 15).
func validHostname(name string) error {
	switch {
	case name == "":
		return codedError(wicdapi.CodeUsage, "--name is required")
	case len(name) > wicdapi.MaxHostnameLength:
		return codedError(wicdapi.CodeUsage, "computer name %s is longer than %d characters", strconv.Quote(name), wicdapi.MaxHostnameLength)
	case !rfc1123Label.MatchString(name):
		return codedError(wicdapi.CodeUsage, "computer name %s is not a lower-case RFC 1123 label (a-z, 0-9 and '-', starting and ending with a letter or digit)", strconv.Quote(name))
	}
	return nil
}

// hostnameAction is what set-hostname has to do, from the names in
// effect and pending; names compare case-insensitively, as Windows does.
type hostnameAction int

const (
	// hostnameInEffect: the name is in effect, nothing to do.
	hostnameInEffect hostnameAction = iota
	// hostnamePending: the name is already set for the next boot.
	hostnamePending
	// hostnameSet: the name must be set, then the host rebooted.
	hostnameSet
)

func decideHostname(want, active, pending string) hostnameAction {
	switch {
	case strings.EqualFold(want, active):
		return hostnameInEffect
	case strings.EqualFold(want, pending):
		return hostnamePending
	default:
		return hostnameSet
	}
}

// SetHostname makes name the host's computer name: nothing when it is in
// effect (and no other name is pending), else it is set (unless already
// pending) for the next boot and the result asks for a reboot. A pending
// name is one set earlier and not booted into yet; setting another name
// replaces it, and setting the name in effect cancels it.
func SetHostname(b *Backend, name string) (*wicdapi.SetHostnameResult, error) {
	if err := validHostname(name); err != nil {
		return nil, err
	}
	active, err := b.System.Hostname()
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read hostname: %v", err)
	}
	pending, err := b.System.PendingHostname()
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read the pending hostname: %v", err)
	}
	res := &wicdapi.SetHostnameResult{Hostname: active, Pending: pending}
	switch decideHostname(name, active, pending) {
	case hostnameInEffect:
		if pending == "" {
			return res, nil
		}
		// Another name is pending (someone renamed the host and did
		// not reboot): the next boot would rename the node's host
		// behind the operator's back. Setting the name in effect
		// cancels it, without a reboot.
	case hostnamePending:
		res.RebootRequired = true
		return res, nil
	}
	if err := b.System.SetHostname(name); err != nil {
		return nil, codedError(wicdapi.CodeInternal, "set the computer name to %s: %v", name, err)
	}
	res.Changed = true
	// Read back what Windows will use at the next boot, rather than
	// assume it.
	if res.Pending, err = b.System.PendingHostname(); err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read the pending hostname: %v", err)
	}
	next := res.Pending
	if next == "" {
		next = active
	}
	if !strings.EqualFold(next, name) {
		return nil, codedError(wicdapi.CodeInternal, "set the computer name to %s, but the name for the next boot is %s", name, strconv.Quote(next))
	}
	res.RebootRequired = res.Pending != ""
	return res, nil
}
