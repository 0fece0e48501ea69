// Package bootstrap issues the credential a host's kubelet uses for its
// TLS bootstrap. On plain Kubernetes that is a short-lived bootstrap token
// per host (a Secret in kube-system, labelled with its WindowsInstance) in
// the group system:bootstrappers:wmco, which may create CSRs; it is deleted
// once the host has joined. The CSR approver asks which identities were
// issued for a host, so a CSR from another host's token is refused.
package bootstrap

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

const (
	// Group is the extra group of the operator's bootstrap tokens.
	Group = "system:bootstrappers:wmco"
	// BindingName is the ClusterRoleBinding that lets Group create CSRs.
	BindingName = "wmco:node-bootstrapper"
	// DefaultTTL is how long a token is valid; a join takes minutes.
	DefaultTTL = time.Hour
	// UserPrefix starts a bootstrap token's user name.
	UserPrefix = "system:bootstrap:"

	tokenNamespace = "kube-system"
	secretPrefix   = "bootstrap-token-"
	tokenChars     = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// Tokens issues and revokes per-host bootstrap tokens.
type Tokens struct {
	Client client.Client
	// Reader for lookups; the manager's cache when nil is not wanted
	// (defaults to Client).
	Reader client.Reader
	TTL    time.Duration
	Now    func() time.Time
}

func (t *Tokens) reader() client.Reader {
	if t.Reader != nil {
		return t.Reader
	}
	return t.Client
}

// EnsureRBAC binds system:node-bootstrapper to Group.
func (t *Tokens) EnsureRBAC(ctx context.Context) error {
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: BindingName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: Group}},
	}
	err := t.Client.Create(ctx, crb)
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRoleBinding %s: %w", BindingName, err)
	}
	existing := &rbacv1.ClusterRoleBinding{}
	if err := t.reader().Get(ctx, client.ObjectKey{Name: BindingName}, existing); err != nil {
		return fmt.Errorf("read ClusterRoleBinding %s: %w", BindingName, err)
	}
	if existing.RoleRef == crb.RoleRef && len(existing.Subjects) == 1 && existing.Subjects[0] == crb.Subjects[0] {
		return nil
	}
	// Someone changed it: put it back (roleRef cannot be updated in place).
	if err := t.Client.Delete(ctx, existing); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replace ClusterRoleBinding %s: %w", BindingName, err)
	}
	if err := t.Client.Create(ctx, crb); err != nil {
		return fmt.Errorf("recreate ClusterRoleBinding %s: %w", BindingName, err)
	}
	return nil
}

// Issue returns a valid bootstrap token ("id.secret") for the instance,
// creating one when none is valid for at least half its lifetime.
func (t *Tokens) Issue(ctx context.Context, instance string) (string, error) {
	now := t.now()
	secrets, err := t.list(ctx, instance)
	if err != nil {
		return "", err
	}
	for _, s := range secrets {
		exp, err := time.Parse(time.RFC3339, string(s.Data["expiration"]))
		if err == nil && exp.Sub(now) > t.ttl()/2 {
			return string(s.Data["token-id"]) + "." + string(s.Data["token-secret"]), nil
		}
	}
	id, err := randomString(6)
	if err != nil {
		return "", err
	}
	secret, err := randomString(16)
	if err != nil {
		return "", err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: secretPrefix + id, Namespace: tokenNamespace,
			Labels: map[string]string{wmcov1.LabelInstance: instance},
		},
		Type: corev1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"token-id":                       id,
			"token-secret":                   secret,
			"description":                    "TLS bootstrap of Windows host " + instance + " (wmco)",
			"expiration":                     now.Add(t.ttl()).UTC().Format(time.RFC3339),
			"usage-bootstrap-authentication": "true",
			"auth-extra-groups":              Group,
		},
	}
	if err := t.Client.Create(ctx, s); err != nil {
		return "", fmt.Errorf("create bootstrap token for %s: %w", instance, err)
	}
	return id + "." + secret, nil
}

// Usernames are the identities the instance's unexpired tokens
// authenticate as.
func (t *Tokens) Usernames(ctx context.Context, instance string) ([]string, error) {
	secrets, err := t.list(ctx, instance)
	if err != nil {
		return nil, err
	}
	now := t.now()
	var out []string
	for _, s := range secrets {
		exp, err := time.Parse(time.RFC3339, string(s.Data["expiration"]))
		if err != nil || !exp.After(now) {
			continue
		}
		out = append(out, UserPrefix+string(s.Data["token-id"]))
	}
	sort.Strings(out)
	return out, nil
}

// Revoke deletes every token of the instance.
func (t *Tokens) Revoke(ctx context.Context, instance string) error {
	secrets, err := t.list(ctx, instance)
	if err != nil {
		return err
	}
	for i := range secrets {
		if err := t.Client.Delete(ctx, &secrets[i]); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete bootstrap token %s: %w", secrets[i].Name, err)
		}
	}
	return nil
}

func (t *Tokens) list(ctx context.Context, instance string) ([]corev1.Secret, error) {
	var l corev1.SecretList
	if err := t.reader().List(ctx, &l, client.InNamespace(tokenNamespace), client.MatchingLabels{wmcov1.LabelInstance: instance}); err != nil {
		return nil, fmt.Errorf("list bootstrap tokens of %s: %w", instance, err)
	}
	out := l.Items[:0]
	for _, s := range l.Items {
		if s.Type == corev1.SecretTypeBootstrapToken {
			out = append(out, s)
		}
	}
	return out, nil
}

func (t *Tokens) ttl() time.Duration {
	if t.TTL > 0 {
		return t.TTL
	}
	return DefaultTTL
}

func (t *Tokens) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = tokenChars[int(b[i])%len(tokenChars)]
	}
	return string(b), nil
}
