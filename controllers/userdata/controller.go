// Package userdata keeps the windows-user-data Secret that the Machine API
// gives every new Windows VM: the first-boot script (package
// pkg/userdata) that authorises the public key of the operator's private
// key Secret. It writes the Secret in openshift-machine-api, and in
// openshift-cluster-api where that namespace exists, whenever the key
// changes and again every resync period.
//
// It only writes those Secrets, never reads, lists or watches them: a
// create, and else an update of the whole Secret, whose answer is what
// was sent. The operator's grant on Secrets of that name is update alone,
// because a name-restricted read would let anyone holding the operator's
// token read any Secret they create under that name, say a service
// account token Secret in kube-system. So a hand edit or deletion is
// undone at the next resync, not at once. It never touches a host.
package userdata

import (
	"context"
	"errors"
	"fmt"
	"time"

	configv1 "github.com/openshift/api/config/v1"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
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
	// Secret was created or changed.
	EventUserDataUpdated = "UserDataUpdated"
	// EventInvalidKey (Warning, on the private key Secret): it holds no
	// key the userData can be rendered from.
	EventInvalidKey = "InvalidPrivateKey"
	// EventUserDataRejected (Warning, on the private key Secret): the API
	// server refused to replace a userData Secret, one of another type
	// (a Secret's type cannot change) or immutable. Deleting it lets the
	// operator create it; until then it is tried again every resync.
	EventUserDataRejected = "UserDataRejected"

	// DefaultResync is the default of Reconciler.Resync.
	DefaultResync = 10 * time.Minute
)

// Namespaces are where the Secret is kept, in order; only the first must
// exist.
var Namespaces = []string{userdata.MachineAPINamespace, userdata.ClusterAPINamespace}

// Reconciler keeps the userData Secrets. Every event maps to one request.
type Reconciler struct {
	// Client reads the private key Secret (in Namespace, which the
	// manager's cache holds) and creates and updates the userData
	// Secrets, which it never reads.
	Client client.Client
	// Recorder records Events on the private key Secret.
	Recorder events.EventRecorder
	// Namespace is the operator's, where the private key Secret is.
	Namespace string
	// Platform is the cluster's platform: it decides the script's
	// envelope and extras.
	Platform configv1.PlatformType
	// Resync is how often the userData Secrets are written again without
	// an event (default DefaultResync). Nothing watches them, so it bounds
	// how long a hand edit or deletion lasts, and how late a namespace that
	// appears later (openshift-cluster-api) gets the Secret. A write that
	// changes nothing is a no-op in the API server: the resourceVersion
	// stays, and no watcher hears of it.
	Resync time.Duration

	// written is, per namespace, the resourceVersion that this process's
	// last write of the Secret returned: a write that returns another one
	// changed it. It is the only state kept between requests, and safe
	// without a lock: there is one request, and a request is never
	// reconciled twice at once.
	written map[string]string
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",resources=secrets,resourceNames=windows-user-data,verbs=update

// Reconcile renders the script from the private key and writes it in
// every namespace of Namespaces that exists.
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
	profile, _ := platform.Lookup(r.Platform)
	script, err := userdata.Render(profile, pub)
	if err != nil {
		return ctrl.Result{}, reconcile.TerminalError(fmt.Errorf("render userData: %w", err))
	}
	fp := ssh.FingerprintSHA256(pub)
	if r.written == nil {
		r.written = map[string]string{}
	}
	for i, ns := range Namespaces {
		s := desired(ns, script, fp)
		rv, created, err := r.write(ctx, s)
		switch {
		case apierrors.IsNotFound(err) && i > 0:
			// Optional namespace absent; the next resync tries again.
			continue
		case apierrors.IsInvalid(err):
			// The Secret there cannot be replaced (its type or
			// immutability); trying again sooner than the resync would
			// fail alike.
			log.Error(err, "Cannot replace the userData Secret; delete it so that the operator creates it", "secret", klog.KObj(s))
			r.Recorder.Eventf(keySecret, nil, corev1.EventTypeWarning, EventUserDataRejected, "WriteUserData",
				"Secret %s/%s cannot be replaced with the userData of new Windows Machines, so new Machines may not be reachable; delete it so that the operator creates it: %v",
				ns, userdata.SecretName, err)
			continue
		case err != nil:
			return ctrl.Result{}, err
		}
		prev, known := r.written[ns]
		r.written[ns] = rv
		// The first update of a process cannot tell whether it changed
		// anything: it is not reported.
		if created || (known && rv != prev) {
			log.Info("Wrote the userData Secret", "secret", klog.KObj(s), "fingerprint", fp, "platform", profile.Type)
			r.Recorder.Eventf(keySecret, nil, corev1.EventTypeNormal, EventUserDataUpdated, "RenderUserData",
				"Secret %s/%s now authorises key %s for new Windows Machines (platform %s)", ns, userdata.SecretName, fp, profile.Type)
		}
	}
	return ctrl.Result{RequeueAfter: r.resync()}, nil
}

func (r *Reconciler) resync() time.Duration {
	if r.Resync > 0 {
		return r.Resync
	}
	return DefaultResync
}

// desired is the whole userData Secret of ns: an update replaces
// whatever else the Secret holds (other keys, labels, annotations).
func desired(ns string, script []byte, fingerprint string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: userdata.SecretName,
			Labels:      map[string]string{LabelManagedBy: ManagedByValue},
			Annotations: map[string]string{AnnotationKeyFingerprint: fingerprint},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{userdata.SecretKey: script},
	}
}

// write creates s, or else replaces the Secret of its name with it by an
// update without a resourceVersion (Secrets allow unconditional updates).
// It never reads the Secret: the answer to either is s as stored, which
// reveals nothing that s did not hold. rv is its resourceVersion. A
// missing namespace is a NotFound error; a Secret that cannot take s (of
// another type, or immutable) an Invalid one.
func (r *Reconciler) write(ctx context.Context, s *corev1.Secret) (rv string, created bool, err error) {
	err = r.Client.Create(ctx, s)
	if err == nil {
		return s.ResourceVersion, true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return "", false, fmt.Errorf("create Secret %s: %w", klog.KObj(s), err)
	}
	if err := r.Client.Update(ctx, s); err != nil {
		return "", false, fmt.Errorf("update Secret %s: %w", klog.KObj(s), err)
	}
	return s.ResourceVersion, false, nil
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
// Secrets of Namespace, and need hold no other.
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
	only := types.NamespacedName{Namespace: r.Namespace, Name: userdata.SecretName}
	key := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetName() == wmcov1.DefaultCredentialsSecretName
	})
	// Only the private key is watched: the userData Secrets are not
	// readable, and the resync (RequeueAfter) rewrites them.
	return ctrl.NewControllerManagedBy(mgr).
		Named("userdata").
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: only}}
		}), builder.WithPredicates(key)).
		Complete(r)
}
