/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// validatePodCIDRs checks the cluster's other pod networks and drops those
// the cluster or service network already lists, and repeats. IPv6 ones
// (a dual-stack cluster's) are kept for NO_PROXY; the IPv4-only hybrid
// overlay leaves them out of its NAT exceptions.
func validatePodCIDRs(cidrs []string, r *resolved, fail failFunc) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range cidrs {
		p := parseCIDR(fmt.Sprintf("cluster.podNetworkCIDRs[%d]", i), s, true, false, fail)
		if !p.IsValid() || p == r.clusterCIDR || p == r.serviceCIDR || slices.Contains(out, p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Proxy environment variables of containerd and the kubelet. Go's
// net/http reads the upper-case names (and the lower-case ones only when
// those are unset), so upper case is enough for both.
const (
	EnvHTTPProxy  = "HTTP_PROXY"
	EnvHTTPSProxy = "HTTPS_PROXY"
	EnvNoProxy    = "NO_PROXY"
)

// proxyEnv is the resolved proxy environment of containerd and the
// kubelet.
type proxyEnv struct {
	env map[string]string
	// sensitive: a proxy URL holds credentials.
	sensitive bool
}

// noProxyEntryRE is one NO_PROXY entry: a host name, .domain, IP address,
// CIDR or host:port, or *.
var noProxyEntryRE = regexp.MustCompile(`^(\*|\.?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?(:[0-9]{1,5})?|[0-9A-Fa-f:.]+(/[0-9]{1,3})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?)$`)

// resolveProxy returns the services' proxy environment: the config's
// proxy when any field is set, else the cluster's; nil when neither sets
// a proxy URL. The cluster's networks and internal names are added to
// NO_PROXY. Errors never quote a proxy URL: it may hold a password.
func resolveProxy(cluster Proxy, spec *wmcov1alpha1.ProxySpec, r *resolved, fail failFunc) *proxyEnv {
	field, p := "cluster.proxy", cluster
	if spec != nil && (spec.HTTPProxy != "" || spec.HTTPSProxy != "" || spec.NoProxy != "") {
		field, p = "config.proxy", Proxy{HTTPProxy: spec.HTTPProxy, HTTPSProxy: spec.HTTPSProxy, NoProxy: spec.NoProxy}
	}
	if p.HTTPProxy == "" && p.HTTPSProxy == "" {
		return nil // NO_PROXY alone means nothing
	}
	out := &proxyEnv{env: map[string]string{}}
	for _, v := range []struct{ name, env, url string }{
		{field + ".httpProxy", EnvHTTPProxy, p.HTTPProxy},
		{field + ".httpsProxy", EnvHTTPSProxy, p.HTTPSProxy},
	} {
		if v.url == "" {
			continue
		}
		u, err := url.Parse(v.url)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
			u.RawQuery != "" || u.Fragment != "" || len(v.url) > 2048 || !utf8.ValidString(v.url) ||
			strings.ContainsFunc(v.url, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			fail(v.name, "is not an http:// or https:// proxy URL (value not shown: it may hold credentials)")
			continue
		case u.User != nil:
			out.sensitive = true
		}
		out.env[v.env] = v.url
	}

	var entries []string
	seen := map[string]bool{}
	add := func(e string) {
		if e != "" && !seen[strings.ToLower(e)] {
			seen[strings.ToLower(e)] = true
			entries = append(entries, e)
		}
	}
	for e := range strings.SplitSeq(p.NoProxy, ",") {
		e = strings.TrimSpace(e)
		if e != "" && !noProxyEntryRE.MatchString(e) {
			fail(field+".noProxy", "%q is not a host name, domain, IP address or CIDR", e)
			continue
		}
		add(e)
	}
	for _, c := range append([]netip.Prefix{r.serviceCIDR, r.clusterCIDR}, r.podCIDRs...) {
		if c.IsValid() {
			add(c.String())
		}
	}
	add(".svc")
	add("." + r.domain)
	add("localhost")
	add("127.0.0.1")
	if u, err := url.Parse(r.apiServer); err == nil && r.apiServer != "" {
		add(u.Hostname())
	}
	out.env[EnvNoProxy] = strings.Join(entries, ",")
	return out
}

// validateTrustedCAs returns the certificates of the trusted CA bundle as
// PEM, one each, without repeats, sorted by thumbprint. Text around the
// PEM blocks (the comments of a system bundle) is ignored. Errors name a
// certificate by its position, never by its content.
func validateTrustedCAs(data []byte, fail failFunc) []string {
	const field = "cluster.trustedCAPEM"
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	ders, _, err := Certificates(data)
	if err != nil {
		fail(field, "%v", err)
		return nil
	}
	byThumb := map[string]string{}
	for _, der := range ders {
		byThumb[wicdapi.Thumbprint(der)] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	out := make([]string, 0, len(byThumb))
	for _, t := range sortedKeys(byThumb) {
		out = append(out, byThumb[t])
	}
	return out
}

// Certificates returns the DER bytes of each PEM certificate in data, in
// order, and what follows the last PEM block. Text between blocks (the
// comments of a system bundle) is skipped. It fails on a PEM block that is
// not a valid X.509 certificate, and when there is none; its errors name a
// block by its position, never by its content.
func Certificates(data []byte) (ders [][]byte, rest []byte, err error) {
	rest = data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return nil, nil, fmt.Errorf("certificate %d is not a valid X.509 certificate", n)
		}
		ders = append(ders, block.Bytes)
	}
	if len(ders) == 0 {
		return nil, nil, errors.New("holds no PEM certificate")
	}
	return ders, rest, nil
}
