/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package wicd

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// validateLogRetention accepts only logs directly in a folder of their
// own under wicdapi.ServiceLogRoot: the agent removes files beside them.
func validateLogRetention(r *wicdapi.LogRetention) error {
	if r == nil {
		return nil
	}
	if r.MaxFiles < 1 || r.MaxAgeDays < 1 {
		return fmt.Errorf("log retention: maxFiles %d and maxAgeDays %d must be at least 1", r.MaxFiles, r.MaxAgeDays)
	}
	for _, l := range r.Logs {
		rel, ok := strings.CutPrefix(foldPath(l), foldPath(wicdapi.ServiceLogRoot)+`\`)
		if !isAbsWindowsPath(l) || !ok || strings.Count(rel, `\`) != 1 || strings.HasSuffix(rel, `\`) || strings.HasPrefix(rel, `\`) {
			return fmt.Errorf("log retention: %q is not a file in a folder of %s", l, wicdapi.ServiceLogRoot)
		}
	}
	if len(r.CopyTruncate) > 0 && r.MaxFileSizeMiB < 1 {
		return fmt.Errorf("log retention: maxFileSizeMiB %d must be at least 1 to rotate %v", r.MaxFileSizeMiB, r.CopyTruncate)
	}
	for _, l := range r.CopyTruncate {
		switch {
		case !slices.ContainsFunc(r.Logs, func(x string) bool { return samePath(x, l) }):
			return fmt.Errorf("log retention: %q to copy and truncate is not among the logs", l)
		case samePath(l, wicdapi.AgentLogPath):
			return fmt.Errorf("log retention: the agent rotates its own log %q", l)
		}
	}
	return nil
}

// rotatedLog is a log rotateLogs copied and emptied.
type rotatedLog struct {
	From, To string
	Bytes    int64
}

// rotateLogs rotates each of r.CopyTruncate that has reached
// r.MaxFileSizeMiB (see wicdapi.LogRetention): it copies the log to
// wicdapi.RotatedLogName and empties it (Files.CopyAndEmpty). A missing
// log is skipped; a log that cannot be copied (a full disk) or emptied
// (a process holds it without sharing writes) is left as it is, with no
// copy beside it. It returns what it rotated and the errors, having gone
// on with the other logs.
func rotateLogs(files Files, r *wicdapi.LogRetention, now time.Time) ([]rotatedLog, error) {
	if r == nil || r.MaxFileSizeMiB < 1 {
		return nil, nil
	}
	limit := int64(r.MaxFileSizeMiB) << 20
	var out []rotatedLog
	var errs []error
	for _, current := range r.CopyTruncate {
		info, err := files.Stat(current)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("stat %s: %w", current, err))
			continue
		case info.Size() < limit:
			continue
		}
		to := wicdapi.RotatedLogName(current, now)
		n, err := files.CopyAndEmpty(current, to)
		if err != nil {
			errs = append(errs, fmt.Errorf("copy and empty %s to %s: %w", current, to, err))
			continue
		}
		out = append(out, rotatedLog{From: current, To: to, Bytes: n})
	}
	return out, errors.Join(errs...)
}

// prunedLog is a file pruneLogs removed, and why.
type prunedLog struct {
	Path   string
	Reason string
}

// pruneLogs removes what r says from the log folders (see
// wicdapi.LogRetention): never a service's current log, a folder, or a
// file a process holds (left for the next pass). A missing folder is
// skipped. It returns what it removed and the first error other than a
// held file, having gone on with the other folders.
func pruneLogs(files Files, r *wicdapi.LogRetention, now time.Time) ([]prunedLog, error) {
	if r == nil {
		return nil, nil
	}
	var removed []prunedLog
	var errs []error
	maxAge := time.Duration(r.MaxAgeDays) * 24 * time.Hour
	for _, current := range r.Logs {
		dir := current[:strings.LastIndex(current, `\`)]
		entries, err := files.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", dir, err))
			continue
		}
		type rotated struct {
			path string
			mod  time.Time
		}
		var list []rotated
		for _, e := range entries {
			path := dir + `\` + e.Name()
			if e.IsDir() || strings.EqualFold(path, current) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // gone meanwhile
			}
			list = append(list, rotated{path: path, mod: info.ModTime()})
		}
		// Newest first; equal times by name, newest name (a later
		// timestamp in it) first.
		slices.SortFunc(list, func(a, b rotated) int {
			if c := b.mod.Compare(a.mod); c != 0 {
				return c
			}
			return strings.Compare(b.path, a.path)
		})
		for i, f := range list {
			var why string
			switch {
			case now.Sub(f.mod) > maxAge:
				why = fmt.Sprintf("older than %d days", r.MaxAgeDays)
			case i >= r.MaxFiles:
				why = fmt.Sprintf("beyond the %d newest rotated files", r.MaxFiles)
			default:
				continue
			}
			if err := files.Remove(f.path); err != nil {
				if !errors.Is(err, ErrFileInUse) && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("remove %s: %w", f.path, err))
				}
				continue
			}
			removed = append(removed, prunedLog{Path: f.path, Reason: why})
		}
	}
	return removed, errors.Join(errs...)
}
