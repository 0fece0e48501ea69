package bootstrap

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/csr"
)

const (
	// OpenShiftServiceAccountNamespace is the namespace of the service
	// account OpenShift's nodes bootstrap with.
	OpenShiftServiceAccountNamespace = "openshift-machine-config-operator"
	// OpenShiftServiceAccountName is its name.
	OpenShiftServiceAccountName = "node-bootstrapper"

	// AnnotationCredentialID is the annotation of a Secret keeping a
	// node-bootstrapper token that holds the token's credential ID
	// ("JTI=<jti>"), as the API server puts it into the extra of the user
	// the token authenticates (csr.CredentialIDKey). It is no secret.
	AnnotationCredentialID = "wmco.io/credential-id"

	// credentialIDJTIPrefix starts the credential ID of a service account
	// token (k8s.io/apiserver's authentication/token/jwt.CredentialIDForJTI).
	credentialIDJTIPrefix = "JTI="
)

// NodeBootstrapper issues per-host tokens of one shared service account,
// OpenShift's node-bootstrapper, and tells hosts apart by the tokens'
// credential IDs: the Issuer on OpenShift. See the package doc.
type NodeBootstrapper struct {
	// Client requests tokens and writes the Secrets keeping them.
	Client client.Client
	// Reader reads those Secrets; it must read live (the manager's API
	// reader). Defaults to Client.
	Reader client.Reader
	// Namespace is the operator's namespace, where the Secrets live.
	// Required.
	Namespace string
	// ServiceAccount is the service account whose tokens are issued
	// (default openshift-machine-config-operator/node-bootstrapper). The
	// cluster binds it to system:node-bootstrapper.
	ServiceAccount client.ObjectKey
	// TTL is how long a token is valid (default DefaultTTL; the API
	// server refuses less than 10 minutes).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	// reads coalesces IdentitiesOf's live reads of the token Secrets;
	// made on first use, each copy its own (a copy may read elsewhere).
	reads *coalesced[string, []corev1.Secret]
}

// ReadingFrom is a copy of n reading through reader unless n has a Reader.
func (n *NodeBootstrapper) ReadingFrom(reader client.Reader) Issuer {
	c := *n
	c.Reader = readerOr(c.Reader, reader)
	c.reads = nil
	return &c
}

// Username is the user the tokens authenticate as.
func (n *NodeBootstrapper) Username() string {
	sa := n.serviceAccount()
	return Username(sa.Namespace, sa.Name)
}

// Issue returns the newest token issued for the instance while more than
// half its lifetime is left, else requests a new one and keeps it in a
// new Secret, owned by the instance, with its credential ID. Secrets of
// expired tokens, and those an earlier instance of the same name left,
// are deleted on the way.
func (n *NodeBootstrapper) Issue(ctx context.Context, wi *wmcov1.WindowsInstance) (string, error) {
	if err := checkOwner(wi); err != nil {
		return "", err
	}
	instance := wi.Name
	now := n.now()
	secrets, err := n.secrets(ctx, instance)
	if err != nil {
		return "", err
	}
	for i := range secrets {
		if ownedBy(&secrets[i], wi.UID) {
			continue
		}
		if err := n.Client.Delete(ctx, &secrets[i]); err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("delete bootstrap token %s of an earlier instance: %w", secrets[i].Name, err)
		}
	}
	secrets = ownedSecrets(secrets, wi)
	for i := range secrets {
		if token, ok := freshToken(&secrets[i], now, n.ttl()); ok {
			return token, nil
		}
	}
	for i := range secrets {
		if exp, ok := tokenExpiration(&secrets[i]); !ok || !exp.After(now) {
			if err := n.Client.Delete(ctx, &secrets[i]); err != nil && !apierrors.IsNotFound(err) {
				return "", fmt.Errorf("delete expired bootstrap token %s: %w", secrets[i].Name, err)
			}
		}
	}

	key := n.serviceAccount()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(n.ttl() / time.Second))}}
	if err := n.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("request a token of %s for %s: %w", key, instance, err)
	}
	if tr.Status.Token == "" {
		return "", fmt.Errorf("request a token of %s for %s: the API server returned no token", key, instance)
	}
	id, err := CredentialID(tr.Status.Token, n.Username())
	if err != nil {
		return "", fmt.Errorf("token of %s for %s: %w", key, instance, err)
	}
	exp := tr.Status.ExpirationTimestamp.Time
	if exp.IsZero() {
		exp = now.Add(n.ttl())
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: NamePrefix, Namespace: n.Namespace,
			Labels: map[string]string{wmcov1.LabelInstance: instance},
			Annotations: map[string]string{
				AnnotationCredentialID:      id,
				"kubernetes.io/description": "TLS bootstrap token of Windows host " + instance + " (wmco, " + key.String() + "); deleted once it has joined",
			},
			// The garbage collector deletes it if the instance goes
			// without revoking it.
			OwnerReferences: []metav1.OwnerReference{ownerReference(wi)},
		},
		Type: SecretType,
		Data: tokenData(tr.Status.Token, exp),
	}
	if err := n.Client.Create(ctx, sec); err != nil {
		return "", fmt.Errorf("store bootstrap token of %s: %w", instance, err)
	}
	return tr.Status.Token, nil
}

// Identities are the shared user name with the credential ID of each token
// kept for the instance (owned by its UID).
func (n *NodeBootstrapper) Identities(ctx context.Context, wi *wmcov1.WindowsInstance) ([]csr.BootstrapIdentity, error) {
	secrets, err := n.secrets(ctx, wi.Name)
	if err != nil {
		return nil, err
	}
	return n.identities(ownedSecrets(secrets, wi)), nil
}

// ownedSecrets are those of secrets owned by the instance's UID: a token
// Secret an earlier instance of the same name left is not this one's. It
// reuses secrets' array.
func ownedSecrets(secrets []corev1.Secret, wi *wmcov1.WindowsInstance) []corev1.Secret {
	return slices.DeleteFunc(secrets, func(s corev1.Secret) bool { return !ownedBy(&s, wi.UID) })
}

// identities are the identities of the token Secrets.
func (n *NodeBootstrapper) identities(secrets []corev1.Secret) []csr.BootstrapIdentity {
	out := make([]csr.BootstrapIdentity, 0, len(secrets))
	for _, sec := range secrets {
		out = append(out, csr.BootstrapIdentity{Username: n.Username(), CredentialID: sec.Annotations[AnnotationCredentialID]})
	}
	return out
}

// IdentitiesOf are Identities when username is the node-bootstrapper's
// (every identity it issues has that user name), else none with no read.
// Only the Secrets owned by the instance's UID count.
// The Secrets are read live, in a read that starts after the call;
// concurrent calls share one (readSecrets).
func (n *NodeBootstrapper) IdentitiesOf(ctx context.Context, wi *wmcov1.WindowsInstance, username string) ([]csr.BootstrapIdentity, error) {
	if username != n.Username() {
		return nil, nil
	}
	if n.Namespace == "" {
		return nil, errors.New("bootstrap tokens: no namespace")
	}
	lazyInit.Lock()
	if n.reads == nil {
		n.reads = &coalesced[string, []corev1.Secret]{timeout: readTimeout}
	}
	reads := n.reads
	lazyInit.Unlock()
	secrets, err := reads.do(ctx, wi.Name, n.readSecrets)
	if err != nil {
		return nil, err
	}
	// The read is shared: filter a copy.
	return n.identities(ownedSecrets(slices.Clone(secrets), wi)), nil
}

// readSecrets lists live the Secrets keeping node-bootstrapper tokens of
// the instances, by instance (tokenSecrets); one LIST for them all (a
// consistent read).
func (n *NodeBootstrapper) readSecrets(ctx context.Context, instances []string) (map[string][]corev1.Secret, error) {
	var l corev1.SecretList
	if err := n.reader().List(ctx, &l, client.InNamespace(n.Namespace), client.MatchingLabelsSelector{Selector: instancesSelector(instances)}); err != nil {
		return nil, fmt.Errorf("list bootstrap tokens: %w", err)
	}
	byInstance := map[string][]corev1.Secret{}
	for _, sec := range l.Items {
		inst := sec.Labels[wmcov1.LabelInstance]
		byInstance[inst] = append(byInstance[inst], sec)
	}
	for inst, secrets := range byInstance {
		byInstance[inst] = tokenSecrets(secrets)
	}
	return byInstance, nil
}

// Revoke deletes every Secret keeping a token of an instance of that name,
// whoever owns it: no CSR of those tokens is tied to a host any more.
func (n *NodeBootstrapper) Revoke(ctx context.Context, instance string) error {
	secrets, err := n.secrets(ctx, instance)
	if err != nil {
		return err
	}
	for i := range secrets {
		if err := n.Client.Delete(ctx, &secrets[i]); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete bootstrap token %s: %w", secrets[i].Name, err)
		}
	}
	return nil
}

// secrets lists the Secrets keeping node-bootstrapper tokens of the
// instance, newest expiration first. A Secret without a credential ID is
// not one of them.
func (n *NodeBootstrapper) secrets(ctx context.Context, instance string) ([]corev1.Secret, error) {
	if n.Namespace == "" {
		return nil, errors.New("bootstrap tokens: no namespace")
	}
	var l corev1.SecretList
	if err := n.reader().List(ctx, &l, client.InNamespace(n.Namespace), client.MatchingLabels{wmcov1.LabelInstance: instance}); err != nil {
		return nil, fmt.Errorf("list bootstrap tokens of %s: %w", instance, err)
	}
	return tokenSecrets(l.Items), nil
}

// tokenSecrets are those of secrets that keep node-bootstrapper tokens,
// newest expiration first; a Secret without a credential ID is not one
// of them. It reuses secrets' array.
func tokenSecrets(secrets []corev1.Secret) []corev1.Secret {
	out := slices.DeleteFunc(secrets, func(s corev1.Secret) bool {
		return s.Type != SecretType || !strings.HasPrefix(s.Name, NamePrefix) ||
			!strings.HasPrefix(s.Annotations[AnnotationCredentialID], credentialIDJTIPrefix)
	})
	slices.SortFunc(out, func(a, b corev1.Secret) int {
		ea, _ := tokenExpiration(&a)
		eb, _ := tokenExpiration(&b)
		if c := eb.Compare(ea); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// CredentialID is the credential ID ("JTI=<jti>") the API server records
// for a service account token it issued, read from the token's claims;
// the token's subject must be username. The token's signature is not
// checked: it comes straight from the API server's TokenRequest.
func CredentialID(token, username string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("decode the token's claims: %w", err)
	}
	var claims struct {
		Subject string `json:"sub"`
		JTI     string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("decode the token's claims: %w", err)
	}
	if claims.Subject != username {
		return "", fmt.Errorf("the token's subject %q is not %q", claims.Subject, username)
	}
	if claims.JTI == "" {
		return "", errors.New("the token has no jti claim: CSRs it creates could not be tied to one host")
	}
	return credentialIDJTIPrefix + claims.JTI, nil
}

func (n *NodeBootstrapper) serviceAccount() client.ObjectKey {
	if n.ServiceAccount.Name != "" {
		return n.ServiceAccount
	}
	return client.ObjectKey{Namespace: OpenShiftServiceAccountNamespace, Name: OpenShiftServiceAccountName}
}

func (n *NodeBootstrapper) reader() client.Reader { return readerOr(n.Reader, n.Client) }

func (n *NodeBootstrapper) ttl() time.Duration { return ttlOr(n.TTL) }

func (n *NodeBootstrapper) now() time.Time { return nowOr(n.Now) }
