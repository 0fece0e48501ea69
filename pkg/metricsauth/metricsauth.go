/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Package metricsauth lets only authorized scrapers read the operator's
// metrics: the request's bearer token is authenticated by a TokenReview and
// the request authorized by a SubjectAccessReview of its non-resource path
// and verb (a scraper needs `get` on `/metrics`), both answered by the API
// server and cached briefly.
//
// It does what controller-runtime's filters.WithAuthenticationAndAuthorization
// does without linking k8s.io/apiserver and its CEL, gRPC and
// OpenTelemetry dependencies: the binary's mapped pages count in the
// operator's resident memory (see the README's "Operator memory").
package metricsauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// How long answers are kept, as controller-runtime's filter keeps them:
// an authenticated token for a minute, an allowed request for five, a
// denied one for 30 s. An unauthenticated token is kept 10 s, so that a
// scraper with a bad token costs the API server one review per 10 s.
const (
	AuthenticatedTTL   = time.Minute
	UnauthenticatedTTL = 10 * time.Second
	AllowedTTL         = 5 * time.Minute
	DeniedTTL          = 30 * time.Second
)

// ReviewTimeout bounds each review request to the API server.
const ReviewTimeout = 10 * time.Second

// maxCached bounds each cache; when full, expired answers go first, and
// all of them when none has expired.
const maxCached = 1024

// Filter is a metricsserver.FilterProvider (Options.FilterProvider of the
// manager's metrics server).
func Filter(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	authz, err := authorizationclient.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	a := &Authorizer{Tokens: authn.TokenReviews(), Access: authz.SubjectAccessReviews()}
	return a.Wrap, nil
}

// Authorizer authenticates and authorizes requests with the API server.
type Authorizer struct {
	// Tokens creates TokenReviews.
	Tokens authenticationclient.TokenReviewInterface
	// Access creates SubjectAccessReviews.
	Access authorizationclient.SubjectAccessReviewInterface
	// Now is the clock of the caches (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	users  map[[sha256.Size]byte]cached[*authenticationv1.UserInfo]
	access map[[sha256.Size]byte]cached[bool]
}

type cached[T any] struct {
	value   T
	expires time.Time
}

// Wrap is a metricsserver.Filter: it serves handler to authorized requests
// only, answering 401 without a valid bearer token, 403 when the token's
// user may not make the request, and 500 when the API server cannot say.
func (a *Authorizer) Wrap(log logr.Logger, handler http.Handler) (http.Handler, error) {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token, ok := BearerToken(req.Header.Get("Authorization"))
		if !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		ctx := req.Context()
		user, err := a.authenticate(ctx, token)
		switch {
		case err != nil:
			log.Error(err, "Authentication failed")
			http.Error(w, "Authentication failed", http.StatusInternalServerError)
			return
		case user == nil:
			log.V(4).Info("Authentication failed")
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		allowed, err := a.authorize(ctx, user, req.URL.Path, strings.ToLower(req.Method))
		switch {
		case err != nil:
			log.Error(err, "Authorization failed", "user", user.Username)
			http.Error(w, "Authorization for user "+user.Username+" failed", http.StatusInternalServerError)
			return
		case !allowed:
			log.V(4).Info("Authorization denied", "user", user.Username, "path", req.URL.Path)
			http.Error(w, "Authorization denied for user "+user.Username, http.StatusForbidden)
			return
		}
		handler.ServeHTTP(w, req)
	}), nil
}

// BearerToken returns the token of an Authorization header of the form
// "Bearer <token>" (the scheme in any case), as the API server reads it.
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", false
	}
	return token, true
}

// authenticate returns the token's user, nil when the API server does not
// authenticate it. The cache is keyed by the token's hash: the token
// itself is not kept.
func (a *Authorizer) authenticate(ctx context.Context, token string) (*authenticationv1.UserInfo, error) {
	key := sha256.Sum256([]byte(token))
	if v, ok := lookup(a, &a.users, key); ok {
		return v, nil
	}
	rctx, cancel := context.WithTimeout(ctx, ReviewTimeout)
	defer cancel()
	res, err := a.Tokens.Create(rctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	if !res.Status.Authenticated {
		store(a, &a.users, key, nil, UnauthenticatedTTL)
		return nil, nil
	}
	user := res.Status.User
	store(a, &a.users, key, &user, AuthenticatedTTL)
	return &user, nil
}

// authorize asks whether user may make a request of verb on the
// non-resource path.
func (a *Authorizer) authorize(ctx context.Context, user *authenticationv1.UserInfo, path, verb string) (bool, error) {
	spec := authorizationv1.SubjectAccessReviewSpec{
		User: user.Username, UID: user.UID, Groups: user.Groups,
		NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: path, Verb: verb},
	}
	if len(user.Extra) > 0 {
		spec.Extra = make(map[string]authorizationv1.ExtraValue, len(user.Extra))
		for k, v := range user.Extra {
			spec.Extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return false, err
	}
	key := sha256.Sum256(b)
	if v, ok := lookup(a, &a.access, key); ok {
		return v, nil
	}
	rctx, cancel := context.WithTimeout(ctx, ReviewTimeout)
	defer cancel()
	res, err := a.Access.Create(rctx, &authorizationv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	if res.Status.Allowed {
		store(a, &a.access, key, true, AllowedTTL)
	} else {
		store(a, &a.access, key, false, DeniedTTL)
	}
	return res.Status.Allowed, nil
}

func (a *Authorizer) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func lookup[T any](a *Authorizer, m *map[[sha256.Size]byte]cached[T], key [sha256.Size]byte) (T, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := (*m)[key]
	if !ok || !a.now().Before(e.expires) {
		var zero T
		return zero, false
	}
	return e.value, true
}

func store[T any](a *Authorizer, m *map[[sha256.Size]byte]cached[T], key [sha256.Size]byte, v T, ttl time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if *m == nil {
		*m = map[[sha256.Size]byte]cached[T]{}
	}
	if len(*m) >= maxCached {
		for k, e := range *m {
			if !now.Before(e.expires) {
				delete(*m, k)
			}
		}
		if len(*m) >= maxCached {
			clear(*m)
		}
	}
	(*m)[key] = cached[T]{value: v, expires: now.Add(ttl)}
}
