/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package metricsauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"

	"github.com/openwmco/wmco/pkg/metricsauth"
	"github.com/openwmco/wmco/test/localcluster"
)

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc.def", "abc.def", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearerabc", "", false},
		{"Bearer abc def", "", false},
		{"Token abc", "", false},
	} {
		g := NewWithT(t)
		token, ok := metricsauth.BearerToken(c.header)
		g.Expect(ok).To(Equal(c.ok), "%q", c.header)
		g.Expect(token).To(Equal(c.token), "%q", c.header)
	}
}

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  x ", "Basic a", "", "Bearer a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := metricsauth.BearerToken(header)
		if !ok {
			if token != "" {
				t.Fatalf("%q: refused with token %q", header, token)
			}
			return
		}
		if token == "" || strings.ContainsAny(token, " \t") || !strings.Contains(header, token) {
			t.Fatalf("%q: token %q", header, token)
		}
	})
}

// countingTokens and countingAccess count the reviews that reach the API
// server.
type countingTokens struct {
	authenticationclient.TokenReviewInterface
	n atomic.Int32
}

func (c *countingTokens) Create(ctx context.Context, r *authenticationv1.TokenReview, o metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	c.n.Add(1)
	return c.TokenReviewInterface.Create(ctx, r, o)
}

type countingAccess struct {
	authorizationclient.SubjectAccessReviewInterface
	n atomic.Int32
}

func (c *countingAccess) Create(ctx context.Context, r *authorizationv1.SubjectAccessReview, o metav1.CreateOptions) (*authorizationv1.SubjectAccessReview, error) {
	c.n.Add(1)
	return c.SubjectAccessReviewInterface.Create(ctx, r, o)
}

// Against a real API server: only a token whose user may get /metrics
// reaches the handler; answers are cached for their TTL and asked again
// after it.
func TestFilterAgainstAPIServer(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Stop() })
	cs, err := kubernetes.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())

	const ns = "default"
	token := func(name string) string {
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}
	scraper, nobody := token("scraper"), token("nobody")
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "scraper"}},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	// The provider the operator uses serves the scraper and only it.
	hc, err := rest.HTTPClientFor(c.Config)
	g.Expect(err).NotTo(HaveOccurred())
	filter, err := metricsauth.Filter(c.Config, hc)
	g.Expect(err).NotTo(HaveOccurred())
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("metrics")) })
	h, err := filter(logr.Discard(), ok)
	g.Expect(err).NotTo(HaveOccurred())
	do := func(h http.Handler, method, path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, method, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		name, method, path, auth string
		code                     int
	}{
		{"no token", http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{"basic auth", http.MethodGet, "/metrics", "Basic c2NyYXBlcjpwYXNz", http.StatusUnauthorized},
		{"a token the API server did not issue", http.MethodGet, "/metrics", "Bearer not-a-token", http.StatusUnauthorized},
		{"a user without the permission", http.MethodGet, "/metrics", "Bearer " + nobody, http.StatusForbidden},
		{"the scraper", http.MethodGet, "/metrics", "Bearer " + scraper, http.StatusOK},
		{"the scraper, another path", http.MethodGet, "/debug", "Bearer " + scraper, http.StatusForbidden},
		{"the scraper, another verb", http.MethodPost, "/metrics", "Bearer " + scraper, http.StatusForbidden},
	} {
		rec := do(h, tc.method, tc.path, tc.auth)
		g.Expect(rec.Code).To(Equal(tc.code), "%s: %s", tc.name, rec.Body.String())
		if tc.code == http.StatusOK {
			g.Expect(rec.Body.String()).To(Equal("metrics"))
		} else {
			g.Expect(rec.Body.String()).NotTo(ContainSubstring("metrics"), tc.name)
		}
	}

	// Cached: one review of each kind per TTL.
	tokens := &countingTokens{TokenReviewInterface: cs.AuthenticationV1().TokenReviews()}
	access := &countingAccess{SubjectAccessReviewInterface: cs.AuthorizationV1().SubjectAccessReviews()}
	now := time.Now()
	a := &metricsauth.Authorizer{Tokens: tokens, Access: access, Now: func() time.Time { return now }}
	h, err = a.Wrap(logr.Discard(), ok)
	g.Expect(err).NotTo(HaveOccurred())
	for range 3 {
		g.Expect(do(h, http.MethodGet, "/metrics", "Bearer "+scraper).Code).To(Equal(http.StatusOK))
		g.Expect(do(h, http.MethodGet, "/metrics", "Bearer "+nobody).Code).To(Equal(http.StatusForbidden))
		g.Expect(do(h, http.MethodGet, "/metrics", "Bearer not-a-token").Code).To(Equal(http.StatusUnauthorized))
	}
	g.Expect(tokens.n.Load()).To(BeEquivalentTo(3))
	g.Expect(access.n.Load()).To(BeEquivalentTo(2))

	// The binding is removed: the scraper keeps its cached permission
	// until it expires, then is refused.
	g.Expect(cs.RbacV1().ClusterRoleBindings().Delete(ctx, "metrics-reader", metav1.DeleteOptions{})).To(Succeed())
	g.Expect(do(h, http.MethodGet, "/metrics", "Bearer "+scraper).Code).To(Equal(http.StatusOK))
	g.Eventually(func() int {
		now = now.Add(metricsauth.AllowedTTL) // every answer expired
		return do(h, http.MethodGet, "/metrics", "Bearer "+scraper).Code
	}).WithTimeout(30 * time.Second).Should(Equal(http.StatusForbidden))
	g.Expect(tokens.n.Load()).To(BeNumerically(">", 3), "the token was reviewed again after its TTL")
}
