package localenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
)

// Invariants a checker holds the system to. The first two and the last
// three must hold at every instant; the others are eventually consistent
// (the operator removes an orphan a moment after it appears) and count as
// broken when they persist beyond the checker's Grace.
const (
	// InvariantCorruptFile: a payload file on a host exists with another
	// sha256 than its manifest's (an interrupted upload must leave the
	// file absent or whole).
	InvariantCorruptFile = "CorruptFile"
	// InvariantDuplicateService: the host's service manager lists a
	// service twice.
	InvariantDuplicateService = "DuplicateService"
	// InvariantOrphanService: a service on a host that none of the
	// host's plans (in flight, applied, previous) names.
	InvariantOrphanService = "OrphanService"
	// InvariantOrphanNode: a Windows Node no WindowsInstance accounts for.
	InvariantOrphanNode = "OrphanNode"
	// InvariantLeakedBootstrapIdentity: a bootstrap identity (the
	// operator's per-host ServiceAccount, or a bootstrap token Secret)
	// kept for a host that has joined or is gone, or more bootstrap
	// tokens than hosts joining.
	InvariantLeakedBootstrapIdentity = "LeakedBootstrapIdentity"
	// InvariantStuckInstance: an instance in one non-terminal phase for
	// longer than the checker's StuckAfter.
	InvariantStuckInstance = "StuckInstance"
	// InvariantKnownCSRPending: a CSR of a known host's kubelet left
	// pending beyond Grace.
	InvariantKnownCSRPending = "KnownCSRPending"
	// InvariantForeignCSRApproved: a CSR registered with Foreign (no
	// known host's) was approved.
	InvariantForeignCSRApproved = "ForeignCSRApproved"
	// InvariantParallelConfigurations: more hosts were being worked on
	// at once (an agent command running on each) than
	// maxParallelConfigurations allows.
	InvariantParallelConfigurations = "ParallelConfigurations"
)

// Violation is one broken invariant.
type Violation struct {
	// Invariant is one of the Invariant constants.
	Invariant string
	// Object names what broke it (host, Node, instance, CSR).
	Object string
	// Detail says how.
	Detail string
	// At is when it was found (for eventual invariants: when Grace ran
	// out).
	At time.Time
}

func (v Violation) String() string { return v.Invariant + " " + v.Object + ": " + v.Detail }

// InvariantChecker checks an environment's invariants, once (Check) or
// repeatedly (Run), and keeps every violation found. It reads the hosts'
// disks and service managers directly, and the cluster through the
// admin's client. Safe for concurrent use.
type InvariantChecker struct {
	env *Env
	// Hosts lists the hosts to check (default: the environment's
	// Hosts); a caller that adds hosts while the checker runs supplies
	// its own synchronised list. Closed hosts are skipped.
	Hosts func() []*Host
	// Grace is how long an eventual invariant may be broken (default
	// 30 s).
	Grace time.Duration
	// StuckAfter bounds the time an instance stays in one non-terminal
	// phase (default 5 min).
	StuckAfter time.Duration
	// MaxParallel, when positive, is the maxParallelConfigurations the
	// hosts' concurrent agent commands are held to.
	MaxParallel int

	mu         sync.Mutex
	manifests  []*payload.Manifest
	firstSeen  map[string]time.Time
	reported   map[string]bool
	violations []Violation
	phases     map[string]phaseSince
	// sums caches file hashes by host, path, size and modification time.
	sums    map[fileVersion]string
	foreign map[string]bool
	// busy counts the hosts running an agent command at once.
	busy   winsim.BusyCounter
	checks int
}

type fileVersion struct {
	host    *winsim.Host
	path    string
	size    int64
	modTime time.Time
}

type phaseSince struct {
	phase wmcov1.InstancePhase
	since time.Time
}

// NewInvariantChecker returns a checker of e with the default bounds. It
// loads every payload manifest in e.PayloadDir (a payload, or a
// directory of payloads named by version).
func NewInvariantChecker(e *Env) (*InvariantChecker, error) {
	ms, err := loadManifests(e.PayloadDir)
	if err != nil {
		return nil, err
	}
	return &InvariantChecker{
		env: e, manifests: ms, Grace: 30 * time.Second, StuckAfter: 5 * time.Minute,
		firstSeen: map[string]time.Time{}, reported: map[string]bool{}, phases: map[string]phaseSince{},
		foreign: map[string]bool{}, sums: map[fileVersion]string{},
	}, nil
}

// loadManifests loads dir's manifest, or those of its subdirectories.
func loadManifests(dir string) ([]*payload.Manifest, error) {
	if m, err := payload.Load(dir); err == nil {
		return []*payload.Manifest{m}, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*payload.Manifest
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "manifest.json")); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		m, err := payload.Load(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no payload manifest in %s", dir)
	}
	return out, nil
}

// Foreign registers a CSR no known host submitted: it must never be
// approved.
func (c *InvariantChecker) Foreign(csrName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.foreign[csrName] = true
}

// Violations returns every violation found so far.
func (c *InvariantChecker) Violations() []Violation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// Checks counts the completed checks.
func (c *InvariantChecker) Checks() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checks
}

// PeakParallel is the most hosts seen running an agent command at once.
func (c *InvariantChecker) PeakParallel() int { return c.busy.Peak() }

// Run checks every interval until ctx ends; a check that cannot read the
// cluster (the API server restarting) is skipped.
func (c *InvariantChecker) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		_, _ = c.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Stop removes the checker's observers from the hosts.
func (c *InvariantChecker) Stop() { c.busy.Stop() }

func (c *InvariantChecker) hosts() []*Host {
	if c.Hosts != nil {
		return c.Hosts()
	}
	return c.env.Hosts
}

// Check runs every check once and returns the violations it found now.
// Eventual invariants are only reported once broken for longer than Grace.
func (c *InvariantChecker) Check(ctx context.Context) ([]Violation, error) {
	now := time.Now()
	problems, err := c.Current(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks++
	var found []Violation
	present := map[string]bool{}
	for _, p := range problems {
		key := p.Invariant + "|" + p.Object + "|" + p.Detail
		present[key] = true
		if c.reported[key] {
			continue
		}
		first, ok := c.firstSeen[key]
		if !ok {
			c.firstSeen[key] = now
			first = now
		}
		if immediate(p.Invariant) || now.Sub(first) > c.Grace {
			p.At = now
			c.reported[key] = true
			c.violations = append(c.violations, p)
			found = append(found, p)
		}
	}
	for key := range c.firstSeen {
		if !present[key] {
			delete(c.firstSeen, key)
		}
	}
	return found, nil
}

func immediate(invariant string) bool {
	switch invariant {
	case InvariantCorruptFile, InvariantDuplicateService, InvariantForeignCSRApproved, InvariantParallelConfigurations, InvariantStuckInstance:
		return true
	}
	return false
}

// Current returns what is broken at this moment, eventual invariants
// included without their grace: a settled system has none.
func (c *InvariantChecker) Current(ctx context.Context) ([]Violation, error) {
	var out []Violation
	hosts := c.hosts()
	c.observe(hosts)
	for _, h := range hosts {
		out = append(out, c.checkHost(ctx, h)...)
	}
	cl := c.env.Client
	var instances wmcov1.WindowsInstanceList
	if err := cl.List(ctx, &instances); err != nil {
		return nil, fmt.Errorf("list WindowsInstances: %w", err)
	}
	var nodes corev1.NodeList
	if err := cl.List(ctx, &nodes, client.MatchingLabels{corev1.LabelOSStable: "windows"}); err != nil {
		return nil, fmt.Errorf("list Nodes: %w", err)
	}
	var sas corev1.ServiceAccountList
	if err := cl.List(ctx, &sas, client.InNamespace(c.env.Namespace)); err != nil {
		return nil, fmt.Errorf("list ServiceAccounts: %w", err)
	}
	var secrets corev1.SecretList
	if err := cl.List(ctx, &secrets, client.InNamespace(metav1.NamespaceSystem)); err != nil {
		return nil, fmt.Errorf("list Secrets: %w", err)
	}
	var csrs certificatesv1.CertificateSigningRequestList
	if err := cl.List(ctx, &csrs); err != nil {
		return nil, fmt.Errorf("list CSRs: %w", err)
	}
	out = append(out, c.checkCluster(instances.Items, nodes.Items, sas.Items, secrets.Items, csrs.Items)...)
	if peak := c.busy.Peak(); c.MaxParallel > 0 && peak > c.MaxParallel {
		out = append(out, Violation{Invariant: InvariantParallelConfigurations, Object: "hosts",
			Detail: fmt.Sprintf("%d hosts ran agent commands at once; maxParallelConfigurations is %d", peak, c.MaxParallel)})
	}
	return out, nil
}

// observe counts, from each host's side, how many hosts run an agent
// command at once.
func (c *InvariantChecker) observe(hosts []*Host) {
	for _, h := range hosts {
		c.busy.Watch(h.Host)
	}
}

// checkHost checks the payload files and services of one running host.
func (c *InvariantChecker) checkHost(ctx context.Context, h *Host) []Violation {
	if h.Host.State() != winsim.StateUp {
		return nil
	}
	var out []Violation
	disk := h.Host.Disk()
	for _, m := range c.manifests {
		for _, f := range m.Files {
			p := m.HostPath(f.Path)
			got, size, ok := c.sum(h.Host, p)
			if !ok {
				continue // absent (or gone meanwhile): allowed
			}
			if got != f.SHA256 {
				out = append(out, Violation{Invariant: InvariantCorruptFile, Object: h.Name,
					Detail: fmt.Sprintf("%s: sha256 %s, manifest %s says %s (%d bytes)", p, got, m.Version, f.SHA256, size)})
			}
		}
	}
	// Services first, then the plans: a plan is written before its
	// services are created and removed after they are deleted.
	services, err := h.Services.List(ctx)
	if err != nil {
		return out
	}
	planned := map[string]bool{}
	for _, p := range []string{wicdapi.PlanPath, wicdapi.StagePlanPath, wicdapi.AppliedPlanPath, wicdapi.AppliedPlanPreviousPath} {
		data, err := disk.ReadFile(p)
		if err != nil {
			continue
		}
		var plan wicdapi.Plan
		if json.Unmarshal(data, &plan) != nil {
			continue
		}
		for _, s := range plan.Services {
			planned[strings.ToLower(s.Name)] = true
		}
	}
	seen := map[string]bool{}
	for _, s := range services {
		k := strings.ToLower(s)
		if seen[k] {
			out = append(out, Violation{Invariant: InvariantDuplicateService, Object: h.Name, Detail: s})
		}
		seen[k] = true
		if !planned[k] {
			out = append(out, Violation{Invariant: InvariantOrphanService, Object: h.Name, Detail: s + " is in no plan on the host"})
		}
	}
	return out
}

// sum returns the sha256 of a file on a host (cached while its size and
// modification time stay), and false when it does not exist.
func (c *InvariantChecker) sum(h *winsim.Host, p string) (string, int64, bool) {
	fi, err := h.Disk().Stat(p)
	if err != nil || fi.IsDir() {
		return "", 0, false
	}
	k := fileVersion{host: h, path: p, size: fi.Size(), modTime: fi.ModTime()}
	c.mu.Lock()
	s, ok := c.sums[k]
	c.mu.Unlock()
	if ok {
		return s, k.size, true
	}
	data, err := h.Disk().ReadFile(p)
	if err != nil {
		return "", 0, false
	}
	h256 := sha256.Sum256(data)
	s = hex.EncodeToString(h256[:])
	if int64(len(data)) == k.size {
		c.mu.Lock()
		c.sums[k] = s
		c.mu.Unlock()
	}
	return s, int64(len(data)), true
}

// checkCluster checks Nodes, bootstrap identities, instances' phases and
// CSRs.
func (c *InvariantChecker) checkCluster(instances []wmcov1.WindowsInstance, nodes []corev1.Node, sas []corev1.ServiceAccount,
	secrets []corev1.Secret, csrs []certificatesv1.CertificateSigningRequest) []Violation {
	var out []Violation
	now := time.Now()
	byName := map[string]*wmcov1.WindowsInstance{}
	claimed := map[string]string{}
	joining := 0
	for i := range instances {
		wi := &instances[i]
		byName[wi.Name] = wi
		for _, n := range []string{wi.Status.NodeName, wi.Spec.NodeName, strings.ToLower(wi.Status.Host.Hostname)} {
			if n != "" {
				claimed[n] = wi.Name
			}
		}
		if wi.Status.Phase != wmcov1.PhaseReady {
			joining++
		}
	}
	for _, n := range nodes {
		if _, ok := claimed[n.Name]; ok {
			continue
		}
		if owner := n.Labels[wmcov1.LabelInstance]; owner != "" && byName[owner] != nil {
			continue
		}
		out = append(out, Violation{Invariant: InvariantOrphanNode, Object: n.Name, Detail: "no WindowsInstance accounts for this Windows Node"})
	}
	for _, sa := range sas {
		if !strings.HasPrefix(sa.Name, bootstrap.NamePrefix) {
			continue
		}
		owner := sa.Labels[wmcov1.LabelInstance]
		switch wi := byName[owner]; {
		case wi == nil:
			out = append(out, Violation{Invariant: InvariantLeakedBootstrapIdentity, Object: sa.Name, Detail: "kept for instance " + owner + ", which is gone"})
		case wi.Status.Phase == wmcov1.PhaseReady:
			out = append(out, Violation{Invariant: InvariantLeakedBootstrapIdentity, Object: sa.Name, Detail: "kept for instance " + owner + ", which has joined"})
		}
	}
	tokens := 0
	for _, s := range secrets {
		if s.Type == corev1.SecretTypeBootstrapToken {
			tokens++
		}
	}
	if tokens > joining {
		out = append(out, Violation{Invariant: InvariantLeakedBootstrapIdentity, Object: "kube-system",
			Detail: fmt.Sprintf("%d bootstrap tokens for %d hosts joining", tokens, joining)})
	}

	c.mu.Lock()
	for name := range c.phases {
		if byName[name] == nil {
			delete(c.phases, name)
		}
	}
	for _, wi := range instances {
		ph := wi.Status.Phase
		prev, ok := c.phases[wi.Name]
		if !ok || prev.phase != ph {
			c.phases[wi.Name] = phaseSince{phase: ph, since: now}
			continue
		}
		if terminal(ph) {
			continue
		}
		if d := now.Sub(prev.since); d > c.StuckAfter {
			out = append(out, Violation{Invariant: InvariantStuckInstance, Object: wi.Name,
				Detail: fmt.Sprintf("in phase %s since %s (%s): %s", ph, prev.since.UTC().Format(time.TimeOnly), d.Round(time.Second), wi.Status.Message)})
		}
	}
	foreign := c.foreign
	c.mu.Unlock()

	for _, r := range csrs {
		approved := false
		decided := false
		for _, cond := range r.Status.Conditions {
			if cond.Status != corev1.ConditionTrue {
				continue
			}
			decided = true
			approved = approved || cond.Type == certificatesv1.CertificateApproved
		}
		if foreign[r.Name] {
			if approved {
				out = append(out, Violation{Invariant: InvariantForeignCSRApproved, Object: r.Name, Detail: "requested by " + r.Spec.Username})
			}
			continue
		}
		if decided || now.Sub(r.CreationTimestamp.Time) < c.Grace {
			continue
		}
		// A kubelet's own requests (system:node:<name>); a bootstrap
		// request is followed by the node's, which this catches.
		node, ok := strings.CutPrefix(r.Spec.Username, "system:node:")
		if !ok {
			continue
		}
		if owner := byName[claimed[node]]; owner != nil && owner.Status.Phase != wmcov1.PhaseFailed && owner.DeletionTimestamp.IsZero() {
			out = append(out, Violation{Invariant: InvariantKnownCSRPending, Object: r.Name,
				Detail: fmt.Sprintf("%s of instance %s pending since %s", r.Spec.Username, owner.Name, r.CreationTimestamp.UTC().Format(time.TimeOnly))})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func terminal(p wmcov1.InstancePhase) bool {
	return p == wmcov1.PhaseReady || p == wmcov1.PhaseFailed || p == wmcov1.PhasePaused
}
