package wicd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
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
	f.Files = map[string]string{}
	err = b.Files.Walk(wicdapi.InstallRoot, func(path string, _ fs.FileInfo) error {
		sum, err := sha256File(b.Files, path)
		if err != nil {
			return err
		}
		f.Files[path] = sum
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, codedError(wicdapi.CodeFileSystem, "hash files under %s: %v", wicdapi.InstallRoot, err)
	}
	return f, nil
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
