/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package memlimit gives the operator's Go runtime a soft memory limit
// (runtime/debug.SetMemoryLimit). Without one the heap may grow to twice
// what is live before the garbage collector runs, and a burst of garbage
// (payload uploads to many hosts at once) raises the resident set by as
// much; near the limit the collector runs sooner instead. The limit is
// soft: a live heap above it is never refused, the collector then only
// runs more often (the runtime caps that at half the CPU).
package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Where a limit came from.
const (
	SourceFlag   = "flag"
	SourceEnv    = "GOMEMLIMIT"
	SourceCgroup = "cgroup"
	SourceNone   = "none"
	// Of the collector's target (ApplyGCPercent).
	SourceGOGC    = "GOGC"
	SourceDefault = "default"
)

// CgroupPercent of the container's memory limit is the default soft
// limit: the rest is for what the Go runtime does not count, chiefly
// the binary's mapped pages.
const CgroupPercent = 75

// Decide returns the soft limit in bytes (0: none) and its source: flag
// when set (a quantity such as 96Mi; 0 for none), else GOMEMLIMIT when
// env is set (limit 0: the runtime has applied it already), else
// CgroupPercent of cgroupLimit when positive, else none.
func Decide(flag, env string, cgroupLimit int64) (int64, string, error) {
	if flag = strings.TrimSpace(flag); flag != "" {
		q, err := resource.ParseQuantity(flag)
		if err != nil {
			return 0, "", fmt.Errorf("%q is not a quantity of bytes such as 96Mi: %w", flag, err)
		}
		n, ok := q.AsInt64()
		if !ok || n < 0 {
			return 0, "", fmt.Errorf("%q is not a number of bytes from 0 up", flag)
		}
		return n, SourceFlag, nil
	}
	if env != "" {
		return 0, SourceEnv, nil // the runtime has parsed and applied it
	}
	if cgroupLimit > 0 {
		return int64(float64(cgroupLimit) * CgroupPercent / 100), SourceCgroup, nil
	}
	return 0, SourceNone, nil
}

// Apply decides the limit from flag, $GOMEMLIMIT and the process's cgroup
// and sets it; it returns the limit (0: none) and its source.
func Apply(flag string) (int64, string, error) {
	cg, err := CgroupLimit("/proc/self/cgroup", "/sys/fs/cgroup")
	if err != nil {
		cg = 0 // an unreadable cgroup is no limit
	}
	limit, source, err := Decide(flag, os.Getenv("GOMEMLIMIT"), cg)
	if err != nil {
		return 0, "", err
	}
	switch {
	case source == SourceEnv:
		limit = debug.SetMemoryLimit(-1) // reads it
	case limit == 0:
		debug.SetMemoryLimit(math.MaxInt64)
	default:
		debug.SetMemoryLimit(limit)
	}
	return limit, source, nil
}

// CgroupLimit is the memory limit of the cgroup the process runs in (0:
// none): cgroup v2's memory.max, else v1's memory.limit_in_bytes, found
// through the process's cgroup file (/proc/self/cgroup) under the cgroup
// mount root; in a container with its own cgroup namespace the files are
// at the root itself.
func CgroupLimit(procCgroup, root string) (int64, error) {
	data, err := os.ReadFile(procCgroup)
	if err != nil {
		return 0, err
	}
	v2, v1 := cgroupPaths(data)
	var candidates []string
	if v2 != "" {
		candidates = append(candidates, filepath.Join(root, v2, "memory.max"), filepath.Join(root, "memory.max"))
	}
	if v1 != "" {
		candidates = append(candidates, filepath.Join(root, "memory", v1, "memory.limit_in_bytes"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
	}
	for _, c := range candidates {
		b, err := os.ReadFile(c)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return ParseLimit(string(b))
	}
	return 0, nil
}

// cgroupPaths returns the process's cgroup v2 path (the "0::" line) and
// its v1 memory controller's path.
func cgroupPaths(data []byte) (v2, v1 string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		controllers, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		path = filepath.Clean("/" + path)
		switch {
		case id == "0" && controllers == "":
			v2 = path
		case containsField(controllers, "memory"):
			v1 = path
		}
	}
	return v2, v1
}

func containsField(list, want string) bool {
	for f := range strings.SplitSeq(list, ",") {
		if f == want {
			return true
		}
	}
	return false
}

// unlimitedV1 is the smallest value cgroup v1 reports for no limit
// (the page-aligned largest int64; anything from 2^62 up is taken as
// none).
const unlimitedV1 = int64(1) << 62

// ParseLimit reads a memory.max or memory.limit_in_bytes file: a number of
// bytes, or "max" (v2) or a value from 2^62 up (v1) for none (0).
func ParseLimit(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		u, uerr := strconv.ParseUint(s, 10, 64)
		if uerr == nil && u >= uint64(unlimitedV1) {
			return 0, nil
		}
		return 0, fmt.Errorf("memory limit %q: %w", s, err)
	}
	if n < 0 || n >= unlimitedV1 {
		return 0, nil
	}
	return n, nil
}

// DefaultGCPercent is the garbage collector's target (GOGC) when the
// environment sets none: the heap may grow by half what is live before a
// collection, not by all of it (Go's default, 100). The operator's live
// heap is small (about 10 MiB with 500 Windows Nodes cached), so the
// collections this adds cost little CPU, and an idle operator keeps about
// 5 MiB less resident.
const DefaultGCPercent = 50

// ApplyGCPercent sets the collector's target to DefaultGCPercent unless
// env ($GOGC) is set, in which case the runtime has applied it already
// and it is left alone. It returns the target in effect (-1: off) and its
// source, SourceGOGC or SourceDefault.
func ApplyGCPercent(env string) (int, string) {
	if strings.TrimSpace(env) != "" {
		// SetGCPercent returns the previous target: read, then restore.
		percent := debug.SetGCPercent(100)
		debug.SetGCPercent(percent)
		return percent, SourceGOGC
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent, SourceDefault
}
