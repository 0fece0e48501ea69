package wicd

import (
	"context"
	"errors"
	"io/fs"
	"slices"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// Cleanup undoes the last applied plan (or, when none was applied, the
// uploaded plan): it stops and deletes the plan's services, dependents
// first, removes its HNS networks, files and directories, every payload
// version, and everything under the install root except the agent binary
// itself, which the caller removes once the agent has exited.
func Cleanup(ctx context.Context, b *Backend) (*wicdapi.CleanupResult, error) {
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

	changes, err := removeServices(ctx, b, plan.Services)
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, changes...)

	if len(plan.Networks) > 0 {
		existing, err := b.Network.ListNetworks()
		if err != nil {
			return nil, codedError(wicdapi.CodeNetwork, "list HNS networks: %v", err)
		}
		for _, n := range plan.Networks {
			if !slices.Contains(existing, n) {
				continue
			}
			if err := b.Network.DeleteNetwork(n); err != nil {
				return nil, codedError(wicdapi.CodeNetwork, "delete HNS network %s: %v", n, err)
			}
			note("network", n)
		}
	}

	remove := func(kind, p string) error {
		if _, err := b.Files.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := b.Files.RemoveAll(p); err != nil {
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
	for _, e := range entries {
		p := wicdapi.InstallRoot + `\` + e.Name()
		if samePath(p, wicdapi.AgentPath) {
			continue
		}
		if err := remove("file", p); err != nil {
			return nil, err
		}
	}
	return res, nil
}
