package wicd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

var serviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$`)

// readPlan loads and validates a plan file.
func readPlan(files Files, p string) (*wicdapi.Plan, error) {
	return readStrict(files, p, "plan", validatePlan)
}

// decodePlan parses a plan strictly and validates it.
func decodePlan(data []byte) (*wicdapi.Plan, error) {
	return decodeStrict(data, "plan", validatePlan)
}

// readStrict loads a JSON file the operator uploaded (what names it in
// errors) and decodes it with decodeStrict.
func readStrict[T any](files Files, p, what string, validate func(*T) error) (*T, error) {
	data, err := files.ReadFile(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, codedError(wicdapi.CodeNotFound, "%s %s does not exist", what, p)
		}
		return nil, codedError(wicdapi.CodeFileSystem, "read %s %s: %v", what, p, err)
	}
	return decodeStrict(data, what, validate)
}

// decodeStrict parses JSON refusing unknown fields, then validates it;
// both failures are CodeInvalidPlan.
func decodeStrict[T any](data []byte, what string, validate func(*T) error) (*T, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	v := new(T)
	if err := dec.Decode(v); err != nil {
		return nil, codedError(wicdapi.CodeInvalidPlan, "decode %s: %v", what, err)
	}
	if err := validate(v); err != nil {
		return nil, codedError(wicdapi.CodeInvalidPlan, "%v", err)
	}
	return v, nil
}

func validatePlan(p *wicdapi.Plan) error {
	if p.SchemaVersion != wicdapi.SchemaVersion {
		return fmt.Errorf("plan schema version %d is not %d, the one this agent understands", p.SchemaVersion, wicdapi.SchemaVersion)
	}
	if p.PayloadVersion == "" || strings.ContainsAny(p.PayloadVersion, `\/:*?"<>|`) || strings.Contains(p.PayloadVersion, "..") {
		return fmt.Errorf("payload version %q is empty or not a valid directory name", p.PayloadVersion)
	}
	if p.NodeName == "" {
		return errors.New("node name is empty")
	}
	for _, d := range p.Directories {
		if !isAbsWindowsPath(d) {
			return fmt.Errorf("directory %q is not an absolute Windows path", d)
		}
	}
	seen := map[string]bool{}
	for _, f := range p.Files {
		if !isAbsWindowsPath(f.Path) || len(f.Path) <= 3 {
			return fmt.Errorf("file %q is not an absolute Windows path", f.Path)
		}
		if seen[foldPath(f.Path)] {
			return fmt.Errorf("file %q is listed twice", f.Path)
		}
		seen[foldPath(f.Path)] = true
	}
	for _, s := range p.Services {
		if !serviceName.MatchString(s.Name) {
			return fmt.Errorf("service name %q is not valid", s.Name)
		}
		if !isAbsWindowsPath(s.Binary) {
			return fmt.Errorf("service %s: binary %q is not an absolute Windows path", s.Name, s.Binary)
		}
		switch s.StartType {
		case "", wicdapi.StartAutomatic, wicdapi.StartManual:
		default:
			return fmt.Errorf("service %s: start type %q is not automatic or manual", s.Name, s.StartType)
		}
	}
	if err := validateLogRetention(p.LogRetention); err != nil {
		return err
	}
	for _, r := range p.FirewallRules {
		if !firewallRuleName.MatchString(r.Name) {
			return fmt.Errorf("firewall rule name %q is not valid", r.Name)
		}
		if r.Protocol != "TCP" && r.Protocol != "UDP" {
			return fmt.Errorf("firewall rule %s: protocol %q is not TCP or UDP", r.Name, r.Protocol)
		}
		if r.Port < 1 || r.Port > 65535 {
			return fmt.Errorf("firewall rule %s: port %d is out of range", r.Name, r.Port)
		}
		if strings.ContainsAny(r.Description, "\"\x00\r\n") {
			return fmt.Errorf("firewall rule %s: description has quotes or control characters", r.Name)
		}
	}
	for _, c := range p.Copies {
		if !isAbsWindowsPath(c.From) || !isAbsWindowsPath(c.To) || len(c.To) <= 3 {
			return fmt.Errorf("copy %q to %q: not absolute Windows paths", c.From, c.To)
		}
		if underDir(c.To, wicdapi.PayloadRoot) {
			return fmt.Errorf("copy to %q: the copy must be outside %s", c.To, wicdapi.PayloadRoot)
		}
		if seen[foldPath(c.To)] {
			return fmt.Errorf("file %q is listed twice", c.To)
		}
		seen[foldPath(c.To)] = true
	}
	for _, d := range p.DefenderExclusions {
		if !isAbsWindowsPath(d) || strings.ContainsAny(d, "'\"") {
			return fmt.Errorf("Defender exclusion %q is not an absolute Windows path", d)
		}
	}
	if p.StepTimeoutSeconds < 0 {
		return fmt.Errorf("step timeout %ds is negative", p.StepTimeoutSeconds)
	}
	if _, err := parseTrustedRoots(p.TrustedRootCertificates); err != nil {
		return err
	}
	if err := validateHostNetworks(p); err != nil {
		return err
	}
	if err := validateServiceHosts(p); err != nil {
		return err
	}
	_, err := startOrder(p.Services)
	return err
}

// firewallRuleName is what a firewall rule the agent owns may be called:
// it travels inside one netsh argument (name=...), so no spaces, quotes
// or separators.
var firewallRuleName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$`)

// applyFirewall adds or corrects (and enables) the plan's firewall rules
// and removes those of gone (the replaced plans' rules) it does not have.
func applyFirewall(ctx context.Context, b *Backend, gone []wicdapi.FirewallRule, plan *wicdapi.Plan) ([]wicdapi.Change, error) {
	var changes []wicdapi.Change
	step := plan.StepTimeout()
	for _, r := range plan.FirewallRules {
		cur, err := b.Firewall.Rule(ctx, r.Name)
		action := "updated"
		switch {
		case errors.Is(err, ErrNotFound):
			action = "created"
		case err != nil:
			return nil, codedError(wicdapi.CodeNetwork, "read firewall rule %s: %v", r.Name, err)
		case cur.Enabled && sameRule(cur.FirewallRule, r):
			continue
		}
		if err := stepDo(ctx, step, func(ctx context.Context) error { return b.Firewall.Add(ctx, r) }); err != nil {
			return nil, codedError(wicdapi.CodeNetwork, "add firewall rule %s: %v", r.Name, err)
		}
		changes = append(changes, wicdapi.Change{Kind: "firewallRule", Name: r.Name, Action: action})
	}
	for _, r := range gone {
		if slices.ContainsFunc(plan.FirewallRules, func(n wicdapi.FirewallRule) bool { return n.Name == r.Name }) {
			continue
		}
		if _, err := b.Firewall.Rule(ctx, r.Name); errors.Is(err, ErrNotFound) {
			continue
		}
		if err := stepDo(ctx, step, func(ctx context.Context) error { return b.Firewall.Delete(ctx, r.Name) }); err != nil {
			return nil, codedError(wicdapi.CodeNetwork, "delete firewall rule %s: %v", r.Name, err)
		}
		changes = append(changes, wicdapi.Change{Kind: "firewallRule", Name: r.Name, Action: "removed"})
	}
	return changes, nil
}

// asideSuffix marks a copy renamed aside because processes ran it.
const asideSuffix = ".old-"

// applyCopy makes c.To a copy of c.From and returns "created", "updated"
// or "" (unchanged). A c.To that running processes hold is renamed aside
// first; renamed copies that nothing holds any more are removed. Files
// whose hashes facts cached (hashes) for their current size and
// modification time are compared by those without being read: `wicd run`
// re-applies the plan every few seconds, and the copies are the payload's
// binaries. A c.From just uploaded is known by the hash `wicd hash`
// recorded under its temporary name (renamed). Others are hashed as they
// are read, never held in memory whole: kubelet.exe is over 100 MB. A
// c.From that was hashed, and a c.To that was hashed or written, get
// their hashes recorded in written (hashOfWritten), so that neither facts
// nor the next apply read them again. before runs before c.To is written.
func applyCopy(b *Backend, hashes, written map[string]hashCacheEntry, c wicdapi.Copy, before func() error) (string, error) {
	if err := removeAsideCopies(b, c.To); err != nil {
		return "", err
	}
	info, err := b.Files.Stat(c.From)
	if err != nil {
		return "", fsError("read "+c.From, err)
	}
	// The recorded hash stands for the bytes copied below, as it does for
	// the comparison: nothing but the operator's uploads (written aside
	// and renamed) changes a payload file.
	sum, known := cachedSumOrRenamed(b.Files, hashes, c.From)
	if !known {
		if sum, err = sha256File(b.Files, c.From); err != nil {
			return "", fsError("read "+c.From, err)
		}
	}
	if e, ok := hashOfWritten(b.Files, c.From, info.Size(), sum); ok {
		written[c.From] = e
	}
	remember := func(size int64) {
		if e, ok := hashOfWritten(b.Files, c.To, size, sum); ok {
			written[c.To] = e
		}
	}
	existed := true
	old, cached := cachedSum(b.Files, hashes, c.To)
	var readErr error
	if !cached {
		old, readErr = sha256File(b.Files, c.To)
	}
	switch {
	case readErr == nil && strings.EqualFold(old, sum):
		if !cached {
			remember(info.Size())
		}
		return "", nil
	case errors.Is(readErr, fs.ErrNotExist):
		existed = false
	case readErr != nil:
		return "", fsError("read "+c.To, readErr)
	}
	if err := before(); err != nil {
		return "", err
	}
	if err := b.Files.MkdirAll(parentDir(c.To)); err != nil {
		return "", fsError("create directory for "+c.To, err)
	}
	n, err := b.Files.CopyFile(c.From, c.To)
	if errors.Is(err, ErrFileInUse) {
		aside := fmt.Sprintf("%s%s%d", c.To, asideSuffix, b.System.Now().UnixNano())
		if err := b.Files.Rename(c.To, aside); err != nil {
			return "", fsError("rename "+c.To+" aside while processes run it", err)
		}
		n, err = b.Files.CopyFile(c.From, c.To)
	}
	if err != nil {
		return "", fsError("write "+c.To, err)
	}
	remember(n)
	if !existed {
		return "created", nil
	}
	return "updated", nil
}

// removeAsideCopies removes the copies of path renamed aside earlier that
// no process holds any more; held ones stay for a later apply.
func removeAsideCopies(b *Backend, path string) error {
	dir := parentDir(path)
	entries, err := b.Files.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fsError("list "+dir, err)
	}
	prefix := strings.ToLower(path[len(dir)+1:] + asideSuffix)
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(strings.ToLower(e.Name()), prefix) {
			continue
		}
		p := dir + `\` + e.Name()
		if err := b.Files.Remove(p); err != nil && !errors.Is(err, ErrFileInUse) {
			return fsError("remove "+p, err)
		}
	}
	return nil
}

// sameRule compares what a rule does; the description is informative.
func sameRule(a, b wicdapi.FirewallRule) bool {
	return a.Name == b.Name && strings.EqualFold(a.Protocol, b.Protocol) && a.Port == b.Port
}

// applyDefender adds the plan's Defender exclusions where Defender is
// installed. Exclusions are never removed: an administrator may have
// added the same folders.
func applyDefender(ctx context.Context, b *Backend, plan *wicdapi.Plan) ([]wicdapi.Change, error) {
	if len(plan.DefenderExclusions) == 0 {
		return nil, nil
	}
	present, err := b.Defender.Present(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "find out whether Microsoft Defender is installed: %v", err)
	}
	if !present {
		return nil, nil
	}
	have, err := b.Defender.Exclusions(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "read Defender exclusions: %v", err)
	}
	var changes []wicdapi.Change
	for _, d := range plan.DefenderExclusions {
		if slices.ContainsFunc(have, func(h string) bool { return samePath(h, d) }) {
			continue
		}
		if err := stepDo(ctx, plan.StepTimeout(), func(ctx context.Context) error { return b.Defender.AddExclusion(ctx, d) }); err != nil {
			return nil, codedError(wicdapi.CodeInternal, "add Defender exclusion %s: %v", d, err)
		}
		changes = append(changes, wicdapi.Change{Kind: "defenderExclusion", Name: d, Action: "created"})
	}
	return changes, nil
}

// Apply makes the host match the plan: directories, files, then services in
// dependency order. Services whose configuration or files changed are
// restarted (with their dependents); stopped services are started. Applying
// the same plan again reports no changes. The plan is kept as the applied
// plan for `wicd run` and `wicd cleanup`; an applied plan of another
// payload version is kept as the previous plan (for Rollback and Prune).
// A running service that only moves to the new payload folder, whose
// files there are the same, is repointed without a restart (the repoint
// rule of package wicdapi).
func Apply(ctx context.Context, b *Backend, plan *wicdapi.Plan) (*wicdapi.ApplyResult, error) {
	if err := validatePlan(plan); err != nil {
		return nil, codedError(wicdapi.CodeInvalidPlan, "%v", err)
	}
	unlock, err := b.Locker.Lock(ctx)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "wait for the host lock: %v", err)
	}
	defer unlock()
	return apply(ctx, b, plan)
}

// apply is Apply for a caller that holds the host lock. Its outcome is
// kept at wicdapi.ApplyErrorPath for facts: the applied plan is saved
// before anything changes, so its presence does not mean success. An
// apply of another plan than the applied one first records that it has
// not finished (CodeInterrupted), which stays if it is cut short (ctx
// ends, the process is killed, the host goes down); an apply cut short
// by ctx otherwise leaves the last outcome.
func apply(ctx context.Context, b *Backend, plan *wicdapi.Plan) (*wicdapi.ApplyResult, error) {
	prev, err := appliedPlan(b.Files)
	if err != nil {
		return nil, err
	}
	old, err := encodePlan(prev)
	if err != nil {
		return nil, err
	}
	data, err := encodePlan(plan)
	if err != nil {
		return nil, err
	}
	// An apply of the applied plan after one of it was cut short resumes
	// it: that apply may have reconfigured a service or replaced its
	// files and been cut before restarting it, and the host now looks as
	// the plan says while the service still runs what it ran before.
	resume := false
	left, err := readLeftovers(b.Files)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(old, data) {
		last, err := lastApplyError(b.Files)
		if err != nil {
			return nil, fsError("read the last apply's outcome "+wicdapi.ApplyErrorPath, err)
		}
		resume = last != nil && last.Code == wicdapi.CodeInterrupted
	} else {
		unfinished := codedError(wicdapi.CodeInterrupted, "the apply of payload %s began and did not finish", plan.PayloadVersion)
		if err := writeApplyError(b.Files, unfinished); err != nil {
			return nil, fsError("record the apply as unfinished in "+wicdapi.ApplyErrorPath, err)
		}
		// What the replaced plan has is removed unless the new one has
		// it too; until the apply finishes, the record of it outlives
		// the replaced plan.
		if left.add(prev) {
			if err := writeLeftovers(b, left); err != nil {
				return nil, err
			}
		}
		// The plan is the applied one from the start: should a step fail
		// (a new kubelet that does not start), `wicd run` keeps trying it
		// and `wicd rollback` finds the plan before it as the previous
		// one.
		if err := saveAppliedPlan(b.Files, prev, plan, old, data); err != nil {
			return nil, err
		}
	}
	res, err := applySteps(ctx, b, left, plan, resume)
	if ctx.Err() != nil {
		return res, err
	}
	if err != nil {
		var we *wicdapi.Error
		if !errors.As(err, &we) {
			we = codedError(wicdapi.CodeInternal, "%v", err)
		}
		_ = writeApplyError(b.Files, we) // best effort: the caller has the error
		return res, err
	}
	for _, f := range []struct{ path, what string }{
		{wicdapi.ApplyLeftoversPath, "the replaced plans' leftovers"},
		{wicdapi.ApplyErrorPath, "the last apply's error"},
	} {
		if _, serr := b.Files.Stat(f.path); serr == nil {
			if rerr := b.Files.Remove(f.path); rerr != nil {
				return nil, fsError("remove "+f.what+" "+f.path, rerr)
			}
		}
	}
	return res, nil
}

// leftovers are what the applies since the last one that finished left
// to do (wicdapi.ApplyLeftoversPath): the services and firewall rules of
// the plans they replaced, and the services they changed and had yet to
// restart. An apply removes the services and rules its plan does not
// have; one cut short before it did has already saved its plan as the
// applied one, and without the record the next apply would compare the
// plan with itself and leave them. Likewise an apply that reconfigured a
// running service, or replaced a file it uses, and failed or was cut
// short before restarting it leaves the host looking as the plan says
// while the service runs what it ran before: without the record the next
// apply would see nothing to restart.
type leftovers struct {
	Services      []wicdapi.Service      `json:"services,omitempty"`
	FirewallRules []wicdapi.FirewallRule `json:"firewallRules,omitempty"`
	// Restart names the services to restart if they run.
	Restart []string `json:"restart,omitempty"`
}

// needRestart records, before an apply changes what the services names
// run with, that they are to be restarted.
func (l *leftovers) needRestart(b *Backend, names []string) error {
	grew := false
	for _, n := range names {
		if !slices.Contains(l.Restart, n) {
			l.Restart = append(l.Restart, n)
			grew = true
		}
	}
	if !grew {
		return nil
	}
	return writeLeftovers(b, l)
}

// started drops from the record the services names, which an apply has
// started since it changed them.
func (l *leftovers) started(b *Backend, names []string) error {
	n := len(l.Restart)
	l.Restart = slices.DeleteFunc(l.Restart, func(r string) bool { return slices.Contains(names, r) })
	if len(l.Restart) == n {
		return nil
	}
	return writeLeftovers(b, l)
}

// add records p's services and firewall rules (a later plan's entry of
// a name replaces an earlier one's) and reports whether p had any.
func (l *leftovers) add(p *wicdapi.Plan) bool {
	if p == nil || len(p.Services)+len(p.FirewallRules) == 0 {
		return false
	}
	for _, s := range p.Services {
		l.Services = slices.DeleteFunc(l.Services, func(o wicdapi.Service) bool { return o.Name == s.Name })
		l.Services = append(l.Services, s)
	}
	for _, r := range p.FirewallRules {
		l.FirewallRules = slices.DeleteFunc(l.FirewallRules, func(o wicdapi.FirewallRule) bool { return o.Name == r.Name })
		l.FirewallRules = append(l.FirewallRules, r)
	}
	return true
}

// readLeftovers loads the record; none is an empty one.
func readLeftovers(files Files) (*leftovers, error) {
	data, err := files.ReadFile(wicdapi.ApplyLeftoversPath)
	if errors.Is(err, fs.ErrNotExist) {
		return &leftovers{}, nil
	}
	if err != nil {
		return nil, fsError("read "+wicdapi.ApplyLeftoversPath, err)
	}
	l := &leftovers{}
	if err := json.Unmarshal(data, l); err != nil {
		return nil, codedError(wicdapi.CodeFileSystem, "decode %s: %v", wicdapi.ApplyLeftoversPath, err)
	}
	return l, nil
}

// writeLeftovers saves the record, readable by administrators only: a
// service's arguments may carry what a plan keeps from others.
func writeLeftovers(b *Backend, l *leftovers) error {
	data, err := json.Marshal(l)
	if err != nil {
		return codedError(wicdapi.CodeInternal, "encode %s: %v", wicdapi.ApplyLeftoversPath, err)
	}
	if err := b.Files.WriteFile(wicdapi.ApplyLeftoversPath, data); err != nil {
		return fsError("write "+wicdapi.ApplyLeftoversPath, err)
	}
	return restrict(b, wicdapi.ApplyLeftoversPath)
}

func writeApplyError(files Files, we *wicdapi.Error) error {
	data, err := json.Marshal(we)
	if err != nil {
		return err
	}
	return files.WriteFile(wicdapi.ApplyErrorPath, data)
}

// lastApplyError is the error the last apply recorded, or nil.
func lastApplyError(files Files) (*wicdapi.Error, error) {
	data, err := files.ReadFile(wicdapi.ApplyErrorPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	we := &wicdapi.Error{}
	if err := json.Unmarshal(data, we); err != nil {
		return nil, fmt.Errorf("decode %s: %w", wicdapi.ApplyErrorPath, err)
	}
	return we, nil
}

// applySteps makes the host match the plan, which apply has saved as the
// applied one; the services and firewall rules of left that the plan
// does not have are removed.
// With resume (an apply of this plan was cut short), every running
// service of the plan is restarted, the agent's own excepted: what the
// cut apply changed before it stopped no longer shows as a change. For
// the same reason, before changing a running service's configuration or
// a file a service uses, the service is recorded in left.Restart: running
// services recorded there by an apply that failed or was cut short are
// restarted.
func applySteps(ctx context.Context, b *Backend, left *leftovers, plan *wicdapi.Plan, resume bool) (*wicdapi.ApplyResult, error) {
	res := &wicdapi.ApplyResult{Changes: []wicdapi.Change{}}
	step := plan.StepTimeout()
	note := func(kind, name, action string) {
		res.Changes = append(res.Changes, wicdapi.Change{Kind: kind, Name: name, Action: action})
	}

	// First the folders that hold the payload, the plans and the
	// kubelet's keys: what is written in them from then on is for SYSTEM
	// and Administrators only from its first byte.
	if err := secureFolders(b, note); err != nil {
		return nil, err
	}
	// Plans carry credentials (the bootstrap token, a proxy's password):
	// only SYSTEM and Administrators may read them.
	for _, p := range []string{wicdapi.PlanPath, wicdapi.AppliedPlanPath, wicdapi.AppliedPlanPreviousPath} {
		if err := restrict(b, p); err != nil {
			return nil, err
		}
	}

	for _, d := range plan.Directories {
		if err := ensureDir(b, d, note); err != nil {
			return nil, err
		}
	}

	hosted := hostedConfigs(plan)
	var changedFiles []string
	for _, f := range plan.Files {
		old, err := b.Files.ReadFile(f.Path)
		switch {
		case err == nil && bytes.Equal(old, f.Content):
			if f.Sensitive {
				// Also a file an older agent left readable.
				if err := restrict(b, f.Path); err != nil {
					return nil, err
				}
			}
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return nil, fsError("read "+f.Path, err)
		}
		if err := left.needRestart(b, usersOf(plan.Services, hosted, f.Path)); err != nil {
			return nil, err
		}
		if err := b.Files.MkdirAll(parentDir(f.Path)); err != nil {
			return nil, fsError("create directory for "+f.Path, err)
		}
		if err := b.Files.WriteFile(f.Path, f.Content); err != nil {
			return nil, fsError("write "+f.Path, err)
		}
		if f.Sensitive {
			if err := restrict(b, f.Path); err != nil {
				return nil, err
			}
		}
		changedFiles = append(changedFiles, f.Path)
		if old == nil {
			note("file", f.Path, "created")
		} else {
			note("file", f.Path, "updated")
		}
	}

	var hashes map[string]hashCacheEntry
	if len(plan.Copies) > 0 {
		hashes = loadHashCache(b.Files)
	}
	written := map[string]hashCacheEntry{}
	for _, c := range plan.Copies {
		action, err := applyCopy(b, hashes, written, c, func() error {
			return left.needRestart(b, usersOf(plan.Services, hosted, c.To))
		})
		if err != nil {
			rememberHashes(b.Files, written)
			return nil, err
		}
		if action != "" {
			changedFiles = append(changedFiles, c.To)
			note("file", c.To, action)
		}
	}
	rememberHashes(b.Files, written)

	changes, err := applyFirewall(ctx, b, left.FirewallRules, plan)
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, changes...)
	changes, err = applyDefender(ctx, b, plan)
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, changes...)
	// No service restarts for a certificate: Windows reads the store at
	// every verification.
	changes, err = applyTrustedRoots(ctx, b, plan)
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, changes...)
	removed, err := removeServices(ctx, b, servicesNotIn(left.Services, plan.Services), plan.StepTimeout())
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, removed...)

	order, _ := startOrder(plan.Services) // validated above
	restart := map[string]bool{}
	running := map[string]bool{}
	for _, svc := range order {
		st, err := b.Services.Query(ctx, svc.Name)
		switch {
		case errors.Is(err, ErrServiceNotFound):
			if err := b.Services.Create(ctx, svc); err != nil {
				return nil, svcError("create", svc.Name, err)
			}
			note("service", svc.Name, "created")
			continue
		case err != nil:
			return nil, svcError("query", svc.Name, err)
		}
		running[svc.Name] = st.Running
		if !sameService(st.Config, svc) {
			// The repoint rule (package wicdapi): only the payload folder
			// changed and the files are the same, so the running process
			// may keep running; Windows uses the new path at the next start.
			repoint := st.Running && repointable(b.Files, st.Config, svc, plan.PayloadVersion)
			if st.Running && !repoint {
				if err := left.needRestart(b, []string{svc.Name}); err != nil {
					return nil, err
				}
			}
			if err := b.Services.Update(ctx, svc); err != nil {
				return nil, svcError("update", svc.Name, err)
			}
			if repoint {
				note("service", svc.Name, wicdapi.ActionRepointed)
			} else {
				note("service", svc.Name, "updated")
				restart[svc.Name] = st.Running
			}
		}
		// A service-host service uses its configuration and what its
		// program's arguments name.
		if st.Running && (resume || slices.Contains(left.Restart, svc.Name) || usesAny(commandArgs(svc, hosted), changedFiles)) {
			restart[svc.Name] = true
		}
	}
	for n, r := range restart {
		if !r {
			delete(restart, n)
		}
	}
	restart = dependentsClosure(plan.Services, restart)
	// The agent's own service is never restarted from inside: it would
	// stop the process doing the work. A changed agent configuration takes
	// effect at its next start.
	delete(restart, wicdapi.AgentServiceName)

	for _, svc := range slices.Backward(order) {
		if restart[svc.Name] && running[svc.Name] {
			if err := stopForRestart(ctx, b, order, svc.Name, step); err != nil {
				return nil, err
			}
			running[svc.Name] = false
		}
	}
	changes, err = ensureHostNetworks(ctx, b, plan)
	if err != nil {
		return nil, err
	}
	res.Changes = append(res.Changes, changes...)
	byName := make(map[string]wicdapi.Service, len(order))
	for _, svc := range order {
		byName[svc.Name] = svc
	}
	started, err := startTogether(ctx, order, running, func(ctx context.Context, name string) error {
		if err := waitForNetworks(ctx, b, byName[name], step); err != nil {
			return err
		}
		return stepDo(ctx, step, func(ctx context.Context) error { return b.Services.Start(ctx, name) })
	})
	for _, name := range started {
		if restart[name] {
			note("service", name, "restarted")
		} else {
			note("service", name, "started")
		}
	}
	if err != nil {
		// Best effort: kept, a started service is only restarted once
		// more by the next apply.
		_ = left.started(b, started)
		return nil, err
	}

	res.Changed = len(res.Changes) > 0
	return res, nil
}

// stopForRestart stops the plan's service name (order is the plan's
// services in start order) to restart it. Its dependents that ran were
// stopped before it; one that was down when the apply looked (crashing,
// its restart pending in the service manager's recovery) may have been
// restarted since, and the service manager then refuses the stop: the
// dependents that run now are stopped (they are in the restart set, and
// start again with it) and the stop is tried again.
func stopForRestart(ctx context.Context, b *Backend, order []wicdapi.Service, name string, step time.Duration) error {
	stop := func(n string) error {
		return stepDo(ctx, step, func(ctx context.Context) error { return b.Services.Stop(ctx, n) })
	}
	const attempts = 3
	for i := 1; ; i++ {
		err := stop(name)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrDependentsRunning) || i == attempts {
			return svcError("stop", name, err)
		}
		dependents := dependentsClosure(order, map[string]bool{name: true})
		for _, svc := range slices.Backward(order) {
			if svc.Name == name || !dependents[svc.Name] || svc.Name == wicdapi.AgentServiceName {
				continue
			}
			st, err := b.Services.Query(ctx, svc.Name)
			if err != nil {
				return svcError("query", svc.Name, err)
			}
			if st.Running {
				if err := stop(svc.Name); err != nil {
					return svcError("stop", svc.Name, err)
				}
			}
		}
	}
}

// appliedPlan returns the last applied plan, or nil when there is none.
func appliedPlan(files Files) (*wicdapi.Plan, error) {
	p, err := readPlan(files, wicdapi.AppliedPlanPath)
	var we *wicdapi.Error
	if errors.As(err, &we) && we.Code == wicdapi.CodeNotFound {
		return nil, nil
	}
	return p, err
}

// encodePlan is the JSON of p, as saved; nil for no plan.
func encodePlan(p *wicdapi.Plan) ([]byte, error) {
	if p == nil {
		return nil, nil
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, codedError(wicdapi.CodeInternal, "encode plan: %v", err)
	}
	return data, nil
}

// saveAppliedPlan makes plan (encoded as data), which differs from prev
// (encoded as old), the applied plan.
func saveAppliedPlan(files Files, prev, plan *wicdapi.Plan, old, data []byte) error {
	// Another payload version: the current plan becomes the previous
	// one, for `wicd rollback` and `wicd prune`.
	if prev != nil && !strings.EqualFold(prev.PayloadVersion, plan.PayloadVersion) {
		if err := files.WriteFile(wicdapi.AppliedPlanPreviousPath, old); err != nil {
			return fsError("keep the previous plan", err)
		}
	}
	if err := files.WriteFile(wicdapi.AppliedPlanPath, data); err != nil {
		return fsError("save applied plan", err)
	}
	return nil
}

// removeServices stops and deletes services, dependents first; each stop
// has its own deadline of step.
func removeServices(ctx context.Context, b *Backend, svcs []wicdapi.Service, step time.Duration) ([]wicdapi.Change, error) {
	order, err := startOrderLenient(svcs)
	if err != nil {
		// Services of several replaced plans (leftovers) may name each
		// other in a cycle that no one plan had: stopped in the order
		// given backwards, a stop that dependents refuse fails with
		// their names.
		order = svcs
	}
	var changes []wicdapi.Change
	for _, svc := range slices.Backward(order) {
		st, err := b.Services.Query(ctx, svc.Name)
		if errors.Is(err, ErrServiceNotFound) {
			continue
		}
		if err != nil {
			return nil, svcError("query", svc.Name, err)
		}
		if st.Running {
			if err := stepDo(ctx, step, func(ctx context.Context) error { return b.Services.Stop(ctx, svc.Name) }); err != nil {
				return nil, svcError("stop", svc.Name, err)
			}
			changes = append(changes, wicdapi.Change{Kind: "service", Name: svc.Name, Action: "stopped"})
		}
		if err := b.Services.Delete(ctx, svc.Name); err != nil {
			return nil, svcError("delete", svc.Name, err)
		}
		changes = append(changes, wicdapi.Change{Kind: "service", Name: svc.Name, Action: "removed"})
	}
	return changes, nil
}

// startOrderLenient orders a subset of a plan's services, ignoring
// dependencies outside the subset.
func startOrderLenient(svcs []wicdapi.Service) ([]wicdapi.Service, error) {
	in := map[string]bool{}
	for _, s := range svcs {
		in[s.Name] = true
	}
	trimmed := make([]wicdapi.Service, len(svcs))
	for i, s := range svcs {
		s.Dependencies = slices.DeleteFunc(slices.Clone(s.Dependencies), func(d string) bool { return !in[d] })
		trimmed[i] = s
	}
	return startOrder(trimmed)
}

func servicesNotIn(old, cur []wicdapi.Service) []wicdapi.Service {
	keep := map[string]bool{}
	for _, s := range cur {
		keep[s.Name] = true
	}
	var out []wicdapi.Service
	for _, s := range old {
		if !keep[s.Name] {
			out = append(out, s)
		}
	}
	return out
}

// sameService compares installed and desired configuration; unset and
// empty are alike, the start type defaults to automatic, and an empty
// display name is the service name (as Windows stores it).
func sameService(a, b wicdapi.Service) bool {
	norm := func(s wicdapi.Service) wicdapi.Service {
		if s.DisplayName == "" {
			s.DisplayName = s.Name
		}
		if s.StartType == "" {
			s.StartType = wicdapi.StartAutomatic
		}
		if len(s.Args) == 0 {
			s.Args = nil
		}
		if len(s.Dependencies) == 0 {
			s.Dependencies = nil
		}
		if len(s.Env) == 0 {
			s.Env = nil
		}
		return s
	}
	a, b = norm(a), norm(b)
	return a.Name == b.Name && a.DisplayName == b.DisplayName && a.Description == b.Description &&
		samePath(a.Binary, b.Binary) && slices.Equal(a.Args, b.Args) &&
		slices.Equal(a.Dependencies, b.Dependencies) && maps.Equal(a.Env, b.Env) &&
		a.StartType == b.StartType && a.Recovery == b.Recovery
}

// usersOf names the services of svcs whose command line (commandArgs)
// names the file path.
func usersOf(svcs []wicdapi.Service, hosted map[string]*wicdapi.ServiceHostConfig, path string) []string {
	var out []string
	for _, s := range svcs {
		if usesAny(commandArgs(s, hosted), []string{path}) {
			out = append(out, s.Name)
		}
	}
	return out
}

// usesAny reports whether one of a service's arguments names a file.
func usesAny(args []string, files []string) bool {
	for _, f := range files {
		ff := foldPath(f)
		for _, a := range args {
			if strings.Contains(foldPath(a), ff) {
				return true
			}
		}
	}
	return false
}

func parentDir(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	return strings.ReplaceAll(path.Dir(p), "/", `\`)
}

func fsError(what string, err error) *wicdapi.Error {
	if errors.Is(err, ErrDiskFull) {
		return codedError(wicdapi.CodeDiskFull, "%s: %v", what, err)
	}
	return codedError(wicdapi.CodeFileSystem, "%s: %v", what, err)
}

func svcError(verb, name string, err error) *wicdapi.Error {
	return codedError(wicdapi.CodeServiceFailed, "%s service %s: %v", verb, name, err)
}

// ErrDiskFull is wrapped by Files implementations when a volume is full.
var ErrDiskFull = errors.New("there is not enough space on the disk")

// secureFolders creates each of SecuredFolders that is missing and gives
// it AgentFolderSDDL unless it has it; an administrator's change to one
// is undone by the next apply (`wicd run` re-applies). Not a change the
// result lists: Wine reports a made-up descriptor for every file, so
// that every apply under Wine would list it.
func secureFolders(b *Backend, note func(kind, name, action string)) error {
	for _, d := range SecuredFolders {
		if err := ensureDir(b, d, note); err != nil {
			return err
		}
		if err := secureFolder(b, d); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir creates the directory d, and its parents, unless it exists,
// and notes it created.
func ensureDir(b *Backend, d string, note func(kind, name, action string)) error {
	if _, err := b.Files.Stat(d); err == nil {
		return nil
	}
	if err := b.Files.MkdirAll(d); err != nil {
		return fsError("create directory "+d, err)
	}
	note("directory", d, "created")
	return nil
}

// secureFolder gives the folder d AgentFolderSDDL unless it has it.
func secureFolder(b *Backend, d string) error {
	if err := b.Accounts.SecureFolder(d); err != nil {
		return fsError("restrict "+d+" to administrators", err)
	}
	return nil
}

// restrict lets only SYSTEM and Administrators read the file at path, if
// it exists: a file holding credentials.
func restrict(b *Backend, path string) error {
	if _, err := b.Files.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := b.Accounts.RestrictToAdministrators(path); err != nil {
		return fsError("restrict "+path+" to administrators", err)
	}
	return nil
}
