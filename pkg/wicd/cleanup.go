package wicd

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// CleanupOptions tune Cleanup.
type CleanupOptions struct {
	// FileWait bounds the wait, over the whole cleanup, for processes that
	// still hold files after their services stopped; zero means
	// wicdapi.DefaultStepTimeout.
	FileWait time.Duration
	// Progress receives a line whenever cleanup waits for a file; nil
	// discards.
	Progress io.Writer
}

// Cleanup undoes the last applied plan (or, when none was applied, the
// uploaded plan): it stops and deletes the plan's services, dependents
// first, and those of plans it replaced that an apply cut short left
// (wicdapi.ApplyLeftoversPath); removes their firewall rules, the trusted
// root certificates the agent imported, its files and directories, every
// payload version, and everything under the install root except the agent
// binary itself, which the caller removes once the agent has exited, and
// the plans; then its HNS networks, because removing them can reset the
// connection the caller runs cleanup over (CleanupResult.Reconnect); and
// last the plans, which name the networks: a cleanup cut short at the
// networks (a deletion that fails, a reset that ends this process) finds
// them again when run again.
//
// A stopped service's process, or a process no service owns (a pod's
// container that survived the drain), may still hold a file: cleanup waits
// for it, up to FileWait, and then fails with CodeFileInUse naming the file
// and its holders. Cleanup is idempotent; run again, it finishes the job.
func Cleanup(ctx context.Context, b *Backend, o CleanupOptions) (*wicdapi.CleanupResult, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.FileWait <= 0 {
		o.FileWait = wicdapi.DefaultStepTimeout
	}
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "wait for the host lock: %v", err)
	}
	defer unlock()

	plan, err := appliedPlan(b.Files)
	if err != nil {
		return nil, err
	}
	if plan == nil {
		if plan, err = readPlan(b.Files, wicdapi.PlanPath); err != nil {
			var we *wicdapi.Error
			if !errors.As(err, &we) || we.Code != wicdapi.CodeNotFound {
				return nil, err
			}
			plan = &wicdapi.Plan{}
		}
	}
	res := &wicdapi.CleanupResult{Changes: []wicdapi.Change{}}
	note := func(kind, name string) {
		res.Changes = append(res.Changes, wicdapi.Change{Kind: kind, Name: name, Action: "removed"})
	}

	// With what an apply cut short had yet to remove of the plans it
	// replaced.
	left, err := readLeftovers(b.Files)
	if err != nil {
		return nil, err
	}
	left.add(plan)
	changes, err := removeServices(ctx, b, left.Services, plan.StepTimeout())
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, changes...)

	for _, r := range left.FirewallRules {
		if _, err := b.Firewall.Rule(ctx, r.Name); errors.Is(err, ErrNotFound) {
			continue
		}
		err := stepDo(ctx, plan.StepTimeout(), func(ctx context.Context) error { return b.Firewall.Delete(ctx, r.Name) })
		if err != nil {
			return nil, codedError(wicdapi.CodeNetwork, "delete firewall rule %s: %v", r.Name, err)
		}
		note("firewallRule", r.Name)
	}

	// Before the files: the record of what the agent imported is one.
	changes, err = cleanupTrustedRoots(ctx, b)
	res.Changes = append(res.Changes, changes...)
	if err != nil {
		return nil, err
	}

	// One deadline for every file a process still holds: they are
	// usually held by the same few processes.
	wctx, cancel := context.WithTimeout(ctx, o.FileWait)
	defer cancel()
	remove := func(kind, p string) error {
		if _, err := b.Files.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		held, err := untilFree(wctx, b, p, o.Progress, func() error { return b.Files.RemoveAll(p) })
		if held != nil {
			res.Waited = append(res.Waited, *held)
		}
		var we *wicdapi.Error
		if errors.As(err, &we) {
			return we
		}
		if err != nil {
			return fsError("remove "+p, err)
		}
		note(kind, p)
		return nil
	}
	for _, f := range plan.Files {
		if err := remove("file", f.Path); err != nil {
			return nil, err
		}
	}
	if err := remove("directory", wicdapi.PayloadRoot); err != nil {
		return nil, err
	}
	for _, d := range slices.Backward(plan.Directories) {
		if underDir(wicdapi.AgentPath, d) {
			continue // the install root and its parents hold the running agent
		}
		if err := remove("directory", d); err != nil {
			return nil, err
		}
	}
	entries, err := b.Files.ReadDir(wicdapi.InstallRoot)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fsError("list "+wicdapi.InstallRoot, err)
	}
	plans := []string{wicdapi.AppliedPlanPath, wicdapi.PlanPath}
	for _, e := range entries {
		p := wicdapi.InstallRoot + `\` + e.Name()
		if samePath(p, wicdapi.AgentPath) || samePath(p, b.Executable) ||
			slices.ContainsFunc(plans, func(f string) bool { return samePath(p, f) }) {
			continue
		}
		kind := "file"
		if e.IsDir() {
			kind = "directory"
		}
		if err := remove(kind, p); err != nil {
			return nil, err
		}
	}

	if len(plan.Networks) > 0 {
		existing, err := b.Network.ListNetworks()
		if err != nil {
			return nil, codedError(wicdapi.CodeNetwork, "list HNS networks: %v", err)
		}
		for _, n := range plan.Networks {
			if !slices.Contains(existing, n) {
				continue
			}
			// From the first deletion on, the caller's connection may
			// drop: say so even if a later one fails.
			res.Reconnect = true
			err := stepDo(ctx, plan.StepTimeout(), func(context.Context) error { return b.Network.DeleteNetwork(n) })
			if err != nil {
				return nil, codedError(wicdapi.CodeNetwork, "delete HNS network %s: %v", n, err)
			}
			note("network", n)
		}
	}
	for _, p := range plans {
		if err := remove("file", p); err != nil {
			return nil, err
		}
	}
	return res, nil
}
