package instance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/metrics"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// HybridOverlaySubnetAnnotation is where OVN-Kubernetes records a hybrid
// overlay node's pod subnet.
const HybridOverlaySubnetAnnotation = "k8s.ovn.org/hybrid-overlay-node-subnet"

// placeholderToken stands in for the bootstrap token once the node has
// joined: the bootstrap kubeconfig is then left out of the plan.
const placeholderToken = "000000.0000000000000000"

// reconcileConnection reads the SSH key and connects, pinning the host key
// on first use or checking the pinned one.
func (r *Reconciler) reconcileConnection(ctx context.Context, s *scope) (ctrl.Result, error) {
	wi := s.wi
	key, o := r.privateKey(ctx, wi, s.config.CredentialNamespaces)
	if !o.ok {
		setReachableCondition(wi, o)
		r.event(s, true, o.reason, "%s", o.message)
		if o.terminal() {
			return ctrl.Result{}, reconcile.TerminalError(errors.New(o.message))
		}
		return ctrl.Result{}, errors.New(o.message)
	}
	// Stored objects carry the API's default port.
	port := int(wi.Spec.Port)
	target := remote.Target{Address: wi.Spec.Address, Port: port, Username: wi.Spec.Username, PrivateKey: key}
	switch {
	case wi.Spec.HostKey != "":
		target.HostKey = wi.Spec.HostKey
	case wi.Status.HostKey != "":
		target.HostKey = wi.Status.HostKey
	default:
		target.TrustOnFirstUse = true
	}
	ckey := newConnKey(target)
	if sess := r.conns.take(wi.Name, ckey, target.HostKey); sess != nil {
		// The previous reconcile's connection, opened with the same
		// address, user and key, to the pinned host key.
		s.log.V(1).Info("Reusing the connection", "address", wi.Spec.Address, "port", port)
		s.session, s.connKey = sess, ckey
		setReachableCondition(wi, outcome{ok: true, reason: ReasonConnected, message: "connected over SSH"})
		return ctrl.Result{}, nil
	}
	// Kept connections and the ones in use stay within the hosts that
	// may be configured at once (this reconcile's slot included). A host
	// dialled before it takes a slot trims nothing: its connection is
	// parked until it gets one (connCache.park).
	if held, limit, holds := r.slots.usage(wi.Name); holds {
		r.conns.trim(limit - held)
	}
	s.log.V(1).Info("Connecting", "address", wi.Spec.Address, "port", port)
	// While the Secret's key is rotated in, the host may accept only the
	// key it accepted before: dialHost (keys.go) falls back to it.
	sess, err := r.dialHost(ctx, s, target)
	if err != nil {
		metrics.SSHErrors.WithLabelValues(sshErrorType(err)).Inc()
		o := classifyConnectError(err)
		setReachableCondition(wi, o)
		r.event(s, true, o.reason, "%s", o.message)
		if o.terminal() {
			return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("connect to %s: %w", wi.Spec.Address, err))
		}
		if r.retries != nil {
			switch o.reason {
			case ReasonUnreachable:
				r.retries.atLeast(wi.Name, unreachableRetry)
			case ReasonKeyNotAuthorizedYet:
				r.retries.atLeast(wi.Name, keyNotAuthorizedRetry)
			}
		}
		return ctrl.Result{}, fmt.Errorf("connect to %s: %w", wi.Spec.Address, err)
	}
	s.session, s.connKey = sess, ckey
	if wi.Status.HostKey != sess.HostKey() {
		if target.TrustOnFirstUse {
			r.event(s, false, "HostKeyPinned", "Trusting the host key seen on first connection: %s", sess.HostKey())
		}
		wi.Status.HostKey = sess.HostKey()
	}
	setReachableCondition(wi, outcome{ok: true, reason: ReasonConnected, message: "connected over SSH"})
	return ctrl.Result{}, nil
}

// privateKey reads the SSH private key from the instance's Secret. Only
// the operator's namespace and the namespaces the WindowsNodeConfig allows
// (allowed) are read: whoever may create a WindowsInstance must not make
// the operator read a Secret anywhere else.
func (r *Reconciler) privateKey(ctx context.Context, wi *wmcov1.WindowsInstance, allowed []string) (remote.PrivateKey, outcome) {
	ref := r.secretRef(wi)
	if o := credentialsNamespaceAllowed(ref.Namespace, r.Config.Namespace, allowed); !o.ok {
		return nil, o
	}
	sec := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, outcome{reason: ReasonSecretNotFound, message: fmt.Sprintf("Secret %s/%s with the SSH private key does not exist", ref.Namespace, ref.Name)}
		}
		return nil, outcome{reason: ReasonConnectionFailed, message: fmt.Sprintf("read Secret %s/%s: %v", ref.Namespace, ref.Name, err)}
	}
	key := sec.Data[ref.Key]
	if len(key) == 0 {
		return nil, outcome{reason: ReasonInvalidKey, message: fmt.Sprintf("Secret %s/%s has no key %q", ref.Namespace, ref.Name, ref.Key)}
	}
	return remote.PrivateKey(key), outcome{ok: true}
}

// runAgent runs the agent with fixed arguments and decodes its JSON.
func (r *Reconciler) runAgent(ctx context.Context, s *scope, out any, args ...string) error {
	return r.runAgentAt(ctx, s, wicdapi.AgentPath, commandTimeout, out, args...)
}

// runAgentAt runs the agent binary at path with fixed arguments under a
// deadline and decodes its JSON.
func (r *Reconciler) runAgentAt(ctx context.Context, s *scope, path string, timeout time.Duration, out any, args ...string) error {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := s.session.Run(cctx, append([]string{path}, args...))
	if err != nil {
		return fmt.Errorf("wicd %s: %w", args[0], err)
	}
	if res.ExitCode != 0 {
		var eo wicdapi.ErrorOutput
		if json.Unmarshal(res.Stdout, &eo) == nil && eo.Error != nil {
			return fmt.Errorf("wicd %s: %w", args[0], eo.Error)
		}
		return fmt.Errorf("wicd %s: exit status %d: %s", args[0], res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res.Stdout, out); err != nil {
		return fmt.Errorf("wicd %s: decode output: %w", args[0], err)
	}
	return nil
}

// reconcileAgent makes sure the payload's agent answers on the host and
// gathers the host's facts through it.
func (r *Reconciler) reconcileAgent(ctx context.Context, s *scope) (ctrl.Result, error) {
	agent, ok := s.selected.Manifest.File(payloadWICD)
	if !ok {
		return ctrl.Result{}, reconcile.TerminalError(errors.New("the payload has no wicd.exe"))
	}
	facts := &wicdapi.Facts{}
	err := r.runAgent(ctx, s, facts, "facts")
	if err == nil && strings.EqualFold(facts.Files[wicdapi.AgentPath], agent.SHA256) {
		s.facts = facts
	} else {
		if err := r.installAgent(ctx, s, agent, err != nil && r.agentMissing(ctx, s)); err != nil {
			return ctrl.Result{}, err
		}
		facts = &wicdapi.Facts{}
		if err := r.runAgent(ctx, s, facts, "facts"); err != nil {
			setConfiguredCondition(s.wi, outcome{reason: ReasonAgentFailed, message: err.Error()})
			return ctrl.Result{}, err
		}
		s.facts = facts
	}
	wi := s.wi
	s.applied = facts.AppliedPayloadVersion
	if s.applied == "" && facts.Files[wicdapi.AppliedPlanPath] != "" {
		// An agent that does not report it: the status knows.
		s.applied = wi.Status.PayloadVersion
	}
	wi.Status.Host = wmcov1.HostFacts{Hostname: facts.Hostname, OSBuild: int32(facts.OSBuild), Addresses: facts.Addresses}
	want := core.DesiredNodeName(wi, facts.Hostname)
	// A joined host whose spec.hostname changed is renamed like a node:
	// deconfigured here, renamed and rebooted by reconcileHostname, then
	// joined again. Once deconfigured it has no applied plan, so this
	// happens once per change.
	renameHost := wi.Spec.Hostname != "" && !strings.EqualFold(facts.Hostname, wi.Spec.Hostname)
	if wi.Status.NodeName != want || renameHost {
		if wi.Status.NodeName != "" && facts.Files[wicdapi.AppliedPlanPath] != "" {
			// The kubelet's certificate names the old Node and it may
			// register no other: start over under the new name, once
			// the old Node is drained (which may take reconciles).
			if !meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionDraining) {
				if wi.Status.NodeName != want {
					s.log.Info("Renaming node", "from", wi.Status.NodeName, "to", want)
					r.event(s, false, "RenamingNode", "Node name changes from %s to %s: deconfiguring the host to join again", wi.Status.NodeName, want)
				} else {
					s.log.Info("Renaming host", "from", facts.Hostname, "to", wi.Spec.Hostname)
					r.event(s, false, ReasonRenamingHost, "Computer name changes from %s to %s: deconfiguring the host to join again", facts.Hostname, wi.Spec.Hostname)
				}
			}
			for _, c := range []string{wmcov1.ConditionConfigured, wmcov1.ConditionNodeReady} {
				setCondition(wi, c, outcome{reason: ReasonConfigNeeded, message: "joining again as " + want})
			}
			if res, err := r.drain(ctx, s, wi.Status.NodeName); err != nil || !res.IsZero() {
				return res, err
			}
			if err := r.deconfigure(ctx, s, wi.Status.NodeName, false); err != nil {
				return ctrl.Result{}, err
			}
			facts = &wicdapi.Facts{}
			if err := r.runAgent(ctx, s, facts, "facts"); err != nil {
				return ctrl.Result{}, err
			}
			s.facts = facts
		}
		wi.Status.NodeName = want
		return ctrl.Result{}, nil
	}
	// No rename (any more): the drain of one the spec went back on is
	// given up, and the Node uncordoned if the operator cordoned it.
	return ctrl.Result{}, r.endAbandonedDrain(ctx, s)
}

// installAgent puts the payload's agent on the host. Windows refuses to
// replace the agent while its service runs it: the new agent goes to the
// staging path and replaces the old one itself. Where there is none
// (missing), nothing can run it, and it is uploaded into place (the
// upgrade protocol of package wicdapi).
func (r *Reconciler) installAgent(ctx context.Context, s *scope, agent payload.File, missing bool) error {
	dst, msg := wicdapi.AgentStagingPath, "Uploading agent"
	if missing {
		dst, msg = wicdapi.AgentPath, "Installing agent"
	}
	s.log.Info(msg, "path", dst)
	if err := r.upload(ctx, s, s.selected.Dir, agent, dst); err != nil {
		setConfiguredCondition(s.wi, outcome{reason: ReasonPayloadTransferFailed, message: "upload the agent: " + err.Error()})
		return err
	}
	if missing {
		return nil
	}
	s.log.Info("Replacing agent", "path", wicdapi.AgentPath)
	var up wicdapi.SelfUpgradeResult
	if err := r.runAgentAt(ctx, s, wicdapi.AgentStagingPath, wicdapi.SelfUpgradeTimeout, &up, wicdapi.SelfUpgradeArg); err != nil {
		setConfiguredCondition(s.wi, outcome{reason: ReasonAgentFailed, message: "replace the agent: " + err.Error()})
		return err
	}
	if up.Changed && up.From != "" {
		r.event(s, false, "AgentUpgraded", "Agent %s replaced agent %s", up.To, up.From)
	}
	return nil
}

// agentMissing tells whether the host has no agent binary at all, as on
// its first contact: only then may the agent be uploaded over its path.
// A host that cannot tell counts as having one.
func (r *Reconciler) agentMissing(ctx context.Context, s *scope) bool {
	sctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	_, err := s.session.Stat(sctx, wicdapi.AgentPath)
	return errors.Is(err, fs.ErrNotExist)
}

// rebootRequeue is how soon a rebooting host is looked at again: nothing
// can be watched on it.
const rebootRequeue = 20 * time.Second

// reconcileHostname gives the host the computer name spec.hostname asks
// for (on vSphere the Machine's name) before it joins: `wicd set-hostname`
// sets it for the next boot, and the host is rebooted once, by this phase
// or, when the Containers feature is to be enabled too, by the features
// phase for both. Once the host runs under the name, facts say so and the
// phase passes. A host that has joined under another name was deconfigured
// first (reconcileAgent), as for a node rename.
func (r *Reconciler) reconcileHostname(ctx context.Context, s *scope) (ctrl.Result, error) {
	want := s.wi.Spec.Hostname
	if want == "" || (strings.EqualFold(s.facts.Hostname, want) && s.facts.PendingHostname == "") {
		return ctrl.Result{}, nil
	}
	// With the name in effect and another pending (set by someone
	// else), set-hostname cancels the pending one without a reboot.
	var res wicdapi.SetHostnameResult
	if err := r.runAgent(ctx, s, &res, wicdapi.SetHostnameArg, "--name="+want); err != nil {
		setPreflightCondition(s.wi, outcome{reason: ReasonAgentFailed, message: err.Error()})
		return ctrl.Result{}, err
	}
	if !res.RebootRequired {
		return ctrl.Result{}, nil
	}
	if !res.Changed && rebootedFor(s.wi, want) {
		// The name was pending already and the host was rebooted for it:
		// one reboot per name, never a loop of them. The host has not
		// rebooted yet (a reboot is on its way) or Windows kept the old
		// name; either way a person has to look.
		msg := stuckRenameMessage(want, s.facts.Hostname)
		setPreflightCondition(s.wi, outcome{reason: ReasonHostnameNotApplied, message: msg})
		r.event(s, true, ReasonHostnameNotApplied, "%s", msg)
		return ctrl.Result{RequeueAfter: 5 * time.Minute}, nil
	}
	if !s.facts.Features[featureContainers] {
		// The features phase reboots for both.
		s.hostnamePending = want
		return ctrl.Result{}, nil
	}
	s.log.Info("Rebooting host to set its computer name", "from", s.facts.Hostname, "to", want)
	r.event(s, false, ReasonRenamingHost, "Set the computer name to %s (was %s); rebooting the host", want, s.facts.Hostname)
	if err := r.reboot(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	setPreflightCondition(s.wi, outcome{reason: ReasonRenamingHost, message: renamingMessage(want)})
	return ctrl.Result{RequeueAfter: rebootRequeue}, nil
}

// renamingMessage is the PreflightPassed message while the host reboots
// to take the computer name name.
func renamingMessage(name string) string {
	return "setting the computer name to " + name + "; rebooting"
}

// stuckRenameMessage is the PreflightPassed message when the host still
// runs as current after the reboot for the computer name name.
func stuckRenameMessage(name, current string) string {
	return "rebooted for the computer name " + name + "; the host still runs as " + current +
		" (the name waits for the next boot): reboot the host"
}

// rebootedFor reports whether the instance's status says the host was
// rebooted to take the computer name name.
func rebootedFor(wi *wmcov1.WindowsInstance, name string) bool {
	c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionPreflightPassed)
	if c == nil {
		return false
	}
	switch c.Reason {
	case ReasonRenamingHost, ReasonRebooting:
		return strings.Contains(c.Message, renamingMessage(name))
	case ReasonHostnameNotApplied:
		return strings.Contains(c.Message, "computer name "+name+";")
	}
	return false
}

// reboot restarts the host with `shutdown.exe /r /t 5`; a connection lost
// under the command is the reboot under way, and so is a reboot scheduled
// already (exit status 1190). Windows reboots 5 s later and answers
// meanwhile: status.reboot tells reconcileReboot to wait for a new boot.
func (r *Reconciler) reboot(ctx context.Context, s *scope) error {
	s.dropSession = true
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	res, err := s.session.Run(cctx, []string{"shutdown.exe", "/r", "/t", "5"})
	switch {
	case err != nil && !errors.Is(err, remote.ErrConnectionLost):
		return fmt.Errorf("reboot: %w", err)
	case err == nil && res.ExitCode != 0 && res.ExitCode != shutdownAlreadyScheduled:
		return fmt.Errorf("reboot: shutdown.exe exit status %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	r.requestedReboot(s)
	return nil
}

// shutdownAlreadyScheduled is shutdown.exe's exit status when a shutdown
// is scheduled already (ERROR_SHUTDOWN_IS_SCHEDULED).
const shutdownAlreadyScheduled = 1190

// reconcileFeatures enables the Containers feature, rebooting the host when
// Windows asks for it (or a computer name set by reconcileHostname waits
// for a boot); the reboot is waited out with a requeue.
func (r *Reconciler) reconcileFeatures(ctx context.Context, s *scope) (ctrl.Result, error) {
	if s.facts.Features[featureContainers] {
		return ctrl.Result{}, nil
	}
	var res wicdapi.EnableFeaturesResult
	if err := r.runAgent(ctx, s, &res, "enable-features"); err != nil {
		setPreflightCondition(s.wi, outcome{reason: ReasonAgentFailed, message: err.Error()})
		return ctrl.Result{}, err
	}
	if !res.RebootRequired && s.hostnamePending == "" {
		return ctrl.Result{}, nil
	}
	why := "enable " + strings.Join(res.Enabled, ", ")
	if !res.RebootRequired {
		why = ""
	}
	if s.hostnamePending != "" {
		if why != "" {
			why += " and "
		}
		why += renamingMessage(s.hostnamePending)
		r.event(s, false, ReasonRenamingHost, "Set the computer name to %s (was %s); rebooting the host", s.hostnamePending, s.facts.Hostname)
	}
	s.log.Info("Rebooting host", "features", res.Enabled, "hostname", s.hostnamePending)
	r.event(s, false, "Rebooting", "Rebooting the host to %s", why)
	if err := r.reboot(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	setPreflightCondition(s.wi, outcome{reason: ReasonRebooting, message: "rebooting to " + why})
	return ctrl.Result{RequeueAfter: rebootRequeue}, nil
}

// preflightRequeue is how soon a host that failed a preflight check an
// admin fixes on the host (free disk space, its clock) is checked again:
// nothing on the host can be watched. It was 2 minutes, which the fault
// matrix's full disk, freed within a second of the failure, waited out.
const preflightRequeue = 30 * time.Second

// reconcilePreflight runs the agent's checks. Terminal failures (an
// unsupported OS build, a hostname that cannot be a node name) wait for a
// change of the spec; the others are retried.
func (r *Reconciler) reconcilePreflight(ctx context.Context, s *scope) (ctrl.Result, error) {
	var res wicdapi.PreflightResult
	if err := r.runAgent(ctx, s, &res, "preflight", "--reference-time="+r.Now().UTC().Format(time.RFC3339)); err != nil {
		setPreflightCondition(s.wi, outcome{reason: ReasonAgentFailed, message: err.Error()})
		return ctrl.Result{}, err
	}
	for _, c := range res.Checks {
		// The hostname matters only when the Node is named after it.
		if c.Passed || (c.Name == wicdapi.CheckHostname && (s.wi.Spec.NodeName != "" || s.wi.Spec.Hostname != "")) {
			continue
		}
		o := outcome{reason: c.Reason, message: c.Message}
		setPreflightCondition(s.wi, o)
		r.event(s, true, "PreflightFailed", "%s: %s", c.Name, c.Message)
		if o.terminal() {
			return ctrl.Result{}, reconcile.TerminalError(errors.New(c.Message))
		}
		return ctrl.Result{RequeueAfter: preflightRequeue}, nil
	}
	setPreflightCondition(s.wi, outcome{ok: true, reason: ReasonPreflightPassed, message: "every preflight check passed"})
	return ctrl.Result{}, nil
}

// reconcilePayload puts the target payload's files into its versioned
// folder on the host: files whose content the host already has (in the
// previous payload's folder) are copied there by the agent, and only the
// others cross the wire.
func (r *Reconciler) reconcilePayload(ctx context.Context, s *scope) (ctrl.Result, error) {
	m := s.target.Manifest
	if m == nil {
		return ctrl.Result{}, nil
	}
	copies, uploads := stagePayload(m, s.facts.Files)
	if len(copies) == 0 && len(uploads) == 0 {
		return ctrl.Result{}, nil
	}
	var size int64
	for _, f := range uploads {
		size += f.Size
	}
	configured := meta.IsStatusConditionTrue(s.wi.Status.Conditions, wmcov1.ConditionConfigured)
	setConfiguredCondition(s.wi, outcome{reason: ReasonPayloadTransfer, message: fmt.Sprintf("uploading %d payload files (%d bytes), copying %d on the host", len(uploads), size, len(copies))})
	if len(copies) > 0 {
		s.log.Info("Staging payload from files on the host", "files", len(copies), "version", m.Version)
		data, err := json.Marshal(wicdapi.StagePlan{Copies: copies})
		if err != nil {
			return ctrl.Result{}, err
		}
		sum := sha256.Sum256(data)
		uctx, cancel := context.WithTimeout(ctx, commandTimeout)
		err = s.session.Upload(uctx, wicdapi.StagePlanPath, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:]))
		cancel()
		if err != nil {
			setConfiguredCondition(s.wi, outcome{reason: ReasonPayloadTransferFailed, message: "upload the staging plan: " + err.Error()})
			return ctrl.Result{}, err
		}
		var res wicdapi.StageResult
		plan := wicdapi.StagePlan{Copies: copies}
		if err := r.runAgentAt(ctx, s, wicdapi.AgentPath, wicdapi.StageTimeout(&plan), &res, wicdapi.StageArg, "--plan", wicdapi.StagePlanPath); err != nil {
			setConfiguredCondition(s.wi, outcome{reason: ReasonPayloadTransferFailed, message: err.Error()})
			return ctrl.Result{}, r.diskFull(s, err)
		}
	}
	if len(uploads) > 0 {
		s.log.Info("Uploading payload", "files", len(uploads), "bytes", size, "version", m.Version)
		if !configured {
			// The transfer takes seconds to minutes: a host being
			// configured says so while it runs. A configured host (an
			// upgrade, a file repaired) shows nothing until the end.
			r.publish(ctx, s, wmcov1.ConditionConfigured)
		}
	}
	if err := r.uploadAll(ctx, s, uploads); err != nil {
		setConfiguredCondition(s.wi, outcome{reason: ReasonPayloadTransferFailed, message: err.Error()})
		return ctrl.Result{}, r.diskFull(s, err)
	}
	r.event(s, false, "PayloadUploaded", "Payload %s: uploaded %d files (%d bytes), copied %d already on the host", m.Version, len(uploads), size, len(copies))
	return ctrl.Result{}, nil
}

// diskFull counts and reports a full disk; it returns err.
func (r *Reconciler) diskFull(s *scope, err error) error {
	var full *remote.DiskFullError
	var we *wicdapi.Error
	if errors.As(err, &full) || (errors.As(err, &we) && we.Code == wicdapi.CodeDiskFull) {
		metrics.SSHErrors.WithLabelValues("diskfull").Inc()
		r.event(s, true, "DiskFull", "%v", err)
	}
	return err
}

// stagePayload sorts the files of m that the host lacks in m's folder
// (hostFiles maps host paths to sha256, as facts report them) into local
// copies of a file with the same content elsewhere under the payload
// root or at the agent's path, and uploads of the rest.
func stagePayload(m *payload.Manifest, hostFiles map[string]string) (copies []wicdapi.StageCopy, uploads []payload.File) {
	have := foldKeys(hostFiles)
	bySum := map[string]string{}
	root := strings.ToLower(wicdapi.PayloadRoot) + `\`
	for p, sum := range hostFiles {
		// The agent is the payload's wicd.exe once reconcileAgent has
		// made it current: a copy on the host, not a second upload.
		if strings.HasPrefix(strings.ToLower(p), root) || strings.EqualFold(p, wicdapi.AgentPath) {
			sum = strings.ToLower(sum)
			if cur, ok := bySum[sum]; !ok || p < cur {
				bySum[sum] = p // the same choice on every run
			}
		}
	}
	for _, f := range m.Files {
		dst := payload.HostPath(m.Version, f.Path)
		if strings.EqualFold(have[strings.ToLower(dst)], f.SHA256) {
			continue
		}
		if src, ok := bySum[strings.ToLower(f.SHA256)]; ok {
			copies = append(copies, wicdapi.StageCopy{From: src, To: dst, SHA256: f.SHA256})
			continue
		}
		uploads = append(uploads, f)
	}
	return copies, uploads
}

// payloadUploads is how many payload files send their bytes at once over
// the host's one connection. Each upload ends with steps that move no
// payload bytes (the host hashes the file, then it is renamed into
// place): with one file at a time the link idled through them, about a
// tenth of a second per file on the simulated hosts; with two another
// file's bytes flow meanwhile. The files share the link, so more would
// only make each slower, and each holds a buffer of one SFTP request
// (128 KiB) in the operator: three at once raised the operator's peak in
// a 50-host join from 81 to 89 MiB without a faster join.
const payloadUploads = 2

// payloadVerifies is how many more uploads may be past their last byte,
// verified on the host and renamed into place, while payloadUploads
// others send theirs: a file's hash on the host (a few tenths of a second
// for 12 MiB) then overlaps the next files' transfer instead of holding
// its turn on the link.
const payloadVerifies = payloadUploads

// uploadAll uploads the target payload's files into its folder on the
// host, payloadUploads sending bytes at a time and up to payloadVerifies
// more being verified; the first failure stops the others.
func (r *Reconciler) uploadAll(ctx context.Context, s *scope, files []payload.File) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	next := make(chan payload.File)
	link := make(chan struct{}, payloadUploads)
	for range min(payloadUploads+payloadVerifies, len(files)) {
		wg.Go(func() {
			for f := range next {
				select {
				case link <- struct{}{}:
				case <-ctx.Done():
					continue // uploadAll returns ctx's error
				}
				var once sync.Once
				sent := func() { once.Do(func() { <-link }) }
				err := r.upload(withBytesSent(ctx, sent), s, s.target.Dir, f, payload.HostPath(s.target.Manifest.Version, f.Path))
				sent()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
feed:
	for _, f := range files {
		select {
		case next <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil {
		// Cancelled from outside before every file was handed out.
		first = ctx.Err()
	}
	return first
}

func (r *Reconciler) upload(ctx context.Context, s *scope, dir string, f payload.File, dst string) error {
	// A file the payload's Load verified, unchanged since, is not hashed
	// again as it is sent (the host hashes what it received either way):
	// hashing every file for every host was a fifth of the operator's CPU
	// in a 10-host join's profile.
	src, err := payload.Open(dir, f)
	if err != nil {
		return fmt.Errorf("open payload file %s: %w", f.Path, err)
	}
	defer func() { _ = src.Close() }()
	uctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	return s.session.Upload(uctx, dst, src, f.Size, f.SHA256)
}

// reconcilePlan renders the host's plan and applies it when the host's
// applied plan differs.
func (r *Reconciler) reconcilePlan(ctx context.Context, s *scope) (ctrl.Result, error) {
	wi := s.wi
	node, err := r.getNode(ctx, wi.Status.NodeName)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.node = node
	joined := node != nil && core.OwnsNode(wi, node)
	m := s.target.Manifest
	if m == nil {
		// The host runs a payload the operator no longer ships, waiting
		// for its upgrade: leave it as it is.
		setConfiguredCondition(wi, outcome{ok: true, reason: ReasonPlanApplied, message: "the host runs payload " + s.applied + " (waiting for its upgrade)"})
		return ctrl.Result{}, nil
	}
	cluster := s.cluster
	cluster.KubernetesVersion = s.server

	token := placeholderToken
	if !joined {
		if token, err = r.Tokens.Issue(ctx, wi); err != nil {
			return ctrl.Result{}, err
		}
	}
	in := nodeconfig.Inputs{
		Config: s.config, Cluster: cluster, Host: nodeconfig.HostFactsFrom(*s.facts),
		NodeName: wi.Status.NodeName, Payload: m, BootstrapToken: token,
		NodeLabels:    map[string]string{wmcov1.LabelInstance: wi.Name},
		CloudProvider: wi.Spec.CloudProvider,
	}
	if joined {
		in.HostSubnet, _ = r.hostSubnet(s, node)
	}
	if r.ExporterCertificates != nil {
		if in.ExporterTLS, s.exporterRenewAt, err = r.ExporterCertificates.ExporterTLS(ctx, wi.Status.NodeName, s.facts.Addresses); err != nil {
			// Transient (the API server) or fixed by an admin (a broken
			// CA Secret, whose change brings a retry): retried.
			setConfiguredCondition(wi, outcome{reason: ReasonRenderFailed, message: "windows_exporter's certificate: " + err.Error()})
			return ctrl.Result{}, err
		}
	}
	plan, err := nodeconfig.Render(in)
	if err != nil {
		setConfiguredCondition(wi, outcome{reason: ReasonRenderFailed, message: err.Error()})
		r.event(s, true, ReasonRenderFailed, "%v", err)
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	if joined {
		// The kubelet has its own credentials: leave the old bootstrap
		// kubeconfig alone rather than rewrite it with a placeholder.
		plan.Files = slices.DeleteFunc(plan.Files, func(f wicdapi.File) bool { return f.Path == nodeconfig.BootstrapKubeconfigPath })
	}
	data, err := json.Marshal(plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	sum := sha256.Sum256(data)
	// Apply saves its plan before it changes anything: the plan is in
	// place only if the last apply of it did not fail.
	saved := strings.EqualFold(s.facts.Files[wicdapi.AppliedPlanPath], hex.EncodeToString(sum[:]))
	if saved && s.facts.ApplyError == nil {
		setConfiguredCondition(wi, outcome{ok: true, reason: ReasonPlanApplied, message: "the host runs payload " + m.Version})
		s.applied = m.Version
		return ctrl.Result{}, r.upgradeApplied(ctx, s)
	}
	if saved {
		// The plan's last apply failed or did not finish (the operator
		// was restarted, or the connection dropped, while it ran).
		s.log.Info("Applying plan again", "version", m.Version, "hostSubnet", in.HostSubnet, "lastApply", string(s.facts.ApplyError.Code))
	} else {
		s.log.Info("Applying plan", "version", m.Version, "hostSubnet", in.HostSubnet)
	}
	if wi.Status.Upgrade == nil && !meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionConfigured) {
		// The services start one after the other (seconds each): a host
		// being configured says so while the apply runs, not what the
		// step before it did. A configured host's re-apply shows nothing,
		// nor does an upgrade's (reconcilePayload set Configured to false
		// for its upload): it publishes its own steps, as in showProgress.
		setConfiguredCondition(wi, outcome{reason: ReasonApplyingPlan, message: "applying the node configuration of payload " + m.Version})
		r.publish(ctx, s, wmcov1.ConditionConfigured)
	}
	uctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := s.session.Upload(uctx, wicdapi.PlanPath, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:])); err != nil {
		setConfiguredCondition(wi, outcome{reason: ReasonApplyFailed, message: "upload plan: " + err.Error()})
		return ctrl.Result{}, err
	}
	var res wicdapi.ApplyResult
	// Each step on the host (a service start or stop, a firewall rule)
	// has its own deadline; the command's is their sum.
	if err := r.runAgentAt(ctx, s, wicdapi.AgentPath, wicdapi.ApplyTimeout(plan), &res, "apply", "--plan", wicdapi.PlanPath); err != nil {
		if ctx.Err() != nil {
			// The operator is stopping: not the host's failure. The
			// host records the apply as unfinished; the next operator
			// applies the plan again.
			return ctrl.Result{}, err
		}
		setConfiguredCondition(wi, outcome{reason: ReasonApplyFailed, message: err.Error()})
		r.event(s, true, ReasonApplyFailed, "%v", err)
		return r.upgradeApplyFailed(ctx, s, err)
	}
	r.event(s, false, "PlanApplied", "Applied payload %s: %d changes", m.Version, len(res.Changes))
	// The apply took seconds (service starts): the Node may have
	// registered or turned Ready meanwhile (the kubelet reports Ready as
	// soon as the CNI configuration is written). The node phase acts on
	// the Node as it is now rather than leaving it to the next reconcile.
	if node, err := r.getNode(ctx, wi.Status.NodeName); err == nil {
		s.node = node
	}
	if !s.replanned && wi.Status.Upgrade == nil && in.HostSubnet == "" && s.node != nil {
		if subnet, assigned := r.hostSubnet(s, s.node); assigned && subnet == "" {
			// The Node registers with its instance label and is cached
			// from then on; its subnet comes in an update the cache may
			// not have yet (by tens of milliseconds, on a busy API
			// server). This one read of it spares a reconcile that
			// gathers the host's facts again.
			node := &corev1.Node{}
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s.node), node); err == nil {
				s.node = node
			}
		}
	}
	setConfiguredCondition(wi, outcome{ok: true, reason: ReasonPlanApplied, message: "the host runs payload " + m.Version})
	s.applied = m.Version
	if subnet, ok := r.replanSubnet(s, in.HostSubnet); ok {
		// The kubelet registered while the services started and the Node
		// has its subnet now: the plan with the CNI configuration and
		// kube-proxy goes on at once, not after another reconcile has
		// gathered the host's facts again.
		s.replanned = true
		s.log.Info("The Node registered during the apply; applying the plan with its subnet", "hostSubnet", subnet)
		return r.reconcilePlan(ctx, s)
	}
	return ctrl.Result{}, r.upgradeApplied(ctx, s)
}

// replanSubnet returns the subnet, and true, when a plan rendered with
// rendered as host subnet should be rendered and applied again in the
// same reconcile: once, when the instance's Node (s.node, read after the
// apply) has a subnet the plan lacked. Never during an upgrade, whose
// steps follow each apply.
func (r *Reconciler) replanSubnet(s *scope, rendered string) (string, bool) {
	if s.replanned || s.wi.Status.Upgrade != nil || s.node == nil || !core.OwnsNode(s.wi, s.node) {
		return "", false
	}
	subnet, _ := r.hostSubnet(s, s.node)
	return subnet, subnet != "" && subnet != rendered
}

// hostSubnet is the pod subnet of the host whose Node is node under the
// configured network type ("" while it is not known), and whether that
// type assigns hosts one at all (not None).
func (r *Reconciler) hostSubnet(s *scope, node *corev1.Node) (subnet string, assigned bool) {
	switch s.config.Network.Type {
	case wmcov1.NetworkOVNHybridOverlay:
		return hostSubnet(node, r.Config.Platform), true
	case wmcov1.NetworkFlannel:
		// Node IPAM's assignment, which flanneld's kube subnet manager
		// reads too.
		return node.Spec.PodCIDR, true
	}
	return "", false
}

// hostSubnet is the node's pod subnet: OVN-Kubernetes' hybrid overlay
// annotation, else, on plain Kubernetes, the Node's podCIDR (node IPAM).
// On OpenShift only OVN-Kubernetes assigns Windows nodes their subnet: a
// podCIDR there is not the hybrid overlay's, and a plan rendered with it
// would give the host a CNI configuration and a kube-proxy source VIP
// that the next plan takes back.
func hostSubnet(node *corev1.Node, platform cluster.Platform) string {
	if s := node.Annotations[HybridOverlaySubnetAnnotation]; s != "" || platform == cluster.OpenShift {
		return s
	}
	return node.Spec.PodCIDR
}

func (r *Reconciler) getNode(ctx context.Context, name string) (*corev1.Node, error) {
	if name == "" {
		return nil, nil
	}
	node := &corev1.Node{}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, node)
	if apierrors.IsNotFound(err) {
		// The cache may hold only the operator's Nodes: a Node of that
		// name that is not ours is seen only by a live read.
		err = r.APIReader.Get(ctx, client.ObjectKey{Name: name}, node)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Node %s: %w", name, err)
	}
	return node, nil
}

// ownedNode is the Node name when it exists and the instance owns it
// (core.OwnsNode), else nil.
func (r *Reconciler) ownedNode(ctx context.Context, wi *wmcov1.WindowsInstance, name string) (*corev1.Node, error) {
	node, err := r.getNode(ctx, name)
	if err != nil || node == nil || !core.OwnsNode(wi, node) {
		return nil, err
	}
	return node, nil
}

// reconcileNode waits for the Node, then labels, annotates and taints it,
// and revokes the bootstrap token once it is Ready.
func (r *Reconciler) reconcileNode(ctx context.Context, s *scope) (ctrl.Result, error) {
	wi, node := s.wi, s.node
	if node == nil {
		setNodeReadyCondition(wi, outcome{reason: ReasonNodeNotFound, message: fmt.Sprintf("waiting for the kubelet to register Node %s", wi.Status.NodeName)})
		if u := wi.Status.Upgrade; u != nil {
			return r.upgradeNodeNotReady(ctx, s, u, "the Node does not exist")
		}
		// The Node watch brings the next reconcile; the requeue is a
		// safety net for a kubelet that never registers.
		return ctrl.Result{RequeueAfter: 2 * time.Minute}, nil
	}
	if !core.OwnsNode(wi, node) {
		msg := fmt.Sprintf("Node %s exists but belongs to another host; set spec.nodeName", node.Name)
		setNodeReadyCondition(wi, outcome{reason: ReasonNodeNameConflict, message: msg})
		r.event(s, true, ReasonNodeNameConflict, "%s", msg)
		return ctrl.Result{}, reconcile.TerminalError(errors.New(msg))
	}
	if err := r.labelAndTaint(ctx, s, node); err != nil {
		return ctrl.Result{}, err
	}
	wi.Status.PayloadVersion = s.applied
	wi.Status.KubeletVersion = node.Status.NodeInfo.KubeletVersion
	ready := nodeReadyCondition(node)
	if ready == nil || ready.Status != corev1.ConditionTrue {
		msg := "the Node is not Ready"
		if ready != nil && ready.Message != "" {
			msg = "the Node is not Ready: " + ready.Message
		}
		setNodeReadyCondition(wi, outcome{reason: ReasonNodeNotReady, message: msg})
		if u := wi.Status.Upgrade; u != nil {
			return r.upgradeNodeNotReady(ctx, s, u, msg)
		}
		// The Node watch brings the next reconcile.
		return ctrl.Result{RequeueAfter: 5 * time.Minute}, nil
	}
	wasReady := meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionNodeReady)
	setNodeReadyCondition(wi, outcome{ok: true, reason: ReasonNodeReady, message: fmt.Sprintf("Node %s is Ready", node.Name)})
	if !wasReady {
		r.event(s, false, "NodeJoined", "Node %s is Ready", node.Name)
		if !meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReady) {
			metrics.ConfigurationDuration.Observe(r.Now().Sub(wi.CreationTimestamp.Time).Seconds())
		}
	}
	if err := r.Tokens.Revoke(ctx, wi.Name); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

func nodeReadyCondition(node *corev1.Node) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == corev1.NodeReady {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// labelAndTaint puts the operator's labels, annotation and the configured
// taints on the Node; the kubelet may set none of them itself after
// registration. Taints it does not own (the cloud controller manager's
// node.cloudprovider.kubernetes.io/uninitialized, the node lifecycle
// controller's) are kept as they are.
func (r *Reconciler) labelAndTaint(ctx context.Context, s *scope, node *corev1.Node) error {
	source := s.wi.Labels[wmcov1.LabelSource]
	if source == "" {
		source = "user"
	}
	want := map[string]string{
		wmcov1.LabelOSID: "Windows", wmcov1.LabelWorkerRole: "", wmcov1.LabelInstance: s.wi.Name, wmcov1.LabelSource: source,
	}
	base := node.DeepCopy()
	changed, taintsChanged := false, false
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	for k, v := range want {
		if cur, ok := node.Labels[k]; !ok || cur != v {
			node.Labels[k], changed = v, true
		}
	}
	if s.applied != "" && node.Annotations[wmcov1.AnnotationPayloadVersion] != s.applied {
		if node.Annotations == nil {
			node.Annotations = map[string]string{}
		}
		node.Annotations[wmcov1.AnnotationPayloadVersion], changed = s.applied, true
	}
	for _, t := range s.config.Taints {
		i := slices.IndexFunc(node.Spec.Taints, func(n corev1.Taint) bool { return n.Key == t.Key && string(n.Effect) == string(t.Effect) })
		switch {
		case i < 0:
			node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
			changed, taintsChanged = true, true
		case node.Spec.Taints[i].Value != t.Value:
			node.Spec.Taints[i].Value, changed, taintsChanged = t.Value, true, true
		}
	}
	if !changed {
		return nil
	}
	patch := client.MergeFrom(base)
	if taintsChanged {
		// A merge patch replaces the whole taint list with the one read
		// from the cache: a taint another controller removed or added
		// meanwhile (the cloud controller manager's uninitialized
		// taint) would come back or go. The resourceVersion makes such
		// a patch fail with a conflict instead, and it is retried.
		patch = client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	}
	if err := r.Client.Patch(ctx, node, patch); err != nil {
		return fmt.Errorf("label and taint Node %s: %w", node.Name, err)
	}
	return nil
}

// reconcileDelete drains the Node, cleans the host and deletes the Node,
// then lets the instance go. The drain takes as many reconciles as the
// pods take to leave.
func (r *Reconciler) reconcileDelete(ctx context.Context, s *scope) (ctrl.Result, error) {
	wi := s.wi
	if !controllerutil.ContainsFinalizer(wi, wmcov1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if wi.Spec.Paused {
		// The host is left alone, but its bootstrap identity goes
		// (API server only): a later instance of the same name must not
		// find it bound and able to create CSRs.
		if err := r.Tokens.Revoke(ctx, wi.Name); err != nil {
			return ctrl.Result{}, err
		}
		r.event(s, true, "DeletedWhilePaused", "The instance was paused: the host was not cleaned and its Node was left; its bootstrap credentials were revoked")
		return ctrl.Result{}, r.removeFinalizer(ctx, wi)
	}
	// The drain needs only the API server: while it waits for pods to
	// leave, the host is not connected to.
	if res, err := r.drain(ctx, s, wi.Status.NodeName); err != nil || !res.IsZero() {
		return res, err
	}
	if wi.Status.HostKey != "" {
		if _, err := r.reconcileConnection(ctx, s); err != nil {
			// A host that cannot be reached cannot be cleaned; keep
			// trying, unless the host is to be given up.
			if why := wi.Annotations[wmcov1.AnnotationAbandonHost]; why != "" {
				return ctrl.Result{}, r.abandonHost(ctx, s, why, err)
			}
			return ctrl.Result{RequeueAfter: time.Minute}, nil
		}
	}
	// Without a connection that ever succeeded, nothing was installed:
	// deconfigure then only deletes the Node, if any.
	if err := r.deconfigure(ctx, s, wi.Status.NodeName, true); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.removeFinalizer(ctx, wi)
}

// deconfigure undoes what the operator did for the Node nodeName, once
// drained (see drain): it runs wicd cleanup on the host (s.session, when
// connected), deletes the Node and revokes the bootstrap tokens. With
// removeAgent the agent binary and the plan go too.
func (r *Reconciler) deconfigure(ctx context.Context, s *scope, nodeName string, removeAgent bool) error {
	wi := s.wi
	node, err := r.ownedNode(ctx, wi, nodeName)
	if err != nil {
		return err
	}
	var res wicdapi.CleanupResult
	if s.session != nil {
		sctx, cancel := context.WithTimeout(ctx, commandTimeout)
		_, statErr := s.session.Stat(sctx, wicdapi.AgentPath)
		cancel()
		switch {
		case statErr == nil:
			// Files still held by processes (a pod's container that
			// survived the drain) are waited for a short while; then
			// cleanup fails with CodeFileInUse naming them, and the
			// reconcile is retried. A cleanup whose session dropped while
			// it removed HNS networks is retried alike.
			if err := r.runAgentAt(ctx, s, wicdapi.AgentPath, cleanupTimeout, &res, "cleanup", "--file-wait="+cleanupFileWait.String()); err != nil {
				// The status says what holds the host up (a file in use
				// names the file and the process holding it).
				setConfiguredCondition(wi, outcome{reason: ReasonCleanupFailed, message: err.Error()})
				r.event(s, true, ReasonCleanupFailed, "%v", err)
				return err
			}
		case errors.Is(statErr, fs.ErrNotExist):
			// No agent: the operator never installed anything here.
		default:
			return fmt.Errorf("look for the agent: %w", statErr)
		}
		if removeAgent {
			for _, p := range []string{wicdapi.AgentPath, wicdapi.PlanPath} {
				rctx, cancel := context.WithTimeout(ctx, commandTimeout)
				err := s.session.Remove(rctx, p)
				cancel()
				if err != nil {
					return fmt.Errorf("remove %s: %w", p, err)
				}
			}
		}
	}
	if err := r.releaseNode(ctx, wi, node); err != nil {
		return err
	}
	r.event(s, false, "Deconfigured", "Removed %d services, files and networks from the host", len(res.Changes))
	return nil
}

// releaseNode deletes the instance's own node (ownedNode), if any, and
// revokes the instance's bootstrap credentials: what deconfiguring does
// in the cluster.
func (r *Reconciler) releaseNode(ctx context.Context, wi *wmcov1.WindowsInstance, node *corev1.Node) error {
	if node != nil {
		if err := r.Client.Delete(ctx, node); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Node %s: %w", node.Name, err)
		}
	}
	return r.Tokens.Revoke(ctx, wi.Name)
}

// abandonHost lets a deleted instance whose host cannot be reached (why
// not: connErr) go uncleaned, as wmcov1.AnnotationAbandonHost (why) asks,
// once drained: its Node is deleted and its bootstrap credentials
// revoked, and a Warning Event says what stays on the host.
func (r *Reconciler) abandonHost(ctx context.Context, s *scope, why string, connErr error) error {
	wi := s.wi
	node, err := r.ownedNode(ctx, wi, wi.Status.NodeName)
	if err != nil {
		return err
	}
	if err := r.releaseNode(ctx, wi, node); err != nil {
		return err
	}
	deleted := "no Node of its own to delete"
	if node != nil {
		deleted = "deleted Node " + node.Name
	}
	s.log.Info("Gave the host up uncleaned", "reason", why, "connectError", connErr.Error())
	r.event(s, true, ReasonHostAbandoned, "Gave the host at %s up uncleaned (%s %q), as it cannot be reached (%v): %s and revoked its bootstrap credentials; "+
		"the services and files the operator installed stay on the host, and if its kubelet still runs it registers its Node again",
		wi.Spec.Address, wmcov1.AnnotationAbandonHost, why, connErr, deleted)
	return r.removeFinalizer(ctx, wi)
}

func (r *Reconciler) removeFinalizer(ctx context.Context, wi *wmcov1.WindowsInstance) error {
	patch := client.MergeFrom(wi.DeepCopy())
	controllerutil.RemoveFinalizer(wi, wmcov1.Finalizer)
	if err := r.Client.Patch(ctx, wi, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}
