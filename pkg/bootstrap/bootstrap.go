// Package bootstrap issues the credential a host's kubelet uses for its
// TLS bootstrap, revokes it once the host has joined, and tells the CSR
// approver which credentials are live for each host (Issuer). The
// operator picks one of two issuers by platform.
//
// # Plain Kubernetes: a ServiceAccount per host (Tokens)
//
// Each host being joined gets a ServiceAccount of its own in the
// operator's namespace (generated name wmco-bootstrap-<random>, labelled
// wmco.io/instance=<instance>, owned by the WindowsInstance) and a
// short-lived token for it from the TokenRequest API. The kubelet presents
// that token and its CSR carries the requester
// system:serviceaccount:<namespace>:<name>, which the CSR approver ties to
// the host (Identities). Once the host has joined, or when its instance is
// deleted, the ServiceAccount is deleted: every token of it stops
// authenticating at once, and a pending CSR of the old identity can never
// be tied to a later issuance, whose ServiceAccount has another name.
//
// # Owned by the instance
//
// Every credential (the ServiceAccount here, the token Secret on
// OpenShift) has an ownerReference to the WindowsInstance it was issued
// for, and is that instance's only while the reference names the
// instance's UID. An instance that goes without revoking its credentials
// (its finalizer removed by hand, or an orphaning delete) leaves them to
// the garbage collector, and until it collects them (or for ever, after
// an orphaning delete) they are nobody's: a later instance of the same
// name (ConfigMap instances are named after their address) is not matched
// to them by the CSR approver, Issue deletes them instead of reusing them,
// and the binding leaves out a ServiceAccount no instance owns.
//
// Why not the alternatives:
//   - Bootstrap-token Secrets live in kube-system. Writing them needs a Role
//     there, which an OLM ClusterServiceVersion cannot express (its
//     permissions carry no namespace) and which a namespace overlay cannot
//     rename without a clash.
//   - Binding system:node-bootstrapper to the group
//     system:serviceaccounts:<namespace> would need no binding updates, but
//     would let every ServiceAccount of the namespace (the operator's own,
//     anything an admin runs there) create CSRs, and a namespace overlay
//     does not rename a group subject.
//
// So the ClusterRoleBinding wmco:node-bootstrapper (a fixed name, so the
// operator's update, get and delete can be limited to it by resourceNames)
// binds system:node-bootstrapper to exactly the bootstrap ServiceAccounts
// that exist and are owned by a WindowsInstance, no other subject: the operator rewrites its subjects after
// each issuance and revocation, and at start-up (EnsureRBAC).
//
// The token is kept in a Secret of the same name in the operator's
// namespace (type wmco.io/bootstrap-token, owned by the ServiceAccount):
// TokenRequest tokens are not stored by the API server, and the host's
// plan must render the same token on every reconcile until it has joined.
//
// # OpenShift: the node-bootstrapper service account (NodeBootstrapper)
//
// OpenShift's own nodes bootstrap as the machine-config-operator's
// node-bootstrapper service account, which the cluster already binds to
// system:node-bootstrapper; the operator creates no ServiceAccount, no
// binding and no bootstrap-token Secret there. For each host being
// joined it requests a short-lived token of that service account
// (TokenRequest, create on serviceaccounts/token limited to the name
// node-bootstrapper) and keeps it in a Secret of its own namespace
// (generated name wmco-bootstrap-<random>, type wmco.io/bootstrap-token,
// label wmco.io/instance=<instance>, owned by the WindowsInstance), annotated with the token's
// credential ID: the API server gives every token a unique jti claim and
// puts "JTI=<jti>" into the authenticated user's extra under
// authentication.kubernetes.io/credential-id, and so into the spec.extra
// of every CSR the token creates. The user name is shared by every node
// of the cluster; the credential ID ties a CSR to exactly one host.
//
// Revocation deletes the Secrets: the approver then ties no CSR of those
// credential IDs to any host. The tokens themselves stay valid until they
// expire (DefaultTTL at most), able to do what any node-bootstrapper
// token may (create and read CSRs) but never to get one approved. The API
// server would revoke a token bound to a Secret (boundObjectRef) when the
// Secret is deleted, but only to a Secret in the service account's own
// namespace, openshift-machine-config-operator. The operator holds a
// cluster-wide grant to create Secrets (for the windows-user-data Secrets,
// controllers/userdata), so it could create such a Secret; deleting it
// would take delete on Secrets there, which cannot be narrowed to
// generated names and, as an OLM ClusterServiceVersion cannot grant a Role
// in another namespace, would be cluster-wide: far more than the
// approver-side revocation is worth.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/csr"
)

const (
	// BindingName is the ClusterRoleBinding that lets the bootstrap
	// ServiceAccounts create CSRs.
	BindingName = "wmco:node-bootstrapper"
	// NodeBootstrapperRole is the ClusterRole it binds (CSR create, get,
	// list, watch; kube-apiserver's bootstrap policy).
	NodeBootstrapperRole = "system:node-bootstrapper"
	// DefaultTTL is how long a token is valid; a join takes minutes.
	DefaultTTL = time.Hour
	// NamePrefix starts the generated name of each bootstrap
	// ServiceAccount (and of the Secret holding its token).
	NamePrefix = "wmco-bootstrap-"
	// SecretType is the type of the Secrets holding issued tokens.
	SecretType corev1.SecretType = "wmco.io/bootstrap-token"

	// ServiceAccountUserPrefix starts a ServiceAccount's user name.
	ServiceAccountUserPrefix = "system:serviceaccount:"

	tokenKey      = "token"
	expirationKey = "expiration"
)

// Username is the user name a token of the ServiceAccount authenticates
// as.
func Username(namespace, name string) string {
	return ServiceAccountUserPrefix + namespace + ":" + name
}

// Issuer issues and revokes the bootstrap credentials of hosts. A
// credential belongs to the WindowsInstance (by UID) it was issued for;
// see the package doc.
type Issuer interface {
	// Issue returns a valid bootstrap token for the instance's host: the
	// one already issued to this instance while it is fresh, else a new
	// one, owned by the instance. Credentials of an earlier instance of
	// the same name are deleted on the way. The instance must carry its
	// UID (read from the API server). The token is a credential: never
	// log it.
	Issue(ctx context.Context, wi *wmcov1.WindowsInstance) (string, error)
	// Revoke ends every credential issued for an instance of that name,
	// whoever owns it: from then on no CSR they create is tied to a host.
	Revoke(ctx context.Context, instance string) error
	// Identities are the credentials issued for the instance (owned by
	// its UID) and not revoked, as the CSR approver matches them.
	Identities(ctx context.Context, wi *wmcov1.WindowsInstance) ([]csr.BootstrapIdentity, error)
	// IdentitiesOf are those of Identities whose user name is username:
	// all a CSR of that requester can be matched against, read live with
	// as few and as cheap requests as the issuer allows (Tokens: the
	// ServiceAccount the user name names, in a read concurrent calls
	// share).
	IdentitiesOf(ctx context.Context, wi *wmcov1.WindowsInstance, username string) ([]csr.BootstrapIdentity, error)
	// ReadingFrom is the issuer reading through reader, unless it was
	// given a Reader of its own. Whoever decides on a CSR must read live:
	// a credential is issued moments before the CSR it authenticates.
	ReadingFrom(reader client.Reader) Issuer
}

var (
	_ Issuer = &Tokens{}
	_ Issuer = &NodeBootstrapper{}
)

// Tokens issues and revokes per-host bootstrap ServiceAccounts and their
// tokens: the Issuer on plain Kubernetes.
type Tokens struct {
	// Client writes ServiceAccounts, token requests, Secrets and the
	// ClusterRoleBinding.
	Client client.Client
	// Reader reads them; it must read live (the manager's API reader),
	// not through a cache: a credential is issued moments before the CSR
	// it authenticates. Defaults to Client.
	Reader client.Reader
	// Namespace is the operator's namespace, where the ServiceAccounts and
	// their token Secrets live. Required.
	Namespace string
	// TTL is how long a token is valid (default DefaultTTL).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	// syncs coalesces the binding updates of concurrent issuances and
	// revocations; made on first use and shared by copies (ReadingFrom).
	syncs *coalesced[struct{}, struct{}]
	// reads coalesces IdentitiesOf's live reads of ServiceAccounts; made
	// on first use, each copy its own (a copy may read elsewhere).
	reads *coalesced[saKey, *corev1.ServiceAccount]
}

// ReadingFrom is a copy of t reading through reader unless t has a Reader.
func (t *Tokens) ReadingFrom(reader client.Reader) Issuer {
	c := *t
	c.Reader = readerOr(c.Reader, reader)
	c.reads = nil
	return &c
}

func (t *Tokens) reader() client.Reader { return readerOr(t.Reader, t.Client) }

// readerOr is an issuer's reader: its own when set, else fallback. Both
// issuers read through Reader, defaulting to Client, and ReadingFrom fills
// in a Reader they were not given.
func readerOr(own, fallback client.Reader) client.Reader {
	if own != nil {
		return own
	}
	return fallback
}

// EnsureRBAC creates the ClusterRoleBinding, puts back its roleRef if
// someone changed it, and sets its subjects to exactly the bootstrap
// ServiceAccounts that exist and are owned by an instance.
func (t *Tokens) EnsureRBAC(ctx context.Context) error {
	existing := &rbacv1.ClusterRoleBinding{}
	err := t.reader().Get(ctx, client.ObjectKey{Name: BindingName}, existing)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read ClusterRoleBinding %s: %w", BindingName, err)
	case existing.RoleRef != roleRef():
		// roleRef cannot be updated in place.
		if err := t.Client.Delete(ctx, existing); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("replace ClusterRoleBinding %s: %w", BindingName, err)
		}
	}
	return t.syncBinding(ctx)
}

func roleRef() rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: NodeBootstrapperRole}
}

// syncBinding sets the binding's subjects to the bootstrap ServiceAccounts
// that exist and are owned by an instance, in a sync that starts after the call (so it lists what the
// caller created or deleted before it). Concurrent callers share one
// sync: with one update per caller, 50 hosts joining at once made 50
// writers of one object, and most ran out of conflict retries.
func (t *Tokens) syncBinding(ctx context.Context) error {
	lazyInit.Lock()
	if t.syncs == nil {
		t.syncs = &coalesced[struct{}, struct{}]{timeout: bindingSyncTimeout}
	}
	s := t.syncs
	lazyInit.Unlock()
	_, err := s.do(ctx, struct{}{}, func(ctx context.Context, _ []struct{}) (map[struct{}]struct{}, error) {
		return nil, t.syncBindingNow(ctx)
	})
	return err
}

// lazyInit guards making Tokens.syncs and Tokens.reads.
var lazyInit sync.Mutex

// bindingSyncTimeout bounds one sync.
const bindingSyncTimeout = time.Minute

// bindingRetry is how a sync retries conflicting with another writer of
// the binding (another operator process, an admin): about 2.5 s in all.
var bindingRetry = wait.Backoff{Steps: 8, Duration: 10 * time.Millisecond, Factor: 2, Jitter: 0.5}

// syncBindingNow is one sync. The binding is read before the
// ServiceAccounts are listed and written with its resourceVersion: a
// ServiceAccount another writer created after that list has also been
// written after that read, so one of the two updates conflicts and is
// retried, and no subject is lost.
func (t *Tokens) syncBindingNow(ctx context.Context) error {
	err := retry.RetryOnConflict(bindingRetry, func() error {
		crb := &rbacv1.ClusterRoleBinding{}
		err := t.reader().Get(ctx, client.ObjectKey{Name: BindingName}, crb)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		create := err != nil
		sas, err := t.serviceAccounts(ctx, nil)
		if err != nil {
			return err
		}
		subjects := make([]rbacv1.Subject, 0, len(sas))
		for _, sa := range sas {
			if !ownedByInstance(&sa) {
				// Nobody's (an orphaning delete of its instance, or
				// issued before credentials were owned): it may not
				// create CSRs, and Issue deletes it.
				continue
			}
			subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: sa.Namespace})
		}
		if create {
			crb = &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: BindingName, Labels: map[string]string{"app.kubernetes.io/managed-by": "wmco"}},
				RoleRef:    roleRef(),
				Subjects:   subjects,
			}
			err := t.Client.Create(ctx, crb)
			if apierrors.IsAlreadyExists(err) {
				// Someone else created it meanwhile: read it again.
				return apierrors.NewConflict(rbacv1.Resource("clusterrolebindings"), BindingName, err)
			}
			return err
		}
		if slices.Equal(crb.Subjects, subjects) {
			return nil
		}
		crb.Subjects = subjects
		return t.Client.Update(ctx, crb)
	})
	if err != nil {
		return fmt.Errorf("update ClusterRoleBinding %s: %w", BindingName, err)
	}
	return nil
}

// Issue returns a valid bootstrap token for the instance: the one already
// issued to it while it is valid for at least half its lifetime, else a
// new one, creating the instance's ServiceAccount and binding it first.
// ServiceAccounts labelled with the instance's name that it does not own
// (left by an earlier instance of that name) are deleted.
func (t *Tokens) Issue(ctx context.Context, wi *wmcov1.WindowsInstance) (string, error) {
	if err := checkOwner(wi); err != nil {
		return "", err
	}
	instance := wi.Name
	now := t.now()
	sas, err := t.serviceAccounts(ctx, &instance)
	if err != nil {
		return "", err
	}
	var sa *corev1.ServiceAccount
	stale := false
	for i := range sas {
		switch {
		case !ownedBy(&sas[i], wi.UID):
			if err := t.deleteIdentity(ctx, &sas[i]); err != nil {
				return "", err
			}
			stale = true
		case sa == nil:
			sa = &sas[i]
		}
	}
	if sa != nil {
		sec := &corev1.Secret{}
		err := t.reader().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: sa.Name}, sec)
		switch {
		case err == nil:
			if token, ok := freshToken(sec, now, t.ttl()); ok {
				if stale {
					// Unbind what was deleted.
					if err := t.syncBinding(ctx); err != nil {
						return "", err
					}
				}
				return token, nil
			}
		case !apierrors.IsNotFound(err):
			return "", fmt.Errorf("read bootstrap token of %s: %w", instance, err)
		}
	} else {
		sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			GenerateName: NamePrefix, Namespace: t.Namespace,
			Labels: map[string]string{wmcov1.LabelInstance: instance},
			Annotations: map[string]string{
				"kubernetes.io/description": "TLS bootstrap identity of Windows host " + instance + " (wmco); deleted once it has joined",
			},
			// The garbage collector deletes it (and so its token
			// Secret) if the instance goes without revoking it.
			OwnerReferences: []metav1.OwnerReference{ownerReference(wi)},
		}}
		if err := t.Client.Create(ctx, sa); err != nil {
			return "", fmt.Errorf("create bootstrap ServiceAccount for %s: %w", instance, err)
		}
	}
	// The binding first: the kubelet may use the token at once.
	if err := t.syncBinding(ctx); err != nil {
		return "", err
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(t.ttl() / time.Second))}}
	if err := t.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("request bootstrap token for %s: %w", instance, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("request bootstrap token for %s: the API server returned no token", instance)
	}
	exp := tr.Status.ExpirationTimestamp.Time
	if exp.IsZero() {
		exp = now.Add(t.ttl())
	}
	if err := t.store(ctx, sa, instance, tr.Status.Token, exp); err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// store keeps the token in the ServiceAccount's Secret.
func (t *Tokens) store(ctx context.Context, sa *corev1.ServiceAccount, instance, token string, exp time.Time) error {
	data := tokenData(token, exp)
	sec := &corev1.Secret{}
	err := t.reader().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: sa.Name}, sec)
	if err == nil {
		sec.Data, sec.Type = data, SecretType
		if err := t.Client.Update(ctx, sec); err != nil {
			return fmt.Errorf("store bootstrap token of %s: %w", instance, err)
		}
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("read bootstrap token of %s: %w", instance, err)
	}
	sec = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: sa.Name, Namespace: t.Namespace,
			Labels: map[string]string{wmcov1.LabelInstance: instance},
			// Goes with the ServiceAccount, whoever deletes it.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ServiceAccount", Name: sa.Name, UID: sa.UID}},
		},
		Type: SecretType,
		Data: data,
	}
	if err := t.Client.Create(ctx, sec); err != nil {
		return fmt.Errorf("store bootstrap token of %s: %w", instance, err)
	}
	return nil
}

// Identities are the user names of the instance's bootstrap
// ServiceAccounts (Usernames); each is the host's alone, so it needs no
// credential ID.
func (t *Tokens) Identities(ctx context.Context, wi *wmcov1.WindowsInstance) ([]csr.BootstrapIdentity, error) {
	users, err := t.Usernames(ctx, wi)
	if err != nil {
		return nil, err
	}
	out := make([]csr.BootstrapIdentity, 0, len(users))
	for _, u := range users {
		out = append(out, csr.BootstrapIdentity{Username: u})
	}
	return out, nil
}

// IdentitiesOf is the identity of username when it is one of the
// instance's bootstrap ServiceAccounts (labelled with its name and owned
// by its UID), else none. It reads that ServiceAccount live, in a read
// that starts after the call; concurrent calls share one
// (readServiceAccounts): in make bench's burst of 1,000 CSRs, a GET per
// CSR cost about a quarter of the burst's CPU time.
func (t *Tokens) IdentitiesOf(ctx context.Context, wi *wmcov1.WindowsInstance, username string) ([]csr.BootstrapIdentity, error) {
	if t.Namespace == "" {
		return nil, fmt.Errorf("bootstrap tokens: no namespace")
	}
	name, ok := strings.CutPrefix(username, ServiceAccountUserPrefix+t.Namespace+":")
	if !ok || !strings.HasPrefix(name, NamePrefix) || len(validation.IsDNS1123Subdomain(name)) > 0 {
		// Not a ServiceAccount name of the namespace: none was issued.
		return nil, nil
	}
	lazyInit.Lock()
	if t.reads == nil {
		t.reads = &coalesced[saKey, *corev1.ServiceAccount]{timeout: readTimeout}
	}
	reads := t.reads
	lazyInit.Unlock()
	sa, err := reads.do(ctx, saKey{name: name, instance: wi.Name}, t.readServiceAccounts)
	if err != nil || sa == nil || !ownedBy(sa, wi.UID) {
		// A ServiceAccount of an earlier instance of the same name is
		// not this one's.
		return nil, err
	}
	return []csr.BootstrapIdentity{{Username: Username(sa.Namespace, sa.Name)}}, nil
}

// saKey is a bootstrap ServiceAccount by name and the instance its label
// names.
type saKey struct{ name, instance string }

// readTimeout bounds one read of readServiceAccounts.
const readTimeout = 30 * time.Second

// maxInstancesSelected is the most instances one label selector of
// instancesSelector names (about 16 KiB of URL at 63 bytes a name). A
// shared read is for at most as many as the CSR approver decides at once.
const maxInstancesSelected = 256

// instancesSelector selects what is labelled as one of the instances: by
// name, or, for more than maxInstancesSelected of them or a name that is
// no label value (nothing is labelled with it), everything labelled as
// some instance's.
func instancesSelector(instances []string) labels.Selector {
	instances = slices.Compact(slices.Sorted(slices.Values(instances)))
	if len(instances) <= maxInstancesSelected {
		if req, err := labels.NewRequirement(wmcov1.LabelInstance, selection.In, instances); err == nil {
			return labels.NewSelector().Add(*req)
		}
	}
	return anyInstance()
}

// anyInstance selects everything labelled as some instance's.
func anyInstance() labels.Selector {
	req, err := labels.NewRequirement(wmcov1.LabelInstance, selection.Exists, nil)
	if err != nil {
		panic(err) // a fixed, valid key
	}
	return labels.NewSelector().Add(*req)
}

// readServiceAccounts reads live the bootstrap ServiceAccounts keys ask
// for, each under the key of its name and instance label, so that one of
// another instance or none answers nil. One key: a GET (from etcd at
// once). More: one LIST of those labelled as one of the keys' instances (a
// consistent read: the API server answers it from its watch cache once
// that has caught up with etcd, and encodes only what the selector
// matches).
func (t *Tokens) readServiceAccounts(ctx context.Context, keys []saKey) (map[saKey]*corev1.ServiceAccount, error) {
	out := make(map[saKey]*corev1.ServiceAccount, len(keys))
	add := func(sa *corev1.ServiceAccount) {
		if strings.HasPrefix(sa.Name, NamePrefix) {
			out[saKey{name: sa.Name, instance: sa.Labels[wmcov1.LabelInstance]}] = sa
		}
	}
	if len(keys) == 1 {
		sa := &corev1.ServiceAccount{}
		switch err := t.reader().Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: keys[0].name}, sa); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("read bootstrap ServiceAccount %s: %w", keys[0].name, err)
		default:
			add(sa)
		}
		return out, nil
	}
	instances := make([]string, 0, len(keys))
	for _, k := range keys {
		instances = append(instances, k.instance)
	}
	var l corev1.ServiceAccountList
	if err := t.reader().List(ctx, &l, client.InNamespace(t.Namespace), client.MatchingLabelsSelector{Selector: instancesSelector(instances)}); err != nil {
		return nil, fmt.Errorf("list bootstrap ServiceAccounts: %w", err)
	}
	for i := range l.Items {
		add(&l.Items[i])
	}
	return out, nil
}

// Usernames are the identities issued for the instance and not revoked:
// those of its bootstrap ServiceAccounts (owned by its UID). A token that
// has expired no longer authenticates, so a CSR it created was created
// while it was valid.
func (t *Tokens) Usernames(ctx context.Context, wi *wmcov1.WindowsInstance) ([]string, error) {
	sas, err := t.serviceAccounts(ctx, &wi.Name)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(sas))
	for _, sa := range sas {
		if ownedBy(&sa, wi.UID) {
			out = append(out, Username(sa.Namespace, sa.Name))
		}
	}
	return out, nil
}

// Revoke deletes every bootstrap ServiceAccount of the instance (its
// tokens stop authenticating at once), their token Secrets, and their
// subjects in the binding.
func (t *Tokens) Revoke(ctx context.Context, instance string) error {
	sas, err := t.serviceAccounts(ctx, &instance)
	if err != nil || len(sas) == 0 {
		return err
	}
	for i := range sas {
		if err := t.deleteIdentity(ctx, &sas[i]); err != nil {
			return err
		}
	}
	return t.syncBinding(ctx)
}

// deleteIdentity deletes a bootstrap ServiceAccount and the Secret keeping
// its token; the caller syncs the binding.
func (t *Tokens) deleteIdentity(ctx context.Context, sa *corev1.ServiceAccount) error {
	if err := t.Client.Delete(ctx, sa); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete bootstrap ServiceAccount %s: %w", sa.Name, err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: sa.Name, Namespace: t.Namespace}}
	if err := t.Client.Delete(ctx, sec); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete bootstrap token %s: %w", sec.Name, err)
	}
	return nil
}

// instanceKind is the kind of the owner of every credential.
const instanceKind = "WindowsInstance"

// checkOwner refuses to issue for an instance without a UID: its
// credentials could not be owned by it.
func checkOwner(wi *wmcov1.WindowsInstance) error {
	if wi == nil || wi.Name == "" || wi.UID == "" {
		return errors.New("bootstrap tokens: the WindowsInstance has no name or UID (it must be read from the API server)")
	}
	return nil
}

// ownerReference makes a credential the instance's: the garbage collector
// deletes it once the instance is gone. It does not block the instance's
// deletion (blockOwnerDeletion would need update on its finalizers).
func ownerReference(wi *wmcov1.WindowsInstance) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: wmcov1.GroupVersion.String(), Kind: instanceKind, Name: wi.Name, UID: wi.UID}
}

// ownedBy tells whether obj is owned by the WindowsInstance of that UID.
func ownedBy(obj metav1.Object, uid types.UID) bool {
	return uid != "" && slices.ContainsFunc(obj.GetOwnerReferences(), func(ref metav1.OwnerReference) bool {
		return ref.UID == uid && ref.Kind == instanceKind && strings.HasPrefix(ref.APIVersion, wmcov1.GroupVersion.Group+"/")
	})
}

// ownedByInstance tells whether obj is owned by some WindowsInstance.
func ownedByInstance(obj metav1.Object) bool {
	return slices.ContainsFunc(obj.GetOwnerReferences(), func(ref metav1.OwnerReference) bool {
		return ref.Kind == instanceKind && strings.HasPrefix(ref.APIVersion, wmcov1.GroupVersion.Group+"/")
	})
}

// serviceAccounts lists the bootstrap ServiceAccounts of one instance, or
// of every instance when instance is nil, sorted by name.
func (t *Tokens) serviceAccounts(ctx context.Context, instance *string) ([]corev1.ServiceAccount, error) {
	if t.Namespace == "" {
		return nil, fmt.Errorf("bootstrap tokens: no namespace")
	}
	sel := anyInstance()
	if instance != nil {
		sel = labels.SelectorFromSet(labels.Set{wmcov1.LabelInstance: *instance})
	}
	var l corev1.ServiceAccountList
	if err := t.reader().List(ctx, &l, client.InNamespace(t.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("list bootstrap ServiceAccounts: %w", err)
	}
	out := slices.DeleteFunc(l.Items, func(sa corev1.ServiceAccount) bool { return !strings.HasPrefix(sa.Name, NamePrefix) })
	slices.SortFunc(out, func(a, b corev1.ServiceAccount) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (t *Tokens) ttl() time.Duration { return ttlOr(t.TTL) }

func (t *Tokens) now() time.Time { return nowOr(t.Now) }

func ttlOr(ttl time.Duration) time.Duration {
	if ttl > 0 {
		return ttl
	}
	return DefaultTTL
}

func nowOr(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// tokenData is the content of a Secret keeping a token.
func tokenData(token string, exp time.Time) map[string][]byte {
	return map[string][]byte{tokenKey: []byte(token), expirationKey: []byte(exp.UTC().Format(time.RFC3339))}
}

// tokenExpiration is when the token a Secret keeps expires; false when the
// Secret keeps none.
func tokenExpiration(sec *corev1.Secret) (time.Time, bool) {
	if sec.Type != SecretType || len(sec.Data[tokenKey]) == 0 {
		return time.Time{}, false
	}
	exp, err := time.Parse(time.RFC3339, string(sec.Data[expirationKey]))
	return exp, err == nil
}

// freshToken is the token a Secret keeps while more than half its
// lifetime is left.
func freshToken(sec *corev1.Secret, now time.Time, ttl time.Duration) (string, bool) {
	exp, ok := tokenExpiration(sec)
	if !ok || exp.Sub(now) <= ttl/2 {
		return "", false
	}
	return string(sec.Data[tokenKey]), true
}
