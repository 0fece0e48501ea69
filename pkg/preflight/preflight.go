// Package preflight checks a Windows host before it is handed to the
// operator, the way the operator's own preflight phase does, and leaves
// the host as it found it: it connects over SSH (pkg/remote), uploads the
// payload's agent into a folder of its own on the host, runs the agent's
// read-only `preflight` subcommand with fixed arguments, and removes the
// agent and every folder it created.
//
// Checks: the host is reachable and accepts the key, its OS build is
// supported, its hostname can name a Node, C: has room, the Containers
// feature is enabled, no containerd service other than the operator's
// exists, the firewall can be managed, and the host clock agrees with the
// local one. Each failed check carries a one-line fix.
package preflight

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// DefaultHostTempDir is the folder on the host under which the agent's
// own folder is created (and removed).
const DefaultHostTempDir = `C:\Windows\Temp`

// Defaults of Options.
const (
	DefaultStepTimeout  = 2 * time.Minute
	DefaultMaxClockSkew = 5 * time.Minute
)

// Check names, in the order a Result lists them. The host-side ones are
// wicdapi's check names.
const (
	CheckReachable      = "Reachable"
	CheckHostKey        = "HostKey"
	CheckAuthentication = "Authentication"
	CheckAgent          = "Agent"
)

// Status of one check.
type Status string

// Statuses.
const (
	Passed  Status = "PASS"
	Failed  Status = "FAIL"
	Skipped Status = "SKIP"
)

// Check is the outcome of one check.
type Check struct {
	// Name is one of the Check* constants or a wicdapi check name
	// (wicdapi.CheckOSBuild, ...).
	Name   string
	Status Status
	// Message says what was found; Fix, for a failure, what to do.
	Message string
	Fix     string
}

// Result is what Run found.
type Result struct {
	Checks []Check
	// HostKey is the key the host presented (authorized_keys format), ""
	// when none was seen.
	HostKey string
	// CleanupError is set when something uploaded could not be removed;
	// its message names what is left on the host.
	CleanupError error
}

// Passed reports whether every check passed and the host was left clean.
func (r *Result) Passed() bool {
	for _, c := range r.Checks {
		if c.Status != Passed {
			return false
		}
	}
	return r.CleanupError == nil
}

// Check returns the check named name, if the result has it.
func (r *Result) Check(name string) (Check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// Agent is the agent binary (wicd.exe of the payload) to run on the host.
type Agent struct {
	// Path of the binary on this machine.
	Path string
	// Size and SHA256 (lower-case hex) it must have; Open checks them.
	Size   int64
	SHA256 string
}

// AgentFromFile describes the binary at path, hashing it.
func AgentFromFile(path string) (Agent, error) {
	f, err := os.Open(path)
	if err != nil {
		return Agent{}, fmt.Errorf("open agent: %w", err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Agent{}, fmt.Errorf("read agent %s: %w", path, err)
	}
	return Agent{Path: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Options of Run.
type Options struct {
	// Target is the host and credentials. Without a pinned HostKey set
	// TrustOnFirstUse; Result.HostKey tells the key seen.
	Target remote.Target
	// Dialer opens the SSH session; nil is a remote.SSHDialer.
	Dialer remote.Dialer
	// Agent is uploaded and run on the host.
	Agent Agent
	// HostDir is the folder created on the host for the agent; it must
	// not exist. Empty: DefaultHostTempDir\wmco-preflight-<random>.
	HostDir string
	// Now is the local clock the host's is compared with; nil is
	// time.Now.
	Now func() time.Time
	// MaxClockSkew accepted between the clocks (DefaultMaxClockSkew).
	MaxClockSkew time.Duration
	// StepTimeout bounds each remote step (DefaultStepTimeout).
	StepTimeout time.Duration
}

// hashCachePath is the agent's cache of file hashes, which `facts` (and
// so `preflight`) rewrites when files under the install root changed.
const hashCachePath = wicdapi.InstallRoot + `\.wicd-hashes.json`

// maxCacheSize bounds the hash cache read back for restoring.
const maxCacheSize = 64 << 20

// Run checks the host. It returns an error only for problems on this side
// (the agent binary unreadable); whatever concerns the host is a Check.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Dialer == nil {
		o.Dialer = &remote.SSHDialer{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxClockSkew <= 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = DefaultStepTimeout
	}
	if o.HostDir == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.HostDir = DefaultHostTempDir + `\wmco-preflight-` + hex.EncodeToString(b[:])
	}
	dir, err := remote.NormalizePath(o.HostDir)
	if err != nil {
		return nil, fmt.Errorf("host folder: %w", err)
	}
	o.HostDir = dir
	agent, err := os.Open(o.Agent.Path)
	if err != nil {
		return nil, fmt.Errorf("open agent: %w", err)
	}
	defer func() { _ = agent.Close() }()

	res := &Result{}
	dctx, cancel := context.WithTimeout(ctx, o.StepTimeout)
	sess, err := o.Dialer.Dial(dctx, o.Target)
	cancel()
	if err != nil {
		res.Checks = append(connectChecks(o.Target, err), skipAll("not checked: the host could not be reached")...)
		var mismatch *remote.HostKeyMismatchError
		if errors.As(err, &mismatch) {
			res.HostKey = mismatch.ActualKey
		}
		return res, nil
	}
	defer func() { _ = sess.Close() }()
	res.HostKey = sess.HostKey()
	res.Checks = append(res.Checks, Check{Name: CheckReachable, Status: Passed, Message: "SSH on " + o.Target.String()})
	if o.Target.HostKey != "" {
		res.Checks = append(res.Checks, Check{Name: CheckHostKey, Status: Passed, Message: "matches the pinned key"})
	} else {
		fp, _ := remote.HostKeyFingerprint(res.HostKey)
		res.Checks = append(res.Checks, Check{Name: CheckHostKey, Status: Passed, Message: "accepted without pinning: " + fp})
	}
	res.Checks = append(res.Checks, Check{Name: CheckAuthentication, Status: Passed, Message: "logged in as " + o.Target.Username})

	h := &hostRun{sess: sess, o: o}
	checks, runErr := h.run(ctx, agent)
	res.CleanupError = h.cleanup(ctx)
	if runErr != nil {
		res.Checks = append(res.Checks, agentFailure(runErr)...)
		return res, nil
	}
	res.Checks = append(res.Checks, Check{Name: CheckAgent, Status: Passed, Message: "ran the agent from " + o.HostDir + " and removed it"})
	for _, c := range checks {
		res.Checks = append(res.Checks, fromAgent(c))
	}
	if _, ok := res.Check(wicdapi.CheckClock); !ok {
		res.Checks = append(res.Checks, Check{Name: wicdapi.CheckClock, Status: Skipped, Message: "the agent did not compare the clocks"})
	}
	return res, nil
}

// hostRun is one visit to the host: what it found there before, and what
// it created.
type hostRun struct {
	sess remote.Session
	o    Options
	// created are the folders made for the agent, outermost first.
	created []string
	// uploaded is the agent's path once its upload began.
	uploaded string
	// cacheBefore is the hash cache's content before (nil: absent);
	// cacheKnown tells that it was read.
	cacheBefore []byte
	cacheKnown  bool
}

// run uploads the agent and runs `preflight`.
func (h *hostRun) run(ctx context.Context, agent io.Reader) ([]wicdapi.Check, error) {
	if err := h.plan(ctx); err != nil {
		return nil, err
	}
	dst := h.o.HostDir + `\wicd.exe`
	h.uploaded = dst
	uctx, cancel := context.WithTimeout(ctx, h.o.StepTimeout)
	err := h.sess.Upload(uctx, dst, agent, h.o.Agent.Size, h.o.Agent.SHA256)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("upload the agent to %s: %w", dst, err)
	}
	argv := []string{dst, "preflight",
		"--reference-time=" + h.o.Now().UTC().Format(time.RFC3339),
		"--max-clock-skew=" + h.o.MaxClockSkew.String()}
	rctx, cancel := context.WithTimeout(ctx, h.o.StepTimeout)
	out, err := h.sess.Run(rctx, argv)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("run the agent: %w", err)
	}
	var pr wicdapi.PreflightResult
	if out.ExitCode != 0 {
		var eo wicdapi.ErrorOutput
		if json.Unmarshal(out.Stdout, &eo) == nil && eo.Error != nil {
			return nil, eo.Error
		}
		return nil, fmt.Errorf("the agent exited with status %d: %s", out.ExitCode, firstLine(out.Stderr, out.Stdout))
	}
	if err := json.Unmarshal(out.Stdout, &pr); err != nil {
		return nil, fmt.Errorf("decode the agent's output: %w", err)
	}
	return pr.Checks, nil
}

// plan finds which folders of HostDir exist (those are left alone) and
// reads the agent's hash cache, which running the agent may rewrite.
func (h *hostRun) plan(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, h.o.StepTimeout)
	defer cancel()
	var missing []string // HostDir first
	for d := h.o.HostDir; len(d) > len(`C:\`); d = parentDir(d) {
		_, err := h.sess.Stat(sctx, d)
		switch {
		case err == nil && d == h.o.HostDir:
			return fmt.Errorf("%s exists on the host; choose another folder", d)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("stat %s: %w", d, err)
		}
		if err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		h.created = append(h.created, missing[i])
	}
	data, err := h.sess.ReadFile(sctx, hashCachePath, maxCacheSize)
	switch {
	case err == nil:
		h.cacheBefore, h.cacheKnown = data, true
	case errors.Is(err, fs.ErrNotExist):
		h.cacheKnown = true
	}
	return nil
}

// parentDir is the folder holding the canonical path p ("C:\" for a
// folder of the drive root).
func parentDir(p string) string {
	i := strings.LastIndexByte(p, '\\')
	if i <= 2 {
		return p[:3]
	}
	return p[:i]
}

// cleanup removes the agent and the folders made for it, and undoes a
// rewrite of the hash cache. It runs even when ctx has ended.
func (h *hostRun) cleanup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.o.StepTimeout)
	defer cancel()
	var errs []error
	if h.uploaded != "" {
		if err := removeExited(ctx, h.sess, h.uploaded); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(h.created) - 1; i >= 0; i-- {
		if err := h.sess.Remove(ctx, h.created[i]); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if h.cacheKnown {
		now, err := h.sess.ReadFile(ctx, hashCachePath, maxCacheSize)
		switch {
		case errors.Is(err, fs.ErrNotExist) && h.cacheBefore == nil:
		case err == nil && h.cacheBefore == nil:
			errs = append(errs, h.sess.Remove(ctx, hashCachePath))
		case err == nil && !bytes.Equal(now, h.cacheBefore):
			sum := sha256.Sum256(h.cacheBefore)
			errs = append(errs, h.sess.Upload(ctx, hashCachePath, bytes.NewReader(h.cacheBefore), int64(len(h.cacheBefore)), hex.EncodeToString(sum[:])))
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up %s on the host: %w", h.o.HostDir, err)
	}
	return nil
}

// removeAttempts and removePause bound how long cleanup waits for the
// agent's image to be released: Windows refuses to delete the executable
// of a process until it has fully exited, and a virus scanner may hold a
// new executable for a moment.
const (
	removeAttempts = 10
	removePause    = 500 * time.Millisecond
)

// removeExited removes the agent binary, retrying while it is held.
func removeExited(ctx context.Context, s remote.Session, path string) error {
	var err error
	for range removeAttempts {
		if err = s.Remove(ctx, path); err == nil || errors.Is(err, remote.ErrConnectionLost) || errors.Is(err, remote.ErrSessionClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(removePause):
		}
	}
	return err
}

// hostChecks are the agent's checks, in the order it reports them; they
// are skipped when the agent could not run.
var hostChecks = []string{
	wicdapi.CheckOSBuild, wicdapi.CheckHostname, wicdapi.CheckDiskSpace, wicdapi.CheckContainers,
	wicdapi.CheckContainerd, wicdapi.CheckKubelet, wicdapi.CheckKubeProxy, wicdapi.CheckFirewall, wicdapi.CheckClock,
}

func skipAll(msg string, except ...string) []Check {
	var out []Check
	for _, n := range hostChecks {
		if !containsName(except, n) {
			out = append(out, Check{Name: n, Status: Skipped, Message: msg})
		}
	}
	return out
}

func containsName(list []string, n string) bool {
	for _, s := range list {
		if s == n {
			return true
		}
	}
	return false
}

// connectChecks turn a failed dial into checks.
func connectChecks(t remote.Target, err error) []Check {
	var (
		auth      *remote.AuthError
		mismatch  *remote.HostKeyMismatchError
		forbidden *remote.ForbiddenAddressError
	)
	reach := Check{Name: CheckReachable, Status: Passed, Message: "SSH on " + t.String()}
	key := Check{Name: CheckHostKey, Status: Skipped, Message: "not checked"}
	login := Check{Name: CheckAuthentication, Status: Skipped, Message: "not checked"}
	switch {
	case errors.As(err, &mismatch):
		key = Check{Name: CheckHostKey, Status: Failed, Message: mismatch.Error(),
			Fix: "compare the host's key (ssh-keygen -lf C:\\ProgramData\\ssh\\ssh_host_ed25519_key.pub on the host) and pin the right one with --host-key"}
	case errors.As(err, &auth) && auth.Cause == remote.AuthKeyUnusable:
		// The key was refused before the host was contacted.
		reach = Check{Name: CheckReachable, Status: Skipped, Message: "not checked: the private key cannot be used"}
		login = Check{Name: CheckAuthentication, Status: Failed, Message: auth.Error(),
			Fix: "give --key an unencrypted RSA, ECDSA or Ed25519 private key in PEM or OpenSSH format"}
	case errors.As(err, &auth) && auth.Cause == remote.AuthPublicKeyNotOffered:
		key = Check{Name: CheckHostKey, Status: Passed}
		login = Check{Name: CheckAuthentication, Status: Failed, Message: auth.Error(),
			Fix: "set PubkeyAuthentication yes in C:\\ProgramData\\ssh\\sshd_config and restart sshd (Restart-Service sshd)"}
	case errors.As(err, &auth):
		key = Check{Name: CheckHostKey, Status: Passed}
		login = Check{Name: CheckAuthentication, Status: Failed, Message: auth.Error(),
			Fix: "add the public key of --key to C:\\ProgramData\\ssh\\administrators_authorized_keys (Administrators) or C:\\Users\\" + t.Username + "\\.ssh\\authorized_keys"}
	case errors.As(err, &forbidden):
		reach = Check{Name: CheckReachable, Status: Failed, Message: forbidden.Error(), Fix: "use the host's own address, not a link-local, multicast or unspecified one"}
	default:
		reach = Check{Name: CheckReachable, Status: Failed, Message: err.Error(),
			Fix: fmt.Sprintf("check the address and port, that the OpenSSH server runs (Start-Service sshd) and that TCP %d is open inbound", portOf(t))}
	}
	return []Check{reach, key, login}
}

func portOf(t remote.Target) int {
	if t.Port == 0 {
		return remote.DefaultPort
	}
	return t.Port
}

// agentFailure turns a failure to upload or run the agent into checks: a
// full disk fails the disk check, everything else the agent check.
func agentFailure(err error) []Check {
	var full *remote.DiskFullError
	var we *wicdapi.Error
	if errors.As(err, &full) || (errors.As(err, &we) && we.Code == wicdapi.CodeDiskFull) {
		msg := "no room on C: even for the agent"
		if full != nil && full.Free >= 0 && full.Needed >= 0 {
			msg += fmt.Sprintf(" (%d bytes free, %d more needed)", full.Free, full.Needed)
		} else {
			msg += ": " + err.Error()
		}
		return append([]Check{{Name: wicdapi.CheckDiskSpace, Status: Failed, Message: msg, Fix: fixes[wicdapi.ReasonLowDisk]}},
			skipAll("not checked: the agent could not run", wicdapi.CheckDiskSpace)...)
	}
	return append([]Check{{Name: CheckAgent, Status: Failed, Message: err.Error(),
		Fix: "check that the account may write to " + DefaultHostTempDir + " (or pass --host-dir) and run programs there"}},
		skipAll("not checked: the agent could not run")...)
}

// fixes are the one-line fixes of the agent's failure reasons.
var fixes = map[string]string{
	wicdapi.ReasonUnsupported:      "use Windows Server 2019 (17763), 2022 (20348) or 2025 (26100)",
	wicdapi.ReasonBadHostname:      "rename the host to a lower-case RFC 1123 label (Rename-Computer), or set spec.nodeName",
	wicdapi.ReasonLowDisk:          "free space on C: or extend the volume (at least 10 GiB free)",
	wicdapi.ReasonNoFeature:        "Install-WindowsFeature -Name Containers, then Restart-Computer (the operator also does it, with a reboot)",
	wicdapi.ReasonForeign:          "remove the existing containerd service (Stop-Service containerd; sc.exe delete containerd) or use another host",
	wicdapi.ReasonForeignKubelet:   "stop and remove the existing kubelet service (Stop-Service kubelet; sc.exe delete kubelet) and the node it ran as (kubectl delete node), or use another host",
	wicdapi.ReasonForeignKubeProxy: "stop and remove the existing kube-proxy service (Stop-Service kube-proxy; sc.exe delete kube-proxy), or use another host",
	wicdapi.ReasonClockSkew:        "synchronise the host's clock (w32tm /resync; configure an NTP source)",
	wicdapi.ReasonNoFirewall:       "start the Windows Defender Firewall service (Start-Service mpssvc)",
}

func fromAgent(c wicdapi.Check) Check {
	if c.Passed {
		return Check{Name: c.Name, Status: Passed, Message: c.Message}
	}
	fix, ok := fixes[c.Reason]
	if !ok {
		fix = "see the message"
	}
	return Check{Name: c.Name, Status: Failed, Message: c.Message, Fix: fix}
}

// WriteTable prints the checks as a table: CHECK, RESULT (with what was
// found) and FIX.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tFIX")
	for _, c := range r.Checks {
		result := string(c.Status)
		if c.Message != "" {
			result += ": " + oneLine(c.Message)
		}
		fix := c.Fix
		if fix == "" {
			fix = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Name, result, fix)
	}
	return tw.Flush()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// firstLine returns the first non-empty line of the first non-empty
// output.
func firstLine(outs ...[]byte) string {
	for _, o := range outs {
		for _, l := range strings.Split(string(o), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return l
			}
		}
	}
	return "no output"
}
