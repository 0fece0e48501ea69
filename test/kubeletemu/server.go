package kubeletemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// NodeLogDir is where the kubelet's node log query looks for the log
// files of a service on Windows: the kubelet's nodeLogDir "/var/log/"
// on the system drive (pkg/kubelet/kubelet_server_journal.go).
const NodeLogDir = `C:\var\log`

// Limits of a node log query, as the kubelet's.
const (
	maxServices      = 4
	maxServiceLength = 256
	maxTailLines     = 100000
)

// unsafeServiceName is the kubelet's reServiceNameUnsafeCharacters.
var unsafeServiceName = regexp.MustCompile(`[^a-zA-Z\-_.:0-9@]+`)

// serve runs the kubelet's HTTPS port on ln until ctx ends: the node log
// query (/logs/) and nothing else, behind the kubelet's authentication
// (client certificates signed by authentication.x509.clientCAFile, bearer
// tokens through a TokenReview when authentication.webhook is enabled,
// anonymous requests only when allowed) and authorization (a
// SubjectAccessReview for nodes/log when authorization.mode is Webhook).
func (k *kubelet) serve(ctx context.Context, ln net.Listener) error {
	pool := x509.NewCertPool()
	if ca := k.kc.Authentication.X509.ClientCAFile; ca != "" {
		pem, err := k.cfg.Disk.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("read client CA %s: %w", ca, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("client CA %s holds no certificate", ca)
		}
		k.clientCAs = pool
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(k.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// As the kubelet: any certificate is taken at the handshake
			// and verified by the authenticator, which answers 401.
			ClientAuth:     tls.RequestClientCert,
			GetCertificate: k.servingCertificate,
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// servingCertificate is the certificate the kubelet serves: the one its
// serving CSR was issued (kubelet-server-current.pem). Like a kubelet with
// serverTLSBootstrap, it has none until the CSR is approved and fails the
// handshake meanwhile.
func (k *kubelet) servingCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	data, err := k.cfg.Disk.ReadFile(k.flags.certDir + `\kubelet-server-current.pem`)
	if err != nil {
		return nil, errors.New("no serving certificate available for the kubelet")
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	return &cert, nil
}

// requestUser is who sent a request.
type requestUser struct {
	name   string
	groups []string
	uid    string
	extra  map[string]authorizationv1.ExtraValue
}

// authenticate finds the request's user as the kubelet's authenticator
// does; ok false means 401.
func (k *kubelet) authenticate(r *http.Request) (requestUser, bool) {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if k.clientCAs == nil {
			return requestUser{}, false
		}
		c := r.TLS.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, ic := range r.TLS.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: k.clientCAs, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return requestUser{}, false
		}
		return requestUser{name: c.Subject.CommonName, groups: slices.Clone(c.Subject.Organization)}, true
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && k.kc.Authentication.Webhook.Enabled != nil && *k.kc.Authentication.Webhook.Enabled {
		tr, err := k.client.AuthenticationV1().TokenReviews().Create(r.Context(),
			&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: strings.TrimSpace(tok)}}, metav1.CreateOptions{})
		if err != nil || !tr.Status.Authenticated {
			return requestUser{}, false
		}
		u := requestUser{name: tr.Status.User.Username, groups: tr.Status.User.Groups, uid: tr.Status.User.UID}
		if len(tr.Status.User.Extra) > 0 {
			u.extra = map[string]authorizationv1.ExtraValue{}
			for key, v := range tr.Status.User.Extra {
				u.extra[key] = authorizationv1.ExtraValue(v)
			}
		}
		return u, true
	}
	if a := k.kc.Authentication.Anonymous.Enabled; a != nil && *a {
		return requestUser{name: "system:anonymous", groups: []string{"system:unauthenticated"}}, true
	}
	return requestUser{}, false
}

// authorize asks the API server whether u may do the request, as the
// kubelet's webhook authorizer: nodes/log for /logs/.
func (k *kubelet) authorize(ctx context.Context, u requestUser, r *http.Request) (bool, string, error) {
	if k.kc.Authorization.Mode != kubeletv1beta1.KubeletAuthorizationModeWebhook {
		return true, "", nil // AlwaysAllow
	}
	verb := map[string]string{http.MethodGet: "get", http.MethodHead: "get", http.MethodPost: "create",
		http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[r.Method]
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.name, Groups: u.groups, UID: u.uid, Extra: u.extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Resource: "nodes", Subresource: "log", Name: k.nodeName,
		},
	}}
	res, err := k.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, "", err
	}
	return res.Status.Allowed, res.Status.Reason, nil
}

func (k *kubelet) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/logs/") && r.URL.Path != "/logs" {
		http.NotFound(w, r)
		return
	}
	u, ok := k.authenticate(r)
	if !ok {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return
	}
	allowed, reason, err := k.authorize(r.Context(), u, r)
	if err != nil {
		http.Error(w, "Authorization error (user="+u.name+", verb=get, resource=nodes, subresource=log)", http.StatusInternalServerError)
		return
	}
	if !allowed {
		msg := fmt.Sprintf("Forbidden (user=%s, verb=get, resource=nodes, subresource=log)", u.name)
		if reason != "" {
			msg += ": " + reason
		}
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h := k.kc.EnableSystemLogHandler; h != nil && !*h {
		http.Error(w, "logs endpoint is disabled.", http.StatusMethodNotAllowed)
		return
	}
	k.serveLogs(w, r)
}

// serveLogs is the kubelet's log server under /logs/: with
// enableSystemLogQuery, a ?query= names services (or one file) whose logs
// it returns; otherwise, and without a query, it serves the files and
// directory listings of NodeLogDir.
func (k *kubelet) serveLogs(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/logs"), "/")
	q := r.URL.Query()
	if k.kc.EnableSystemLogQuery != nil && *k.kc.EnableSystemLogQuery && q.Has("query") {
		if rel != "" {
			http.Error(w, "path not allowed in query mode", http.StatusNotAcceptable)
			return
		}
		services, files, opts, err := parseLogQuery(q)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotAcceptable)
			return
		}
		if len(services) > 0 {
			w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
			if opts {
				fmt.Fprintf(w, "\noptions present and query resolved to log files for %v\ntry without specifying options\n", services)
				return
			}
			for _, s := range services {
				k.copyServiceLog(w, s)
			}
			return
		}
		rel = strings.TrimLeft(strings.ReplaceAll(files[0], `\`, "/"), "/")
	}
	k.serveLogFile(w, r, rel)
}

// parseLogQuery reads and validates the kubelet's node log query
// parameters; opts reports whether any option besides query was given.
func parseLogQuery(q url.Values) (services, files []string, opts bool, err error) {
	for _, v := range q["query"] {
		switch {
		case strings.ContainsAny(v, `/\`):
			files = append(files, v)
		case strings.TrimSpace(v) != "":
			services = append(services, v)
		}
	}
	switch {
	case len(services) == 0 && len(files) == 0:
		return nil, nil, false, errors.New("query: Required value: may not be empty")
	case len(services) > 0 && len(files) > 0:
		return nil, nil, false, errors.New("query: Invalid value: cannot specify a file and service")
	case len(files) > 1:
		return nil, nil, false, errors.New("query: Invalid value: cannot specify more than one file")
	case len(services) > maxServices:
		return nil, nil, false, fmt.Errorf("query: Too many: %d: must have at most %d items", len(services), maxServices)
	}
	for _, s := range services {
		if len(s) > maxServiceLength {
			return nil, nil, false, fmt.Errorf("query: Invalid value: %q: length must be less than %d", s, maxServiceLength)
		}
		if unsafeServiceName.MatchString(s) {
			return nil, nil, false, fmt.Errorf("query: Invalid value: %q: input contains unsupported characters", s)
		}
	}
	for _, name := range []string{"sinceTime", "untilTime"} {
		if v := q.Get(name); v != "" {
			if _, err := time.Parse(time.RFC3339, v); err != nil {
				return nil, nil, false, fmt.Errorf("%s: Invalid value: %q: invalid time format", name, v)
			}
			opts = true
		}
	}
	if v := q.Get("boot"); v != "" {
		return nil, nil, false, fmt.Errorf("boot: Invalid value: %q: not supported on Windows", v)
	}
	if v := q.Get("tailLines"); v != "" {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n < 0 || n > maxTailLines {
			return nil, nil, false, fmt.Errorf("tailLines: Invalid value: %q: must be between 0 and %d", v, maxTailLines)
		}
		opts = true
	}
	if v := q.Get("pattern"); v != "" {
		if _, err := regexp.Compile(v); err != nil {
			return nil, nil, false, fmt.Errorf("pattern: Invalid value: %q: %w", v, err)
		}
		opts = true
	}
	if len(files) > 0 && opts {
		return nil, nil, false, errors.New("query: Invalid value: cannot specify file with options")
	}
	return services, files, opts, nil
}

// copyServiceLog writes a service's log as the kubelet does on Windows
// for a service that is not an event log provider: the first of
// NodeLogDir\<service>, <service>.log and <service>\<service>.log that is
// a file. (The emulated host has no event log: every service is looked up
// in files.)
func (k *kubelet) copyServiceLog(w http.ResponseWriter, service string) {
	for _, name := range []string{service, service + ".log", service + `\` + service + ".log"} {
		p := NodeLogDir + `\` + name
		if k.isDir(p) {
			continue
		}
		data, err := k.cfg.Disk.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			fmt.Fprintf(w, "\nerror getting log for %s: %v\n", service, err)
			return
		}
		_, _ = w.Write(data)
		return
	}
	fmt.Fprintf(w, "\nlog not found for %s\n", service)
}

func (k *kubelet) isDir(p string) bool {
	_, err := k.cfg.Disk.ReadDir(p)
	return err == nil
}

// serveLogFile is http.FileServer over NodeLogDir: a file's content, or a
// directory's listing.
func (k *kubelet) serveLogFile(w http.ResponseWriter, r *http.Request, rel string) {
	for _, part := range strings.Split(rel, "/") {
		if part == ".." || strings.ContainsAny(part, `\:`) {
			http.Error(w, "invalid URL path", http.StatusBadRequest)
			return
		}
	}
	p := NodeLogDir
	if rel = strings.Trim(rel, "/"); rel != "" {
		p += `\` + strings.ReplaceAll(rel, "/", `\`)
	}
	if entries, err := k.cfg.Disk.ReadDir(p); err == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintln(w, "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>")
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() {
				name += "/"
			}
			fmt.Fprintf(w, "<a href=\"%s\">%s</a>\n", (&url.URL{Path: name}).String(), html.EscapeString(name))
		}
		fmt.Fprintln(w, "</pre>")
		return
	}
	data, err := k.cfg.Disk.ReadFile(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(data)
}
