package machinesim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openwmco/wmco/test/winsim"
)

// EventKind names what happened in the cloud.
type EventKind string

// What the Cloud records.
const (
	// EventMachineCreated: the MachineSet controller created a Machine.
	EventMachineCreated EventKind = "MachineCreated"
	// EventMachineDeleted: the MachineSet controller deleted a Machine to
	// scale down.
	EventMachineDeleted EventKind = "MachineDeleted"
	// EventUserDataMissing: the Machine's userData Secret (or its key
	// userData) is missing; the Machine stays Provisioning.
	EventUserDataMissing EventKind = "UserDataMissing"
	// EventHostBooted: the Machine's VM is up; Detail names its address,
	// computer name and what the first-boot script did.
	EventHostBooted EventKind = "HostBooted"
	// EventNoUsableKey: the first-boot script failed or authorised no
	// key, so nobody can log in over SSH.
	EventNoUsableKey EventKind = "NoUsableKey"
	// EventInstanceLost: a Machine has a providerID but no VM (the Cloud
	// was restarted): it is Failed, as the Machine API marks a Machine
	// whose instance is gone.
	EventInstanceLost EventKind = "InstanceLost"
	// EventDeletionStarted: the Machine is being deleted.
	EventDeletionStarted EventKind = "DeletionStarted"
	// EventHeldByHooks: lifecycle hooks hold the deletion; Detail is
	// "preDrain: <hooks>" or "preTerminate: <hooks>".
	EventHeldByHooks EventKind = "HeldByHooks"
	// EventHooksCleared: the hooks that held the deletion are gone;
	// Detail is "preDrain" or "preTerminate".
	EventHooksCleared EventKind = "HooksCleared"
	// EventNodeDrained: the Machine's Node is cordoned and has no pod
	// left to evict.
	EventNodeDrained EventKind = "NodeDrained"
	// EventHostSnapshot: the VM's services and files were recorded
	// (Cloud.Snapshot) just before it was destroyed.
	EventHostSnapshot EventKind = "HostSnapshot"
	// EventHostDestroyed: the VM is gone.
	EventHostDestroyed EventKind = "HostDestroyed"
	// EventNodeDeletedByCloud: the Node still existed after the VM was
	// destroyed and the Cloud deleted it.
	EventNodeDeletedByCloud EventKind = "NodeDeletedByCloud"
	// EventNodeAlreadyGone: no Node was left to delete after the VM was
	// destroyed.
	EventNodeAlreadyGone EventKind = "NodeAlreadyGone"
	// EventMachineReleased: the finalizer is removed; the Machine goes.
	EventMachineReleased EventKind = "MachineReleased"
	// EventNodeInitialized: the cloud controller manager initialised the
	// Node (providerID set, uninitialized taint removed).
	EventNodeInitialized EventKind = "NodeInitialized"
	// EventNodeNotInitialized: the cloud controller manager cannot find
	// the Node's VM; Detail says why. Recorded once per Node and reason.
	EventNodeNotInitialized EventKind = "NodeNotInitialized"
	// EventNodeLinked: the Machine's status.nodeRef names the Node.
	EventNodeLinked EventKind = "NodeLinked"
)

// Event is one thing that happened in the cloud.
type Event struct {
	Time time.Time
	// Machine is the Machine's name ("" for a Node no Machine is known
	// for).
	Machine string
	Kind    EventKind
	Detail  string
}

// String formats the event for test logs.
func (e Event) String() string {
	return fmt.Sprintf("%s %s %s %s", e.Time.Format("15:04:05.000"), e.Machine, e.Kind, e.Detail)
}

// Events returns what happened so far, in order.
func (c *Cloud) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

// EventsOf returns the events of one Machine, in order.
func (c *Cloud) EventsOf(machine string) []Event {
	var out []Event
	for _, e := range c.Events() {
		if e.Machine == machine {
			out = append(out, e)
		}
	}
	return out
}

// record appends an event.
func (c *Cloud) record(machine string, kind EventKind, format string, args ...any) {
	e := Event{Time: time.Now(), Machine: machine, Kind: kind, Detail: fmt.Sprintf(format, args...)}
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	c.log.Info("Cloud event", "machine", machine, "kind", string(kind), "detail", e.Detail)
}

// recordOnce appends an event unless one was recorded under key before;
// it reports whether it did.
func (c *Cloud) recordOnce(key, machine string, kind EventKind, format string, args ...any) bool {
	c.mu.Lock()
	if c.seen[key] {
		c.mu.Unlock()
		return false
	}
	c.seen[key] = true
	c.mu.Unlock()
	c.record(machine, kind, format, args...)
	return true
}

// seenOnce reports whether key was recorded by recordOnce.
func (c *Cloud) seenOnce(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[key]
}

// HostSnapshot is a VM's state just before the cloud destroyed it.
type HostSnapshot struct {
	Time     time.Time
	Hostname string
	// Services are the installed Windows services, sorted by name.
	Services []ServiceState
	// Files are the files under C:\k and C:\var, sorted.
	Files []string
	// Added are the files on the whole disk that were not there right
	// after first boot, sorted: what anyone put on the host since.
	Added []string
	// Networks are the HNS networks.
	Networks []string
	// FirewallRules are the names of the firewall rules.
	FirewallRules []string
}

// ServiceState is one Windows service.
type ServiceState struct {
	Name    string
	Running bool
}

// Snapshot returns the state the Machine's VM was in just before it was
// destroyed; false when it was not (yet).
func (c *Cloud) Snapshot(machine string) (HostSnapshot, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.snapshots[machine]
	return s, ok
}

// snapshotRoots are the folders whose files HostSnapshot.Files lists.
var snapshotRoots = []string{`C:\k`, `C:\var`}

// takeSnapshot records the VM's state.
func (v *vm) takeSnapshot(ctx context.Context) HostSnapshot {
	s := HostSnapshot{Time: time.Now(), Hostname: v.node.Host.Facts().Hostname, Networks: v.node.Networks()}
	names, _ := v.node.Services.List(ctx)
	for _, n := range names {
		s.Services = append(s.Services, ServiceState{Name: n, Running: v.node.Services.Running(n)})
	}
	for _, r := range v.node.FirewallRules() {
		s.FirewallRules = append(s.FirewallRules, r.Name)
	}
	all := diskFiles(v.node.Host.Disk(), `C:\`)
	for _, f := range all {
		for _, root := range snapshotRoots {
			if strings.HasPrefix(strings.ToLower(f), strings.ToLower(root)+`\`) {
				s.Files = append(s.Files, f)
			}
		}
		if !v.baseline[strings.ToLower(f)] {
			s.Added = append(s.Added, f)
		}
	}
	return s
}

// diskFiles lists every file (not folder) under root, sorted.
func diskFiles(d *winsim.Disk, root string) []string {
	var out []string
	var walk func(dir string)
	walk = func(dir string) {
		infos, err := d.List(dir)
		if err != nil {
			return
		}
		for _, fi := range infos {
			p := strings.TrimSuffix(dir, `\`) + `\` + fi.Name()
			if fi.IsDir() {
				walk(p)
				continue
			}
			out = append(out, p)
		}
	}
	walk(root)
	slices.Sort(out)
	return out
}

// Leftovers lists what the operator installs that the snapshot still
// shows: services, HNS networks, and files under C:\k and
// C:\var\lib\kubelet. A host cleaned before its VM went has none.
func (s HostSnapshot) Leftovers() []string {
	var out []string
	for _, svc := range s.Services {
		out = append(out, "service "+svc.Name)
	}
	for _, n := range s.Networks {
		out = append(out, "HNS network "+n)
	}
	for _, f := range s.Files {
		l := strings.ToLower(f)
		if strings.HasPrefix(l, `c:\k\`) || strings.HasPrefix(l, `c:\var\lib\kubelet\`) {
			out = append(out, "file "+f)
		}
	}
	return out
}
