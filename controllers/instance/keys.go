package instance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// SSH key rotation without downtime. status.authorizedKeyFingerprint is
// the key the host is known to accept. When the credentials Secret holds
// another key, the connection phase (dialHost) tries the Secret's key and,
// if the host refuses it, the previous key, read from the key history
// Secret; the keys phase (reconcileKeys), once the agent is in place, adds
// the new public key on the host, checks a login with it in a new session,
// removes the previous key through that session and records the new
// fingerprint. Nothing else on the host changes: no drain, no service is
// touched, so the Node stays Ready.

// KeyHistorySecretName is the Secret in the operator's namespace that
// keeps every SSH private key a host was last known to accept, so that a
// host can be reached with its previous key while the credentials Secret
// already holds the next one. Its data is keyed by historyDataKey of the
// key's fingerprint. The operator adds a key when it first logs in with
// it, and removes it once no instance's status names it and no instance's
// credentials Secret holds it.
const KeyHistorySecretName = "wmco-ssh-key-history"

// ReasonKeyRotationFailed says that the host refuses both the credentials
// Secret's key and the key it accepted before (or that key is no longer
// kept). It is terminal until the Secret changes.
const ReasonKeyRotationFailed = "KeyRotationFailed"

// ReasonKeyRotationStepFailed says that a step of a key rotation
// (installing the new key, logging in with it, removing the previous one)
// failed; it is retried. The host stays reachable with the previous key
// meanwhile.
const ReasonKeyRotationStepFailed = "KeyRotationStepFailed"

// EventKeyRotated is the Event of a host moved to the Secret's key.
const EventKeyRotated = "KeyRotated"

// ReasonKeyNotAuthorizedYet says that the host of a Machine, never reached
// so far, refuses the credentials Secret's key (and every earlier key the
// key history keeps): its first boot may not have authorised the key from
// the windows-user-data Secret yet. It is retried with backoff, not
// terminal.
const ReasonKeyNotAuthorizedYet = "KeyNotAuthorizedYet"

// maxHistoryKeysTried bounds the earlier keys tried on a Machine's host
// that refuses the Secret's key before it was ever reached: each is one
// more login the host refuses at every retry.
const maxHistoryKeysTried = 4

// keyNotAuthorizedYetError is a Machine's host, never reached so far,
// refusing the Secret's key and the earlier keys tried.
type keyNotAuthorizedYetError struct {
	// User is the SSH user; Fingerprint the Secret's key's.
	User, Fingerprint string
	// Tried is how many earlier keys of the history were tried.
	Tried int
	// Err is the refusal of the Secret's key.
	Err error
}

func (e *keyNotAuthorizedYetError) Error() string {
	earlier := ""
	if e.Tried > 0 {
		earlier = fmt.Sprintf(" (and %d earlier key(s) kept in Secret %s)", e.Tried, KeyHistorySecretName)
	}
	return fmt.Sprintf("the host refused the SSH key %s for user %s%s before the operator ever reached it: "+
		"a Machine's first boot authorises the key from the %s Secret, perhaps not yet; retried with backoff",
		e.Fingerprint, e.User, earlier, "windows-user-data")
}

func (e *keyNotAuthorizedYetError) Unwrap() error { return e.Err }

// firstBoot tells whether the instance is a Machine's host the operator
// has never reached: no key is known to be accepted, no host key was
// learnt. A refused key may then be a first boot still under way (sshd
// starts before the key is written) or a VM booted from the userData of
// an earlier key.
func firstBoot(wi *wmcov1.WindowsInstance) bool {
	return wi.Labels[wmcov1.LabelSource] == wmcov1.SourceMachine &&
		wi.Status.AuthorizedKeyFingerprint == "" && wi.Status.HostKey == ""
}

// keyRotation is what the connection phase found out about the host's
// keys, for the keys phase to finish.
type keyRotation struct {
	// current is the credentials Secret's key, as authorized_keys line
	// and fingerprint.
	currentLine, currentFP string
	// previous is the key in status, to remove from the host.
	previousLine, previousFP string
	// viaPrevious: the session was opened with the previous key, so the
	// current key is still to be installed and checked.
	viaPrevious bool
	// target reaches the host with the current key.
	target remote.Target
}

// keyRotationError is the host refusing both the Secret's key and the one
// it accepted before.
type keyRotationError struct {
	// User is the SSH user; Secret names the credentials Secret.
	User, Secret string
	// Current and Previous are the fingerprints of the Secret's key and
	// of the key the host accepted before.
	Current, Previous string
	// Forgotten: the previous key is not in the key history Secret.
	Forgotten bool
	// Err is the last dial's error.
	Err error
}

func (e *keyRotationError) Error() string {
	what := "refused"
	if e.Forgotten {
		what = "is not kept in Secret " + KeyHistorySecretName
	}
	return fmt.Sprintf("the host refused the SSH key %s of Secret %s for user %s, and the key it accepted before, %s, %s: "+
		"add the public key %s to the host (C:\\ProgramData\\ssh\\administrators_authorized_keys for an administrator, "+
		"else the user's .ssh\\authorized_keys), or put the previous private key back into the Secret",
		e.Current, e.Secret, e.User, e.Previous, what, e.Current)
}

func (e *keyRotationError) Unwrap() error { return e.Err }

// publicKeyLine parses a private key and returns its public key as an
// authorized_keys line and its SHA256 fingerprint. Errors never hold key
// material.
func publicKeyLine(key remote.PrivateKey) (line, fingerprint string, err error) {
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return "", "", errors.New("the private key cannot be parsed")
	}
	pub := signer.PublicKey()
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))), ssh.FingerprintSHA256(pub), nil
}

// historyDataKey is the data key of a fingerprint in the key history
// Secret: "SHA256:ab+c/d" becomes "SHA256.ab-c_d" (Secret keys allow
// neither ':' nor '+' nor '/').
func historyDataKey(fingerprint string) string {
	return strings.NewReplacer(":", ".", "+", "-", "/", "_").Replace(fingerprint)
}

// dial connects to target within the connection deadline.
func (r *Reconciler) dial(ctx context.Context, target remote.Target) (remote.Session, error) {
	dctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	return r.Dialer.Dial(dctx, target)
}

// dialHost connects with the credentials Secret's key (target) or, while
// the host has not been rotated to it yet, with the key the host accepted
// before; s.rotation then says what is left to do. Every key the host
// accepts is kept in the key history Secret.
func (r *Reconciler) dialHost(ctx context.Context, s *scope, target remote.Target) (remote.Session, error) {
	wi := s.wi
	line, fp, err := publicKeyLine(target.PrivateKey)
	if err != nil {
		// The dialer reports an unusable key as it always has.
		return r.dial(ctx, target)
	}
	known := wi.Status.AuthorizedKeyFingerprint
	sess, err := r.dial(ctx, target)
	if err == nil {
		if err := r.rememberKey(ctx, fp, target.PrivateKey); err != nil {
			_ = sess.Close()
			return nil, err
		}
		switch {
		case known == "":
			wi.Status.AuthorizedKeyFingerprint = fp
		case known != fp:
			// The host accepts the new key already (an admin put it
			// there, or an earlier rotation stopped half-way): only the
			// previous key is left to remove.
			prevKey, err := r.historyKey(ctx, known)
			if err != nil {
				_ = sess.Close()
				return nil, err
			}
			prevLine, _, perr := publicKeyLine(prevKey)
			if prevKey == nil || perr != nil {
				r.event(s, true, ReasonKeyRotationFailed, "The host accepts SSH key %s; the previous key %s is not kept in Secret %s and cannot be removed from the host: remove it by hand",
					fp, known, KeyHistorySecretName)
				wi.Status.AuthorizedKeyFingerprint = fp
				return sess, nil
			}
			s.rotation = &keyRotation{currentLine: line, currentFP: fp, previousLine: prevLine, previousFP: known, target: target}
		}
		return sess, nil
	}
	var auth *remote.AuthError
	if !errors.As(err, &auth) {
		return nil, err
	}
	if known == "" && auth.Cause == remote.AuthKeyRefused && firstBoot(wi) {
		return r.dialEarlierKey(ctx, s, target, line, fp, err)
	}
	if known == "" || known == fp {
		return nil, err
	}
	// The host refuses the Secret's key: it has not been rotated yet.
	ref := r.secretRef(wi)
	refused := &keyRotationError{User: wi.Spec.Username, Secret: ref.Namespace + "/" + ref.Name, Current: fp, Previous: known, Err: err}
	prevKey, err := r.historyKey(ctx, known)
	if err != nil {
		return nil, err
	}
	if prevKey == nil {
		refused.Forgotten = true
		return nil, refused
	}
	prev := target
	prev.PrivateKey = prevKey
	s.log.Info("Connecting with the previous SSH key", "fingerprint", known, "newFingerprint", fp)
	sess, err = r.dial(ctx, prev)
	if err != nil {
		if errors.As(err, &auth) {
			refused.Err = err
			return nil, refused
		}
		return nil, err
	}
	prevLine, _, err := publicKeyLine(prevKey)
	if err != nil {
		_ = sess.Close()
		return nil, err
	}
	s.rotation = &keyRotation{currentLine: line, currentFP: fp, previousLine: prevLine, previousFP: known, viaPrevious: true, target: target}
	return sess, nil
}

// dialEarlierKey connects to a Machine's host that refused the Secret's key
// (refused) before it was ever reached, with one of the earlier keys the
// key history keeps (at most maxHistoryKeysTried): a VM booted from the
// userData of a key rotated away meanwhile accepts only that key. The
// host is then rotated from it as any other (s.rotation, viaPrevious).
// When no key is accepted the host may still be booting: a
// *keyNotAuthorizedYetError, retried.
func (r *Reconciler) dialEarlierKey(ctx context.Context, s *scope, target remote.Target, line, fp string, refused error) (remote.Session, error) {
	wi := s.wi
	earlier, err := r.historyKeys(ctx, fp, maxHistoryKeysTried)
	if err != nil {
		return nil, err
	}
	for _, k := range earlier {
		prev := target
		prev.PrivateKey = k.key
		s.log.Info("Connecting with an earlier SSH key", "fingerprint", k.fingerprint, "newFingerprint", fp)
		sess, err := r.dial(ctx, prev)
		var auth *remote.AuthError
		switch {
		case errors.As(err, &auth):
			continue
		case err != nil:
			return nil, err
		}
		// Published at once, so that the history keeps the key while
		// the host depends on it (pruneKeyHistory keeps what a status
		// names).
		if err := r.publishKeyFingerprint(ctx, s, k.fingerprint); err != nil {
			_ = sess.Close()
			return nil, err
		}
		wi.Status.AuthorizedKeyFingerprint = k.fingerprint
		s.rotation = &keyRotation{currentLine: line, currentFP: fp, previousLine: k.line, previousFP: k.fingerprint, viaPrevious: true, target: target}
		return sess, nil
	}
	return nil, &keyNotAuthorizedYetError{User: wi.Spec.Username, Fingerprint: fp, Tried: len(earlier), Err: refused}
}

// historyEntry is a key of the key history.
type historyEntry struct {
	key               remote.PrivateKey
	line, fingerprint string
}

// historyKeys returns at most limit keys of the key history other than
// the one of fingerprint except, in the order of their data keys; keys
// that do not parse are skipped.
func (r *Reconciler) historyKeys(ctx context.Context, except string, limit int) ([]historyEntry, error) {
	history, err := r.keyHistory(ctx)
	if err != nil {
		return nil, err
	}
	var out []historyEntry
	for _, dataKey := range slices.Sorted(maps.Keys(history)) {
		if len(out) == limit {
			break
		}
		if dataKey == historyDataKey(except) {
			continue
		}
		line, fp, err := publicKeyLine(history[dataKey])
		if err != nil || historyDataKey(fp) != dataKey {
			continue
		}
		out = append(out, historyEntry{key: history[dataKey], line: line, fingerprint: fp})
	}
	return out, nil
}

// reconcileKeys finishes a key rotation that the connection phase found
// necessary: install the Secret's key (when the session runs on the
// previous one), log in with it in a new session, remove the previous key
// through that session, and record the new fingerprint.
func (r *Reconciler) reconcileKeys(ctx context.Context, s *scope) (ctrl.Result, error) {
	rot := s.rotation
	if rot == nil {
		return ctrl.Result{}, nil
	}
	if rot.viaPrevious {
		s.log.Info("Authorizing the new SSH key", "fingerprint", rot.currentFP)
		if err := r.changeKeys(ctx, s, wicdapi.AuthorizedKeysChange{Add: []string{rot.currentLine}}); err != nil {
			return ctrl.Result{}, r.rotationFailed(s, rot, "install the new key", err)
		}
		t := rot.target
		t.HostKey, t.TrustOnFirstUse = s.session.HostKey(), false
		sess, err := r.dial(ctx, t)
		if err != nil {
			return ctrl.Result{}, r.rotationFailed(s, rot, "log in with the new key", err)
		}
		_ = s.session.Close()
		s.session = sess
		if err := r.rememberKey(ctx, rot.currentFP, t.PrivateKey); err != nil {
			return ctrl.Result{}, err
		}
	}
	s.log.Info("Removing the previous SSH key", "fingerprint", rot.previousFP)
	if err := r.changeKeys(ctx, s, wicdapi.AuthorizedKeysChange{Remove: []string{rot.previousLine}}); err != nil {
		return ctrl.Result{}, r.rotationFailed(s, rot, "remove the previous key", err)
	}
	s.rotation = nil
	s.wi.Status.AuthorizedKeyFingerprint = rot.currentFP
	r.event(s, false, EventKeyRotated, "The host accepts SSH key %s now; the previous key %s was removed from it", rot.currentFP, rot.previousFP)
	// The fingerprint is published before the history is pruned, so that
	// of two hosts finishing at once the later prune sees both.
	if err := r.publishKeyFingerprint(ctx, s, rot.currentFP); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.pruneKeyHistory(ctx, s); err != nil {
		// Pruning is tidying: the next rotation prunes again.
		s.log.Info("Could not prune the SSH key history", "error", err.Error())
	}
	return ctrl.Result{}, nil
}

// rotationFailed records a failed step of a rotation; the step is retried
// with the usual backoff.
func (r *Reconciler) rotationFailed(s *scope, rot *keyRotation, step string, err error) error {
	msg := fmt.Sprintf("rotating the SSH key from %s to %s: %s: %v", rot.previousFP, rot.currentFP, step, err)
	setReachableCondition(s.wi, outcome{reason: ReasonKeyRotationStepFailed, message: msg})
	r.event(s, true, ReasonKeyRotationStepFailed, "%s", msg)
	return errors.New(msg)
}

// changeKeys uploads change and runs `wicd authorized-keys` in s.session.
func (r *Reconciler) changeKeys(ctx context.Context, s *scope, change wicdapi.AuthorizedKeysChange) error {
	data, err := json.Marshal(change)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	uctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	if err := s.session.Upload(uctx, wicdapi.AuthorizedKeysChangePath, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(sum[:])); err != nil {
		return fmt.Errorf("upload %s: %w", wicdapi.AuthorizedKeysChangePath, err)
	}
	var res wicdapi.AuthorizedKeysResult
	if err := r.runAgent(ctx, s, &res, wicdapi.AuthorizedKeysArg, "--change", wicdapi.AuthorizedKeysChangePath); err != nil {
		return err
	}
	s.log.V(1).Info("Authorized keys changed", "file", res.File, "added", res.Added, "removed", res.Removed)
	return nil
}

// publishKeyFingerprint patches status.authorizedKeyFingerprint alone, at
// once.
func (r *Reconciler) publishKeyFingerprint(ctx context.Context, s *scope, fp string) error {
	after := s.base.DeepCopy()
	after.Status.AuthorizedKeyFingerprint = fp
	if err := r.Client.Status().Patch(ctx, after, client.MergeFrom(s.base)); err != nil {
		return fmt.Errorf("record the SSH key fingerprint: %w", err)
	}
	s.base.Status.AuthorizedKeyFingerprint = fp
	return nil
}

// historyKey returns the private key of fingerprint from the key history,
// or nil when it is not kept.
func (r *Reconciler) historyKey(ctx context.Context, fingerprint string) (remote.PrivateKey, error) {
	history, err := r.keyHistory(ctx)
	if err != nil {
		return nil, err
	}
	key := history[historyDataKey(fingerprint)]
	if len(key) == 0 {
		return nil, nil
	}
	return key, nil
}

// keyHistory reads the key history Secret live (the cache may not have
// seen the key the last rotation kept): its data, nil when it does not
// exist.
func (r *Reconciler) keyHistory(ctx context.Context) (map[string][]byte, error) {
	sec := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: r.Config.Namespace, Name: KeyHistorySecretName}, sec)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read Secret %s/%s: %w", r.Config.Namespace, KeyHistorySecretName, err)
	}
	return sec.Data, nil
}

// rememberKey keeps key, of fingerprint, in the key history, unless it is
// there already (as the cache sees it).
func (r *Reconciler) rememberKey(ctx context.Context, fingerprint string, key remote.PrivateKey) error {
	name := client.ObjectKey{Namespace: r.Config.Namespace, Name: KeyHistorySecretName}
	dataKey := historyDataKey(fingerprint)
	cached := &corev1.Secret{}
	if err := r.Client.Get(ctx, name, cached); err == nil && bytes.Equal(cached.Data[dataKey], key) {
		return nil
	}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sec := &corev1.Secret{}
		err := r.APIReader.Get(ctx, name, sec)
		if apierrors.IsNotFound(err) {
			sec = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: name.Namespace, Name: name.Name},
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{dataKey: key},
			}
			err = r.Client.Create(ctx, sec)
			if apierrors.IsAlreadyExists(err) {
				// Another instance created it meanwhile: retry as an
				// update.
				return apierrors.NewConflict(corev1.Resource("secrets"), name.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if bytes.Equal(sec.Data[dataKey], key) {
			return nil
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[dataKey] = key
		return r.Client.Update(ctx, sec)
	})
	if err != nil {
		return fmt.Errorf("keep SSH key %s in Secret %s: %w", fingerprint, name, err)
	}
	return nil
}

// pruneKeyHistory removes the keys no instance needs any more: a key stays
// while an instance's status names it (this instance's as in s) or an
// instance's credentials Secret holds it.
func (r *Reconciler) pruneKeyHistory(ctx context.Context, s *scope) error {
	name := client.ObjectKey{Namespace: r.Config.Namespace, Name: KeyHistorySecretName}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sec := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, name, sec); err != nil {
			return client.IgnoreNotFound(err)
		}
		if len(sec.Data) <= 1 {
			return nil
		}
		keep, err := r.keysInUse(ctx, s)
		if err != nil {
			return err
		}
		var dropped []string
		for k := range sec.Data {
			if !keep[k] {
				delete(sec.Data, k)
				dropped = append(dropped, k)
			}
		}
		if len(dropped) == 0 {
			return nil
		}
		if err := r.Client.Update(ctx, sec); err != nil {
			return err
		}
		s.log.Info("Pruned SSH key history", "removed", dropped)
		return nil
	})
}

// keysInUse returns the history data keys of the fingerprints instances'
// statuses name and of the keys their credentials Secrets hold, read live.
func (r *Reconciler) keysInUse(ctx context.Context, s *scope) (map[string]bool, error) {
	var list wmcov1.WindowsInstanceList
	if err := r.APIReader.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list WindowsInstances: %w", err)
	}
	keep := map[string]bool{}
	secrets := map[wmcov1.SecretKeyReference]bool{}
	for i := range list.Items {
		wi := &list.Items[i]
		if wi.Name == s.wi.Name {
			wi = s.wi
		}
		if fp := wi.Status.AuthorizedKeyFingerprint; fp != "" {
			keep[historyDataKey(fp)] = true
		}
		secrets[r.secretRef(wi)] = true
	}
	for ref := range secrets {
		if !credentialsNamespaceAllowed(ref.Namespace, r.Config.Namespace, s.config.CredentialNamespaces).ok {
			continue
		}
		sec := &corev1.Secret{}
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, sec)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read Secret %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		if _, fp, err := publicKeyLine(sec.Data[ref.Key]); err == nil {
			keep[historyDataKey(fp)] = true
		}
	}
	return keep, nil
}
