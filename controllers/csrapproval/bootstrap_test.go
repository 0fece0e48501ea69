package csrapproval_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/cluster"
	"github.com/openwmco/wmco/pkg/csr"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/openshiftcrds"
)

// whoAmI is the user a bearer token authenticates as, or the error of the
// API server (Unauthorized for a dead token).
func whoAmI(ctx context.Context, token string) (string, error) {
	u, err := userOf(ctx, token)
	return u.Username, err
}

// userOf is the user a bearer token authenticates as, extra included.
func userOf(ctx context.Context, token string) (authenticationv1.UserInfo, error) {
	cs, err := kubernetes.NewForConfig(&rest.Config{
		Host:            ctrltest.Cluster.Host,
		TLSClientConfig: rest.TLSClientConfig{CAData: ctrltest.Cluster.CACert},
		BearerToken:     token,
	})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

// bindingSubjects are the subjects of the bootstrap ClusterRoleBinding.
func bindingSubjects(ctx context.Context, g Gomega) []rbacv1.Subject {
	crb := &rbacv1.ClusterRoleBinding{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: bootstrap.BindingName}, crb)).To(Succeed())
	g.Expect(crb.RoleRef.Name).To(Equal(bootstrap.NodeBootstrapperRole))
	return crb.Subjects
}

// A host's bootstrap credential lives in the operator's namespace only: a
// ServiceAccount of its own, bound to system:node-bootstrapper by the one
// ClusterRoleBinding, and a short-lived TokenRequest token kept in a Secret
// of the same name. Issue returns the same token until it is half spent;
// Revoke kills the token, removes the Secret and the binding's subject;
// EnsureRBAC puts back a binding someone widened.
func TestBootstrapIdentityLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	wi := csrtInstance(t, "boot-"+csrtSuffix(t), "", wmcov1.WindowsInstanceStatus{})
	instance := wi.Name
	tokens := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
	g.Expect(tokens.EnsureRBAC(ctx)).To(Succeed())
	t.Cleanup(func() { _ = tokens.Revoke(context.Background(), instance) })

	token, err := tokens.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	users, err := tokens.Usernames(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(users).To(HaveLen(1))
	g.Expect(users[0]).To(HavePrefix(bootstrap.ServiceAccountUserPrefix + ctrltest.Namespace + ":" + bootstrap.NamePrefix))
	saName := users[0][len(bootstrap.ServiceAccountUserPrefix+ctrltest.Namespace+":"):]

	// The token authenticates as the ServiceAccount, which may create
	// CSRs through the binding and nothing more.
	g.Eventually(func() (string, error) { return whoAmI(ctx, token) }).WithTimeout(10 * time.Second).Should(Equal(users[0]))
	g.Eventually(func(g Gomega) {
		g.Expect(bindingSubjects(ctx, g)).To(ContainElement(rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: saName, Namespace: ctrltest.Namespace}))
	}).Should(Succeed())
	sa := &corev1.ServiceAccount{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: saName}, sa)).To(Succeed())
	g.Expect(sa.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, instance))
	g.Expect(sa.OwnerReferences).To(ConsistOf(And(HaveField("Kind", "WindowsInstance"), HaveField("Name", instance), HaveField("UID", wi.UID))),
		"the garbage collector deletes it with the instance")
	sec := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: saName}, sec)).To(Succeed())
	g.Expect(sec.Type).To(Equal(bootstrap.SecretType))

	// IdentitiesOf reads the requester's ServiceAccount by name: the
	// identity when it is this instance's, nothing for another instance
	// (or another instance of the same name), another user, namespace or
	// name.
	ids, err := tokens.IdentitiesOf(ctx, wi, users[0])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids).To(Equal([]csr.BootstrapIdentity{{Username: users[0]}}))
	other := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: instance + "-other", UID: "other"}}
	sameName := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: instance, UID: "a-later-one"}}
	for _, tc := range []struct {
		wi   *wmcov1.WindowsInstance
		user string
	}{
		{other, users[0]},
		{sameName, users[0]},
		{wi, bootstrap.Username(ctrltest.Namespace, bootstrap.NamePrefix+"absent")},
		{wi, bootstrap.Username("default", saName)},
		{wi, bootstrap.Username(ctrltest.Namespace, "default")},
		{wi, bootstrap.Username(ctrltest.Namespace, saName+"/token")},
		{wi, "system:node:" + saName},
	} {
		ids, err := tokens.IdentitiesOf(ctx, tc.wi, tc.user)
		g.Expect(err).NotTo(HaveOccurred(), tc.user)
		g.Expect(ids).To(BeEmpty(), "%s (%s) as %s", tc.wi.Name, tc.wi.UID, tc.user)
	}
	g.Expect(sec.OwnerReferences).To(ContainElement(HaveField("UID", sa.UID)))

	// Issued again while fresh: the same token, so a host's plan does not
	// change from one reconcile to the next.
	again, err := tokens.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(token))
	// Half spent: a new token of the same identity.
	late := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace, Now: func() time.Time { return time.Now().Add(40 * time.Minute) }}
	renewed, err := late.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(renewed).NotTo(Equal(token))
	g.Expect(whoAmI(ctx, renewed)).To(Equal(users[0]))

	// Someone widens the binding: EnsureRBAC (at every start) narrows it
	// to the bootstrap ServiceAccounts again.
	crb := &rbacv1.ClusterRoleBinding{}
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKey{Name: bootstrap.BindingName}, crb)).To(Succeed())
	crb.Subjects = append(crb.Subjects, rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:authenticated"})
	g.Expect(ctrltest.Client.Update(ctx, crb)).To(Succeed())
	g.Expect(tokens.EnsureRBAC(ctx)).To(Succeed())
	g.Expect(bindingSubjects(ctx, g)).NotTo(ContainElement(HaveField("Kind", rbacv1.GroupKind)))

	// Revoked: both tokens stop authenticating (after the API server's
	// token cache, 10 s by default), the Secret and the subject are gone.
	g.Expect(tokens.Revoke(ctx, instance)).To(Succeed())
	for _, tok := range []string{token, renewed} {
		g.Eventually(func() error { _, err := whoAmI(ctx, tok); return err }).
			WithTimeout(30 * time.Second).WithPolling(time.Second).Should(Satisfy(apierrors.IsUnauthorized))
	}
	err = ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: saName}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "token Secret: %v", err)
	g.Expect(bindingSubjects(ctx, g)).NotTo(ContainElement(HaveField("Name", saName)))
	revoked := users[0]
	users, err = tokens.Usernames(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(users).To(BeEmpty())
	ids, err = tokens.IdentitiesOf(ctx, wi, revoked)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids).To(BeEmpty())
}

// identityAsk is a call of IdentitiesOf and what it must answer.
type identityAsk struct {
	wi   *wmcov1.WindowsInstance
	user string
	want []csr.BootstrapIdentity
}

// IdentitiesOf calls made together share live reads (a LIST selecting the
// instances asked about), and each call still gets what a read of its own
// would give: for per-host ServiceAccounts, the identity when the user
// name is a ServiceAccount of its instance, none for another instance's,
// a revoked one or one never issued; for OpenShift's node-bootstrapper,
// every credential ID kept for the instance, none for a revoked instance
// or another user.
func TestIdentitiesOfShareLiveReads(t *testing.T) {
	ctx := t.Context()
	t.Run("ServiceAccounts", func(t *testing.T) {
		g := NewWithT(t)
		issuer := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
		instances, users := make([]*wmcov1.WindowsInstance, 4), make([]string, 4)
		for i := range instances {
			instances[i] = csrtInstance(t, fmt.Sprintf("share-%d-%s", i, csrtSuffix(t)), "", wmcov1.WindowsInstanceStatus{})
			_, err := issuer.Issue(ctx, instances[i])
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(func() { _ = issuer.Revoke(context.Background(), instances[i].Name) })
			u, err := issuer.Usernames(ctx, instances[i])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(u).To(HaveLen(1))
			users[i] = u[0]
		}
		// The last one is revoked: its ServiceAccount is gone.
		g.Expect(issuer.Revoke(ctx, instances[3].Name)).To(Succeed())
		var asks []identityAsk
		for i := range 3 {
			asks = append(asks,
				identityAsk{instances[i], users[i], []csr.BootstrapIdentity{{Username: users[i]}}},
				identityAsk{instances[i], users[(i+1)%3], nil},
				identityAsk{instances[i], users[3], nil},
				identityAsk{instances[i], bootstrap.Username(ctrltest.Namespace, bootstrap.NamePrefix+"never"), nil})
		}
		asks = append(asks, identityAsk{instances[3], users[3], nil})
		expectSharedReads(t, &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}, asks)
	})
	t.Run("NodeBootstrapper", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(openshiftcrds.InstallNodeBootstrapper(ctx, ctrltest.Cluster.Config)).To(Succeed())
		issuer := &bootstrap.NodeBootstrapper{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
		instances := make([]*wmcov1.WindowsInstance, 4)
		ids := make([][]csr.BootstrapIdentity, 4)
		for i := range instances {
			instances[i] = csrtInstance(t, fmt.Sprintf("share-nb-%d-%s", i, csrtSuffix(t)), "", wmcov1.WindowsInstanceStatus{})
			_, err := issuer.Issue(ctx, instances[i])
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(func() { _ = issuer.Revoke(context.Background(), instances[i].Name) })
			ids[i], err = issuer.Identities(ctx, instances[i])
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ids[i]).To(HaveLen(1))
		}
		g.Expect(issuer.Revoke(ctx, instances[3].Name)).To(Succeed())
		var asks []identityAsk
		for i := range 3 {
			asks = append(asks,
				identityAsk{instances[i], issuer.Username(), ids[i]},
				identityAsk{instances[i], bootstrap.Username(ctrltest.Namespace, openshiftcrds.NodeBootstrapper), nil})
		}
		asks = append(asks, identityAsk{instances[3], issuer.Username(), nil})
		expectSharedReads(t, &bootstrap.NodeBootstrapper{Client: ctrltest.Client, Namespace: ctrltest.Namespace}, asks)
	})
}

// expectSharedReads makes the calls of asks three times each, all at once,
// through issuer reading through a countingReader, until a round made a
// LIST (calls made together share a read unless the scheduler runs each
// alone), checking every answer of every round, and that the calls made
// fewer reads than there were calls.
func expectSharedReads(t *testing.T, issuer bootstrap.Issuer, asks []identityAsk) {
	g := NewWithT(t)
	ctx := t.Context()
	reader := &ctrltest.CountingReader{Reader: ctrltest.Client}
	tokens := issuer.ReadingFrom(reader)
	rounds := 0
	g.Eventually(func(g Gomega) {
		rounds++
		var wg sync.WaitGroup
		ids := make([][]csr.BootstrapIdentity, 3*len(asks))
		errs := make([]error, len(ids))
		for i := range ids {
			a := asks[i%len(asks)]
			wg.Go(func() { ids[i], errs[i] = tokens.IdentitiesOf(ctx, a.wi, a.user) })
		}
		wg.Wait()
		for i := range ids {
			a := asks[i%len(asks)]
			g.Expect(errs[i]).NotTo(HaveOccurred())
			if a.want == nil {
				g.Expect(ids[i]).To(BeEmpty(), "%s as %s", a.wi.Name, a.user)
			} else {
				g.Expect(ids[i]).To(Equal(a.want), "%s as %s", a.wi.Name, a.user)
			}
		}
		g.Expect(reader.Lists.Load()).To(BeNumerically(">", 0))
	}).Should(Succeed())
	calls := int32(rounds * len(asks) * 3)
	g.Expect(reader.Gets.Load()+reader.Lists.Load()).To(BeNumerically("<", calls), "%d calls share reads", calls)
	t.Logf("%d calls in %d rounds: %d GETs, %d LISTs", calls, rounds, reader.Gets.Load(), reader.Lists.Load())
}

// On OpenShift a host's bootstrap credential is a short-lived token of the
// machine-config-operator's node-bootstrapper, kept with its credential ID
// in a Secret of the operator's namespace; the operator creates no
// ServiceAccount and no bootstrap-token Secret. The credential ID it
// records is the one the API server gives the token's user. Issue returns
// the same token until it is half spent; a renewal keeps the earlier
// credential until it expires; Revoke deletes the Secrets.
func TestNodeBootstrapperLifecycle(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	wi := csrtInstance(t, "nb-"+csrtSuffix(t), "", wmcov1.WindowsInstanceStatus{})
	instance := wi.Name
	g.Expect(openshiftcrds.InstallNodeBootstrapper(ctx, ctrltest.Cluster.Config)).To(Succeed())
	nb := &bootstrap.NodeBootstrapper{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
	t.Cleanup(func() { _ = nb.Revoke(context.Background(), instance) })
	records := func(g Gomega) []corev1.Secret {
		var l corev1.SecretList
		g.Expect(ctrltest.Client.List(ctx, &l, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: instance})).To(Succeed())
		return l.Items
	}
	credentialIDs := func(g Gomega) []string {
		ids, err := nb.Identities(ctx, wi)
		g.Expect(err).NotTo(HaveOccurred())
		var out []string
		for _, id := range ids {
			g.Expect(id.Username).To(Equal(bootstrap.Username(openshiftcrds.MCONamespace, openshiftcrds.NodeBootstrapper)))
			out = append(out, id.CredentialID)
		}
		return out
	}

	token, err := nb.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	user, err := userOf(ctx, token)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(user.Username).To(Equal(nb.Username()))
	g.Expect(user.Extra).To(HaveKeyWithValue(csr.CredentialIDKey, HaveExactElements(HavePrefix("JTI="))))
	first := user.Extra[csr.CredentialIDKey][0]
	g.Expect(credentialIDs(g)).To(Equal([]string{first}))
	// IdentitiesOf: all of them for the node-bootstrapper, none for
	// another requester.
	ids, err := nb.IdentitiesOf(ctx, wi, nb.Username())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids).To(Equal([]csr.BootstrapIdentity{{Username: nb.Username(), CredentialID: first}}))
	ids, err = nb.IdentitiesOf(ctx, wi, bootstrap.Username(ctrltest.Namespace, openshiftcrds.NodeBootstrapper))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids).To(BeEmpty())
	recs := records(g)
	g.Expect(recs).To(HaveLen(1))
	g.Expect(recs[0].Name).To(HavePrefix(bootstrap.NamePrefix))
	g.Expect(recs[0].Type).To(Equal(bootstrap.SecretType))
	g.Expect(recs[0].Annotations).To(HaveKeyWithValue(bootstrap.AnnotationCredentialID, first))
	g.Expect(recs[0].OwnerReferences).To(ConsistOf(And(HaveField("Kind", "WindowsInstance"), HaveField("UID", wi.UID))),
		"the garbage collector deletes it with the instance")

	// Nothing else was created: no ServiceAccount, no bootstrap-token
	// Secret anywhere.
	var sas corev1.ServiceAccountList
	g.Expect(ctrltest.Client.List(ctx, &sas, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: instance})).To(Succeed())
	g.Expect(sas.Items).To(BeEmpty())
	var bootstrapTokens corev1.SecretList
	g.Expect(ctrltest.Client.List(ctx, &bootstrapTokens, client.MatchingFields{"type": string(corev1.SecretTypeBootstrapToken)})).To(Succeed())
	g.Expect(bootstrapTokens.Items).To(BeEmpty())

	// Issued again while fresh: the same token.
	again, err := nb.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(Equal(token))
	// Half spent: a new token of another credential ID; the first stays
	// tied to the host until it expires.
	late := &bootstrap.NodeBootstrapper{Client: ctrltest.Client, Namespace: ctrltest.Namespace, Now: func() time.Time { return time.Now().Add(40 * time.Minute) }}
	renewed, err := late.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(renewed).NotTo(Equal(token))
	second, err := bootstrap.CredentialID(renewed, nb.Username())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(second).NotTo(Equal(first))
	g.Expect(credentialIDs(g)).To(ConsistOf(first, second))
	// Both expired: their Secrets go, a third token is kept.
	expired := &bootstrap.NodeBootstrapper{Client: ctrltest.Client, Namespace: ctrltest.Namespace, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	third, err := expired.Issue(ctx, wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(third).NotTo(BeElementOf(token, renewed))
	g.Expect(credentialIDs(g)).To(HaveLen(1))
	g.Expect(credentialIDs(g)).NotTo(ContainElements(first, second))

	// Revoked: no Secret, no identity. The token itself authenticates
	// until it expires; the approver is what refuses its CSRs (see
	// TestCSRApproverForgedAndLegitimateRequests/OpenShift).
	g.Expect(nb.Revoke(ctx, instance)).To(Succeed())
	g.Expect(records(g)).To(BeEmpty())
	g.Expect(credentialIDs(g)).To(BeEmpty())
	g.Expect(whoAmI(ctx, third)).To(Equal(nb.Username()))
}

// Many hosts issued and revoked at once (a MachineSet scaled up, then
// joined) each get their subject in the one binding, and lose it: their
// binding updates are shared, not 40 writers conflicting on one object.
func TestConcurrentIssuesAllGetBound(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	tokens := &bootstrap.Tokens{Client: ctrltest.Client, Namespace: ctrltest.Namespace}
	g.Expect(tokens.EnsureRBAC(ctx)).To(Succeed())
	const n = 40
	sfx := csrtSuffix(t)
	instances := make([]*wmcov1.WindowsInstance, n)
	for i := range instances {
		instances[i] = csrtInstance(t, fmt.Sprintf("many-%s-%02d", sfx, i), "", wmcov1.WindowsInstanceStatus{})
	}
	t.Cleanup(func() {
		for _, in := range instances {
			_ = tokens.Revoke(context.Background(), in.Name)
		}
	})
	each := func(f func(wi *wmcov1.WindowsInstance) error) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i, in := range instances {
			wg.Go(func() { errs[i] = f(in) })
		}
		wg.Wait()
		return errs
	}
	for _, err := range each(func(in *wmcov1.WindowsInstance) error { _, err := tokens.Issue(ctx, in); return err }) {
		g.Expect(err).NotTo(HaveOccurred())
	}
	var want []rbacv1.Subject
	for _, in := range instances {
		users, err := tokens.Usernames(ctx, in)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(users).To(HaveLen(1))
		name := users[0][len(bootstrap.ServiceAccountUserPrefix+ctrltest.Namespace+":"):]
		want = append(want, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ctrltest.Namespace})
	}
	g.Expect(bindingSubjects(ctx, g)).To(ContainElements(want), "every issued host is bound when Issue returns")

	for _, err := range each(func(in *wmcov1.WindowsInstance) error { return tokens.Revoke(ctx, in.Name) }) {
		g.Expect(err).NotTo(HaveOccurred())
	}
	for _, s := range want {
		g.Expect(bindingSubjects(ctx, g)).NotTo(ContainElement(s), "every revoked host is unbound when Revoke returns")
	}
}

// A bootstrap credential belongs to the WindowsInstance it was issued for,
// by UID. One its instance left behind (the finalizer removed by hand, an
// orphaning delete) is no later instance's of the same name (ConfigMap
// instances are named after their address): the approver matches nothing
// to it, the binding leaves it out, and Issue deletes it and issues anew.
// With a background delete the garbage collector removes it.
func TestBootstrapIdentityOfAnEarlierInstance(t *testing.T) {
	for _, platform := range []cluster.Platform{cluster.Kubernetes, cluster.OpenShift} {
		t.Run(string(platform), func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			issuer := csrtIssuer(t, platform, ctrltest.Client)
			name := "earlier-" + csrtSuffix(t)
			t.Cleanup(func() { _ = issuer.Revoke(context.Background(), name) })
			// The credential Secrets (NodeBootstrapper) or ServiceAccounts
			// (Tokens) labelled with the instance's name.
			credentials := func(g Gomega) []client.Object {
				var out []client.Object
				if platform == cluster.OpenShift {
					var l corev1.SecretList
					g.Expect(ctrltest.Client.List(ctx, &l, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: name})).To(Succeed())
					for i := range l.Items {
						out = append(out, &l.Items[i])
					}
					return out
				}
				var l corev1.ServiceAccountList
				g.Expect(ctrltest.Client.List(ctx, &l, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: name})).To(Succeed())
				for i := range l.Items {
					out = append(out, &l.Items[i])
				}
				return out
			}
			gone := func(name string) {
				g.Eventually(func() bool {
					return apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: name}, &wmcov1.WindowsInstance{}))
				}).WithTimeout(time.Minute).Should(BeTrue())
			}

			first := csrtInstance(t, name, "", wmcov1.WindowsInstanceStatus{})
			firstToken, err := issuer.Issue(ctx, first)
			g.Expect(err).NotTo(HaveOccurred())
			firstIDs, err := issuer.Identities(ctx, first)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(firstIDs).To(HaveLen(1))
			left := credentials(g)
			g.Expect(left).To(HaveLen(1))

			// Deleted orphaning its dependents: the credential stays, with
			// no owner.
			g.Expect(ctrltest.Client.Delete(ctx, first, client.PropagationPolicy(metav1.DeletePropagationOrphan))).To(Succeed())
			gone(name)
			g.Eventually(func(g Gomega) {
				now := credentials(g)
				g.Expect(now).To(HaveLen(1))
				g.Expect(now[0].GetUID()).To(Equal(left[0].GetUID()))
				g.Expect(now[0].GetOwnerReferences()).To(BeEmpty())
			}).WithTimeout(30 * time.Second).Should(Succeed())

			// A new instance of the same name: the left credential is not
			// its own.
			second := csrtInstance(t, name, "", wmcov1.WindowsInstanceStatus{})
			g.Expect(second.UID).NotTo(Equal(first.UID))
			ids, err := issuer.Identities(ctx, second)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ids).To(BeEmpty())
			ids, err = issuer.IdentitiesOf(ctx, second, firstIDs[0].Username)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ids).To(BeEmpty(), "the approver ties no CSR of the earlier instance's credential to the new one")
			if tokens, ok := issuer.(*bootstrap.Tokens); ok {
				// At start-up the binding is narrowed to owned ones.
				g.Expect(tokens.EnsureRBAC(ctx)).To(Succeed())
				g.Expect(bindingSubjects(ctx, g)).NotTo(ContainElement(HaveField("Name", left[0].GetName())))
			}

			// Issue deletes it and issues a credential of the new instance.
			token, err := issuer.Issue(ctx, second)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(token).NotTo(Equal(firstToken))
			ids, err = issuer.Identities(ctx, second)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ids).To(HaveLen(1))
			g.Expect(ids).NotTo(ContainElement(firstIDs[0]))
			now := credentials(g)
			g.Expect(now).To(HaveLen(1))
			g.Expect(now[0].GetUID()).NotTo(Equal(left[0].GetUID()))
			g.Expect(now[0].GetOwnerReferences()).To(ConsistOf(HaveField("UID", second.UID)))

			// Deleted without revoking (its finalizer removed by hand): the
			// garbage collector removes the credential (and, on plain
			// Kubernetes, the Secret the ServiceAccount owns).
			g.Expect(ctrltest.Client.Delete(ctx, second)).To(Succeed())
			gone(name)
			g.Eventually(func(g Gomega) {
				g.Expect(credentials(g)).To(BeEmpty())
				var secrets corev1.SecretList
				g.Expect(ctrltest.Client.List(ctx, &secrets, client.InNamespace(ctrltest.Namespace), client.MatchingLabels{wmcov1.LabelInstance: name})).To(Succeed())
				g.Expect(secrets.Items).To(BeEmpty())
			}).WithTimeout(time.Minute).Should(Succeed())
		})
	}
}
