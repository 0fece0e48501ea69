// Package userdata keeps the windows-user-data Secret that the Machine API
// gives every new Windows VM: the first-boot script (package
// pkg/userdata) that authorises the public key of the operator's private
// key Secret. It writes the Secret in openshift-machine-api, and mirrors it
// to openshift-cluster-api where that namespace exists; it rewrites either
// whenever it differs from what the key and the platform render, and
// regenerates both when the key changes. It never touches a host.
package userdata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/pkg/userdata"
)

const (
	// AnnotationKeyFingerprint on the userData Secret is the SHA256
	// fingerprint of the public key it authorises (not a secret), so an
	// admin can tell which key new VMs get.
	AnnotationKeyFingerprint = "wmco.io/authorized-key-fingerprint"
	// LabelManagedBy marks the Secrets the operator writes.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "wmco"

	// EventUserDataUpdated (Normal, on the private key Secret): a userData
	// Secret was written.
	EventUserDataUpdated = "UserDataUpdated"
	// EventInvalidKey (Warning, on the private key Secret): it holds no
	// key the userData can be rendered from.
	EventInvalidKey = "InvalidPrivateKey"

	// resync is how often the Secrets are looked at without an event: a
	// namespace that appears later (openshift-cluster-api) is not watched.
	resync = 10 * time.Minute
)

// Namespaces are where the Secret is kept, in order; only the first must
// exist.
var Namespaces = []string{userdata.MachineAPINamespace, userdata.ClusterAPINamespace}

// SecretCache is the manager's cache of Secrets: the operator's namespace
// whole (its keys), and with the Machine API the userData Secret alone in
// each of Namespaces (which the operator may read by name only).
func SecretCache(operatorNamespace string, machineAPI bool) map[string]cache.Config {
	out := map[string]cache.Config{operatorNamespace: {}}
	if machineAPI {
		for _, ns := range Namespaces {
			out[ns] = cache.Config{FieldSelector: fields.OneTermEqualSelector("metadata.name", userdata.SecretName)}
		}
	}
	return out
}

// Reconciler keeps the userData Secrets. Every event maps to one request.
type Reconciler struct {
	// Client reads the key Secret (in Namespace) and the userData Secrets
	// (cached by name in Namespaces) and writes the latter.
	Client client.Client
	// Recorder records Events on the private key Secret.
	Recorder events.EventRecorder
	// Namespace is the operator's, where the private key Secret is.
	Namespace string
	// Platform is the cluster's platform: it decides the script's
	// envelope and extras.
	Platform configv1.PlatformType

	profile platform.Profile
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",resources=secrets,resourceNames=windows-user-data,verbs=get;list;watch;update;patch

// Reconcile renders the script from the private key and writes it where it
// differs.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	keyRef := types.NamespacedName{Namespace: r.Namespace, Name: wmcov1.DefaultCredentialsSecretName}
	keySecret := &corev1.Secret{}
	if err := r.Client.Get(ctx, keyRef, keySecret); err != nil {
		if apierrors.IsNotFound(err) {
			// Nothing to render from: the Secrets stay as they are (new
			// VMs could not be reached without the key anyway); the key
			// Secret's creation is an event.
			log.Info("No private key Secret; the userData Secret is not written", "secret", keyRef)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get private key Secret %s: %w", keyRef, err)
	}
	pub, err := publicKey(keySecret.Data[wmcov1.DefaultCredentialsSecretKey])
	if err != nil {
		// The Secret's update is an event; the message never quotes it.
		r.Recorder.Eventf(keySecret, nil, corev1.EventTypeWarning, EventInvalidKey, "RenderUserData",
			"Key %s of the Secret cannot be used for the userData of new Windows Machines: %v", wmcov1.DefaultCredentialsSecretKey, err)
		log.Info("The private key Secret holds no usable key; the userData Secret is not written", "secret", keyRef, "error", err.Error())
		return ctrl.Result{}, nil
	}
	script, err := userdata.Render(r.profile, pub)
	if err != nil {
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("render userData: %w", err))
	}
	fp := ssh.FingerprintSHA256(pub)
	for i, ns := range Namespaces {
		changed, err := r.apply(ctx, ns, script, fp)
		if apierrors.IsNotFound(err) && i > 0 {
			// Optional namespace absent.
			continue
		}
		if err != nil {
			return ctrl.Result{}, err
		}
		if changed {
			log.Info("Wrote the userData Secret", "namespace", ns, "fingerprint", fp, "platform", r.profile.Type)
			r.Recorder.Eventf(keySecret, nil, corev1.EventTypeNormal, EventUserDataUpdated, "RenderUserData",
				"Secret %s/%s now authorises key %s for new Windows Machines (platform %s)", ns, userdata.SecretName, fp, r.profile.Type)
		}
	}
	return ctrl.Result{RequeueAfter: resync}, nil
}

// apply creates or updates the Secret in ns; changed says whether it wrote.
// A missing namespace is a NotFound error.
func (r *Reconciler) apply(ctx context.Context, ns string, script []byte, fingerprint string) (bool, error) {
	s := &corev1.Secret{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: userdata.SecretName}, s)
	if apierrors.IsNotFound(err) {
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: userdata.SecretName,
				Labels:      map[string]string{LabelManagedBy: ManagedByValue},
				Annotations: map[string]string{AnnotationKeyFingerprint: fingerprint},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{userdata.SecretKey: script},
		}
		if err := r.Client.Create(ctx, s); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// The cache lags: the error retries with the object.
				return false, fmt.Errorf("create Secret %s/%s: %w", ns, userdata.SecretName, err)
			}
			return false, err
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("get Secret %s/%s: %w", ns, userdata.SecretName, err)
	}
	if bytes.Equal(s.Data[userdata.SecretKey], script) && len(s.Data) == 1 &&
		s.Annotations[AnnotationKeyFingerprint] == fingerprint && s.Labels[LabelManagedBy] == ManagedByValue {
		return false, nil
	}
	// The whole Secret is the operator's: other keys go too.
	s.Data = map[string][]byte{userdata.SecretKey: script}
	s.StringData = nil
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[LabelManagedBy] = ManagedByValue
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationKeyFingerprint] = fingerprint
	if err := r.Client.Update(ctx, s); err != nil {
		return false, fmt.Errorf("update Secret %s/%s: %w", ns, userdata.SecretName, err)
	}
	return true, nil
}

// publicKey is the public half of a PEM private key. Errors never include
// the key.
func publicKey(pemBytes []byte) (ssh.PublicKey, error) {
	if len(pemBytes) == 0 {
		return nil, errors.New("it is empty")
	}
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, errors.New("it is protected by a passphrase")
		}
		return nil, errors.New("it is not a PEM private key the operator can read")
	}
	return signer.PublicKey(), nil
}

// SetupWithManager registers the controller. Call it only where Machines
// are served (cluster.Info.MachineAPI); the manager's cache must hold the
// operator's Secrets and the userData Secrets of Namespaces.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	switch {
	case r.Client == nil:
		return errors.New("userData controller: Client is nil")
	case r.Recorder == nil:
		return errors.New("userData controller: Recorder is nil")
	case r.Namespace == "":
		return errors.New("userData controller: Namespace is empty")
	}
	r.Recorder = core.Recorder(r.Recorder)
	r.profile, _ = platform.Lookup(r.Platform)
	only := types.NamespacedName{Namespace: r.Namespace, Name: userdata.SecretName}
	relevant := predicate.NewPredicateFuncs(func(o client.Object) bool {
		if o.GetNamespace() == r.Namespace && o.GetName() == wmcov1.DefaultCredentialsSecretName {
			return true
		}
		if o.GetName() != userdata.SecretName {
			return false
		}
		for _, ns := range Namespaces {
			if o.GetNamespace() == ns {
				return true
			}
		}
		return false
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("userdata").
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: only}}
		}), builder.WithPredicates(relevant)).
		Complete(r)
}
