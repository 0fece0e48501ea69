package wicd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

// FeatureContainers is the Windows feature a node needs.
const FeatureContainers = wicdapi.FeatureContainers

// DefaultMinFreeDiskBytes is the free space preflight asks for: the payload
// versions, container images and logs (10 GiB).
const DefaultMinFreeDiskBytes int64 = 10 << 30

// rfc1123Label is what a Node name derived from the hostname must be.
var rfc1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func gatherFacts(b *Backend) (*wicdapi.Facts, error) {
	f := &wicdapi.Facts{AgentVersion: b.Version, Time: b.System.Now().UTC().Format(time.RFC3339)}
	var err error
	if f.Hostname, err = b.System.Hostname(); err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read hostname: %v", err)
	}
	if f.PendingHostname, err = b.System.PendingHostname(); err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read the pending hostname: %v", err)
	}
	boot, err := b.System.BootTime()
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read the boot time: %v", err)
	}
	if !boot.IsZero() {
		f.BootTime = boot.UTC().Format(time.RFC3339Nano)
	}
	if f.OSBuild, err = b.System.OSBuild(); err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read OS build: %v", err)
	}
	if f.Addresses, err = b.System.Addresses(); err != nil {
		return nil, codedError(wicdapi.CodeNetwork, "read addresses: %v", err)
	}
	if f.FreeDiskBytes, err = b.Files.FreeBytes(`C:\`); err != nil {
		return nil, codedError(wicdapi.CodeFileSystem, "read free disk space: %v", err)
	}
	if f.Features, err = b.System.Features([]string{FeatureContainers}); err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read features: %v", err)
	}
	f.Files, f.FileErrors = hashInstallRoot(b.Files)
	fail := func(p string, err error) {
		if f.FileErrors == nil {
			f.FileErrors = map[string]string{}
		}
		f.FileErrors[p] = err.Error()
	}
	if p, err := appliedPlan(b.Files); err != nil {
		fail(wicdapi.AppliedPlanPath, err)
	} else if p != nil {
		f.AppliedPayloadVersion = p.PayloadVersion
	}
	if p, err := previousPlan(b.Files); err != nil {
		fail(wicdapi.AppliedPlanPreviousPath, err)
	} else if p != nil {
		f.PreviousPayloadVersion = p.PayloadVersion
	}
	if f.ApplyError, err = lastApplyError(b.Files); err != nil {
		fail(wicdapi.ApplyErrorPath, err)
	}
	if f.PayloadVersions, err = payloadVersions(b.Files); err != nil {
		fail(wicdapi.PayloadRoot, err)
	}
	return f, nil
}

// hashCachePath keeps the hashes facts computed, by path, with the size and
// modification time they were computed for.
const hashCachePath = wicdapi.InstallRoot + `\.wicd-hashes.json`

type hashCacheEntry struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"modTime"` // Unix nanoseconds
	SHA256  string `json:"sha256"`
}

// hashInstallRoot hashes every file under the install root except the
// logs, reading only files whose size or modification time changed since
// the last time. A file that cannot be read is reported, not fatal.
func hashInstallRoot(files Files) (map[string]string, map[string]string) {
	sums := map[string]string{}
	var errs map[string]string
	fail := func(p string, err error) {
		if errs == nil {
			errs = map[string]string{}
		}
		errs[p] = err.Error()
	}
	cache := loadHashCache(files)
	next := map[string]hashCacheEntry{}
	err := files.Walk(wicdapi.InstallRoot, func(path string, info fs.FileInfo) error {
		if underDir(path, wicdapi.LogDir) || samePath(path, hashCachePath) {
			return nil
		}
		key := foldPath(path)
		e, ok := cache[key]
		if !ok {
			e, ok = renamed(files, cache, info)
		}
		if !ok || e.Size != info.Size() || e.ModTime != info.ModTime().UnixNano() {
			sum, err := sha256File(files, path)
			if err != nil {
				fail(path, err)
				return nil
			}
			e = hashCacheEntry{Size: info.Size(), ModTime: info.ModTime().UnixNano(), SHA256: sum}
		}
		next[key] = e
		sums[path] = e.SHA256
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fail(wicdapi.InstallRoot, err)
	}
	if !maps.Equal(cache, next) && len(next) > 0 {
		if data, err := json.Marshal(next); err == nil {
			// Only a cache: facts stay right without it.
			_ = files.WriteFile(hashCachePath, data)
		}
	}
	return sums, errs
}

// renamed finds the cache entry of a file that was hashed under another
// path and renamed since (a rename keeps the size and modification time,
// on NTFS as in the simulated disk): an upload is hashed under its
// temporary name (`wicd hash`, which records it) and then renamed into
// place, and facts need not read it again. The entry must have the same
// size and modification time, to the 100 ns NTFS keeps, and its path
// must no longer exist.
func renamed(files Files, cache map[string]hashCacheEntry, info fs.FileInfo) (hashCacheEntry, bool) {
	for p, e := range cache {
		if e.Size != info.Size() || e.ModTime != info.ModTime().UnixNano() {
			continue
		}
		if _, err := files.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return e, true
		}
	}
	return hashCacheEntry{}, false
}

// hashRecordWait bounds how long `wicd hash` waits for the host lock to
// record its result in the hash cache; the cache is only a cache.
const hashRecordWait = 2 * time.Second

// hashRecordMinSize is the least size of a file `wicd hash` records in
// the hash cache. Hashing a smaller file again costs less than waiting
// for the host lock, which `wicd run` holds while it re-applies the plan:
// the plan and staging files the operator uploads, a few KiB each, are
// verified without that wait.
const hashRecordMinSize = 1 << 20

// hashAndRemember is `wicd hash`: the file's SHA-256, also recorded in
// the hash cache (under the host lock, as other commands of the agent
// may write it) when the file did not change while it was read, so that
// facts do not read an uploaded file again once it is renamed into place
// (renamed). Files under hashRecordMinSize are not recorded.
func hashAndRemember(ctx context.Context, b *Backend, path string) (*wicdapi.HashResult, error) {
	before, err := b.Files.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, codedError(wicdapi.CodeNotFound, "%s does not exist", path)
		}
		return nil, codedError(wicdapi.CodeFileSystem, "stat %s: %v", path, err)
	}
	res, err := hashFile(b.Files, path)
	if err != nil {
		return nil, err
	}
	after, err := b.Files.Stat(path)
	if err != nil || !underDir(path, wicdapi.InstallRoot) || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || after.Size() != res.Size {
		return res, nil
	}
	if after.Size() < hashRecordMinSize {
		return res, nil
	}
	lctx, cancel := context.WithTimeout(ctx, hashRecordWait)
	defer cancel()
	unlock, err := b.Locker.Lock(lctx)
	if err != nil {
		return res, nil
	}
	defer unlock()
	rememberHashes(b.Files, map[string]hashCacheEntry{path: {Size: after.Size(), ModTime: after.ModTime().UnixNano(), SHA256: res.SHA256}})
	return res, nil
}

// hashOfWritten is the hash cache entry of a file the agent has just
// written (or verified) and whose SHA-256 it knows from the bytes it
// wrote: path's current size and modification time with sum, so that
// facts need not read the file again, and a later change of it (a new
// modification time or size) is still noticed. ok is false when the file
// cannot be looked at or its size is not want.
func hashOfWritten(files Files, path string, want int64, sum string) (hashCacheEntry, bool) {
	info, err := files.Stat(path)
	if err != nil || info.IsDir() || info.Size() != want {
		return hashCacheEntry{}, false
	}
	return hashCacheEntry{Size: info.Size(), ModTime: info.ModTime().UnixNano(), SHA256: sum}, true
}

// rememberHashes adds entries (by path) to the hash cache. The caller
// holds the host lock, as other commands of the agent may write the
// cache; a cache that cannot be written is only a cache.
func rememberHashes(files Files, entries map[string]hashCacheEntry) {
	if len(entries) == 0 {
		return
	}
	cache := loadHashCache(files)
	for p, e := range entries {
		cache[foldPath(p)] = e
	}
	if data, err := json.Marshal(cache); err == nil {
		_ = files.WriteFile(hashCachePath, data)
	}
}

// loadHashCache reads the hash cache, by folded path; a missing or
// damaged cache is empty.
func loadHashCache(files Files) map[string]hashCacheEntry {
	cache := map[string]hashCacheEntry{}
	if data, err := files.ReadFile(hashCachePath); err == nil {
		_ = json.Unmarshal(data, &cache) // a damaged cache is rebuilt
	}
	return cache
}

// cachedSum is the SHA-256 the hash cache holds for path, if the file's
// size and modification time are still the ones it was hashed at.
func cachedSum(files Files, cache map[string]hashCacheEntry, path string) (string, bool) {
	e, ok := cache[foldPath(path)]
	if !ok {
		return "", false
	}
	info, err := files.Stat(path)
	if err != nil || info.IsDir() || e.Size != info.Size() || e.ModTime != info.ModTime().UnixNano() {
		return "", false
	}
	return e.SHA256, true
}

// cachedSumOrRenamed is cachedSum, or for a file not in the cache under
// its path, the entry of the file it was renamed from (renamed).
func cachedSumOrRenamed(files Files, cache map[string]hashCacheEntry, path string) (string, bool) {
	if sum, ok := cachedSum(files, cache, path); ok {
		return sum, true
	}
	if _, ok := cache[foldPath(path)]; ok {
		// In the cache under its path, but changed since.
		return "", false
	}
	info, err := files.Stat(path)
	if err != nil || info.IsDir() {
		return "", false
	}
	e, ok := renamed(files, cache, info)
	return e.SHA256, ok
}

func sha256File(files Files, path string) (string, error) {
	r, err := files.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = r.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(files Files, path string) (*wicdapi.HashResult, error) {
	info, err := files.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, codedError(wicdapi.CodeNotFound, "%s does not exist", path)
		}
		return nil, codedError(wicdapi.CodeFileSystem, "stat %s: %v", path, err)
	}
	sum, err := sha256File(files, path)
	if err != nil {
		return nil, codedError(wicdapi.CodeFileSystem, "hash %s: %v", path, err)
	}
	return &wicdapi.HashResult{Path: path, Size: info.Size(), SHA256: sum}, nil
}

// PreflightOptions tune the preflight checks.
type PreflightOptions struct {
	// ReferenceTime is the caller's clock; zero skips the clock check.
	ReferenceTime    time.Time
	MaxClockSkew     time.Duration
	MinFreeDiskBytes int64
}

func preflight(ctx context.Context, b *Backend, o PreflightOptions) (*wicdapi.PreflightResult, error) {
	facts, err := gatherFacts(b)
	if err != nil {
		return nil, err
	}
	res := &wicdapi.PreflightResult{}
	add := func(c wicdapi.Check) { res.Checks = append(res.Checks, c) }

	if name, ok := wicdapi.SupportedOSBuilds[facts.OSBuild]; ok {
		add(wicdapi.Check{Name: wicdapi.CheckOSBuild, Passed: true, Message: name})
	} else {
		add(wicdapi.Check{Name: wicdapi.CheckOSBuild, Reason: wicdapi.ReasonUnsupported,
			Message: "OS build " + strconv.Itoa(facts.OSBuild) + " is not supported; supported builds: " + supportedList()})
	}

	if lower := strings.ToLower(facts.Hostname); len(lower) <= 63 && rfc1123Label.MatchString(lower) {
		add(wicdapi.Check{Name: wicdapi.CheckHostname, Passed: true})
	} else {
		add(wicdapi.Check{Name: wicdapi.CheckHostname, Reason: wicdapi.ReasonBadHostname,
			Message: "hostname " + strconv.Quote(facts.Hostname) + " is not a valid RFC 1123 label (letters, digits and '-', at most 63 characters); rename the host or set spec.nodeName"})
	}

	if facts.FreeDiskBytes >= o.MinFreeDiskBytes {
		add(wicdapi.Check{Name: wicdapi.CheckDiskSpace, Passed: true})
	} else {
		add(wicdapi.Check{Name: wicdapi.CheckDiskSpace, Reason: wicdapi.ReasonLowDisk,
			Message: "free space on C: is " + humanBytes(facts.FreeDiskBytes) + ", at least " + humanBytes(o.MinFreeDiskBytes) + " is needed"})
	}

	if facts.Features[FeatureContainers] {
		add(wicdapi.Check{Name: wicdapi.CheckContainers, Passed: true})
	} else {
		add(wicdapi.Check{Name: wicdapi.CheckContainers, Reason: wicdapi.ReasonNoFeature,
			Message: "the Containers feature is not enabled; `wicd enable-features` enables it (a reboot follows)"})
	}

	if foreign, err := foreignContainerd(ctx, b); err != nil {
		return nil, err
	} else if foreign != "" {
		add(wicdapi.Check{Name: wicdapi.CheckContainerd, Reason: wicdapi.ReasonForeign,
			Message: "a containerd service not installed by this operator exists (binary " + foreign + "); remove it first"})
	} else {
		add(wicdapi.Check{Name: wicdapi.CheckContainerd, Passed: true})
	}

	foreign, err := foreignServiceChecks(ctx, b)
	if err != nil {
		return nil, err
	}
	res.Checks = append(res.Checks, foreign...)

	add(firewallCheck(ctx, b))

	if !o.ReferenceTime.IsZero() {
		now, _ := time.Parse(time.RFC3339, facts.Time)
		skew := now.Sub(o.ReferenceTime.Truncate(time.Second))
		if skew < 0 {
			skew = -skew
		}
		if skew <= o.MaxClockSkew {
			add(wicdapi.Check{Name: wicdapi.CheckClock, Passed: true})
		} else {
			add(wicdapi.Check{Name: wicdapi.CheckClock, Reason: wicdapi.ReasonClockSkew,
				Message: "host clock differs from the cluster's by " + skew.String() + " (at most " + o.MaxClockSkew.String() + " allowed); certificates would fail"})
		}
	}

	res.Passed = true
	for _, c := range res.Checks {
		res.Passed = res.Passed && c.Passed
	}
	return res, nil
}

// firewallCheck checks that the agent can manage the host firewall and
// says which of the operator's rules are in place (apply creates them,
// and enables one an administrator disabled).
func firewallCheck(ctx context.Context, b *Backend) wicdapi.Check {
	var have, disabled, missing []string
	for _, name := range []string{wicdapi.FirewallRuleKubelet, wicdapi.FirewallRuleWindowsExporter} {
		rule, err := b.Firewall.Rule(ctx, name)
		switch {
		case err == nil && !rule.Enabled:
			disabled = append(disabled, name)
		case err == nil:
			have = append(have, name)
		case errors.Is(err, ErrNotFound):
			missing = append(missing, name)
		default:
			return wicdapi.Check{Name: wicdapi.CheckFirewall, Reason: wicdapi.ReasonNoFirewall,
				Message: "cannot read the Windows Firewall rules, so inbound TCP " + strconv.Itoa(wicdapi.KubeletPort) +
					" (kubelet) and " + strconv.Itoa(wicdapi.WindowsExporterPort) + " (windows_exporter) cannot be opened: " + err.Error()}
		}
	}
	msg := "rules in place: " + strings.Join(have, ", ")
	switch {
	case len(have) == 0 && len(disabled) == 0:
		msg = "no rules yet"
	case len(have) == 0:
		msg = "no rules in place"
	}
	if len(disabled) > 0 {
		msg += "; disabled, so letting nothing in (apply enables them): " + strings.Join(disabled, ", ")
	}
	if len(missing) > 0 {
		msg += "; apply creates: " + strings.Join(missing, ", ")
	}
	return wicdapi.Check{Name: wicdapi.CheckFirewall, Passed: true, Message: msg}
}

// foreignContainerd returns the binary of a containerd service that does not
// run from this operator's payload, or "".
func foreignContainerd(ctx context.Context, b *Backend) (string, error) {
	st, err := b.Services.Query(ctx, "containerd")
	if errors.Is(err, ErrServiceNotFound) {
		return "", nil
	}
	if err != nil {
		return "", codedError(wicdapi.CodeServiceFailed, "query containerd service: %v", err)
	}
	bin := st.Config.Binary
	if underDir(bin, wicdapi.PayloadRoot) {
		return "", nil
	}
	for _, a := range st.Config.Args { // wrapped by the log runner
		if underDir(a, wicdapi.PayloadRoot) && strings.HasSuffix(strings.ToLower(a), `\containerd.exe`) {
			return "", nil
		}
	}
	return bin, nil
}

func enableFeatures(b *Backend) (*wicdapi.EnableFeaturesResult, error) {
	state, err := b.System.Features([]string{FeatureContainers})
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read features: %v", err)
	}
	res := &wicdapi.EnableFeaturesResult{}
	if state[FeatureContainers] {
		return res, nil
	}
	reboot, err := b.System.EnableFeature(FeatureContainers)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "enable %s: %v", FeatureContainers, err)
	}
	res.Enabled = []string{FeatureContainers}
	res.RebootRequired = reboot
	return res, nil
}

func supportedList() string {
	builds := make([]int, 0, len(wicdapi.SupportedOSBuilds))
	for b := range wicdapi.SupportedOSBuilds {
		builds = append(builds, b)
	}
	sort.Ints(builds)
	parts := make([]string, len(builds))
	for i, b := range builds {
		parts[i] = strconv.Itoa(b) + " (" + wicdapi.SupportedOSBuilds[b] + ")"
	}
	return strings.Join(parts, ", ")
}

func humanBytes(n int64) string {
	const gib = 1 << 30
	if n >= gib {
		return strconv.FormatFloat(float64(n)/gib, 'f', 1, 64) + " GiB"
	}
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}
