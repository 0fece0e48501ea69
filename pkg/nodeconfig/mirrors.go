/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
)

// Image mirrors become one containerd hosts.toml per source registry host
// (ContainerdHostsDir\<host>\hosts.toml). containerd looks mirrors up per
// registry host, not per repository, which shapes three rules:
//
//   - A source that is a repository (registry.example.com/team/app) adds
//     its mirrors to its registry host's file, so they are tried for
//     every repository of that host: a mirror without the image answers
//     "not found" and containerd goes on to the next mirror, then the
//     registry itself.
//   - containerd asks a mirror for the source's full repository path under
//     the mirror's own path (mirror.local/v2/<prefix>/team/app/...), so a
//     mirror of a repository must end with the source's repository path
//     (mirror.local/ocp/team/app for registry.example.com/team/app); it is
//     then written with override_path and the prefix. A mirror that
//     renames the repository (mirror.local/team-app) cannot be expressed
//     and is left out: pulls use the other mirrors or the registry.
//   - NeverContactSource holds for the whole registry host once any
//     source on it asks for it: the registry's fallback (`server`) becomes
//     the last mirror, so the registry itself is never contacted, for
//     every repository of that host. Rather too few pulls than a
//     forbidden connection.
//
// Digest mirrors (ImageDigestMirrorSet) get the "pull" capability only:
// containerd resolves tags elsewhere and fetches content by digest from
// them; tag mirrors (ImageTagMirrorSet) and the config's registry mirrors
// get "pull" and "resolve". hosts.toml never holds credentials; containerd
// reads it at every pull, so a change restarts nothing.

// mirror is the validated mirror configuration of one registry host.
type mirror struct {
	// registry as given, e.g. docker.io or registry.local:5000.
	registry string
	// dir is the registry's directory under ContainerdHostsDir, as
	// containerd looks it up: lower case, ":port" turned into "_port_".
	dir   string
	hosts []mirrorHost
	// neverContactSource: the registry itself is never contacted.
	neverContactSource bool
}

// mirrorHost is one [host."url"] of a hosts.toml.
type mirrorHost struct {
	url          string
	resolve      bool
	overridePath bool
}

func (h mirrorHost) capabilities() string {
	if h.resolve {
		return fmt.Sprintf("[%s, %s]", tomlString("pull"), tomlString("resolve"))
	}
	return fmt.Sprintf("[%s]", tomlString("pull"))
}

// repositoryPathRE is a repository path of a registry (team/app), as the
// distribution reference grammar allows.
var repositoryPathRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)

// splitRepository splits registry.example.com/team/app into the registry
// host and the repository path, checking both.
func splitRepository(s string) (host, dir, repoPath string, err error) {
	host, repoPath, _ = strings.Cut(s, "/")
	if dir, err = registryDir(host); err != nil {
		return "", "", "", fmt.Errorf("registry %q: %w", host, err)
	}
	if repoPath != "" && !repositoryPathRE.MatchString(repoPath) {
		return "", "", "", fmt.Errorf("%q is not a repository path (no tag or digest)", repoPath)
	}
	return host, dir, repoPath, nil
}

// validateMirrors merges the cluster's image mirrors and the config's
// registry mirrors into one configuration per registry host, sorted by
// directory; the cluster's mirrors come first.
func validateMirrors(cluster []ImageMirror, spec []wmcov1alpha1.RegistryMirror, fail failFunc) []mirror {
	byDir := map[string]*mirror{}
	get := func(registry, dir string) *mirror {
		m := byDir[dir]
		if m == nil {
			m = &mirror{registry: registry, dir: dir}
			byDir[dir] = m
		}
		return m
	}
	add := func(m *mirror, h mirrorHost) {
		if i := slices.IndexFunc(m.hosts, func(o mirrorHost) bool { return o.url == h.url }); i >= 0 {
			m.hosts[i].resolve = m.hosts[i].resolve || h.resolve
			return
		}
		m.hosts = append(m.hosts, h)
	}

	for i, im := range cluster {
		field := fmt.Sprintf("cluster.imageMirrors[%d]", i)
		host, dir, srcPath, err := splitRepository(im.Source)
		if err != nil {
			fail(field, "source: %v", err)
			continue
		}
		var hosts []mirrorHost
		ok := true
		for j, ms := range im.Mirrors {
			mHost, _, mPath, err := splitRepository(ms)
			if err != nil {
				fail(fmt.Sprintf("%s.mirrors[%d]", field, j), "%v", err)
				ok = false
				continue
			}
			prefix := mPath
			if srcPath != "" {
				var found bool
				if prefix, found = strings.CutSuffix(mPath, srcPath); !found || (prefix != "" && !strings.HasSuffix(prefix, "/")) {
					continue // renames the repository: containerd cannot (see above)
				}
				prefix = strings.TrimSuffix(prefix, "/")
			}
			h := mirrorHost{url: "https://" + strings.ToLower(mHost), resolve: im.Resolve}
			if prefix != "" {
				h.url += "/v2/" + prefix
				h.overridePath = true
			}
			hosts = append(hosts, h)
		}
		if !ok {
			continue
		}
		m := get(host, dir)
		for _, h := range hosts {
			add(m, h)
		}
		m.neverContactSource = m.neverContactSource || im.NeverContactSource
	}

	seen := map[string]int{}
	for i, rm := range spec {
		field := fmt.Sprintf("config.containerd.registryMirrors[%d]", i)
		dir, err := registryDir(rm.Registry)
		if err != nil {
			fail(field, "registry %q: %v", rm.Registry, err)
			continue
		}
		if j, dup := seen[dir]; dup {
			fail(field, "registry %q is the same as registryMirrors[%d]", rm.Registry, j)
			continue
		}
		seen[dir] = i
		switch n := len(rm.Endpoints); {
		case n == 0:
			fail(field, "registry %q: endpoints must list at least one mirror", rm.Registry)
		case n > 16:
			fail(field, "registry %q: %d endpoints, at most 16 allowed", rm.Registry, n)
		}
		ok := true
		for j, e := range rm.Endpoints {
			if err := validateMirrorURL(e); err != nil {
				fail(fmt.Sprintf("%s.endpoints[%d]", field, j), "%v", err)
				ok = false
			}
		}
		if !ok || len(rm.Endpoints) == 0 || len(rm.Endpoints) > 16 {
			continue
		}
		m := get(rm.Registry, dir)
		for _, e := range rm.Endpoints {
			add(m, mirrorHost{url: e, resolve: true})
		}
		m.neverContactSource = m.neverContactSource || rm.NeverContactSource
	}

	out := make([]mirror, 0, len(byDir))
	for _, m := range byDir {
		if len(m.hosts) > 0 {
			out = append(out, *m)
		}
	}
	slices.SortFunc(out, func(a, b mirror) int { return strings.Compare(a.dir, b.dir) })
	return out
}

// renderHostsTOML renders the hosts.toml of one registry: its mirrors,
// tried in order, then the registry itself unless it must never be
// contacted. containerd's fallback (`server`) is the registry when unset,
// so for neverContactSource it is the last mirror, with that mirror's
// capabilities.
func renderHostsTOML(m mirror) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by the Windows Machine Config Operator; changes are overwritten.\n")
	hosts := m.hosts
	if m.neverContactSource {
		fmt.Fprintf(&b, "# Mirrors of %s, tried in order; the registry itself is never contacted.\n", m.registry)
		last := hosts[len(hosts)-1]
		hosts = hosts[:len(hosts)-1]
		fmt.Fprintf(&b, "server = %s\n", tomlString(last.url))
		fmt.Fprintf(&b, "capabilities = %s\n", last.capabilities())
		if last.overridePath {
			fmt.Fprintf(&b, "override_path = true\n")
		}
	} else {
		fmt.Fprintf(&b, "# Mirrors of %s, tried in order before the registry itself.\n", m.registry)
	}
	for _, h := range hosts {
		fmt.Fprintf(&b, "\n[host.%s]\n", tomlString(h.url))
		fmt.Fprintf(&b, "  capabilities = %s\n", h.capabilities())
		if h.overridePath {
			fmt.Fprintf(&b, "  override_path = true\n")
		}
	}
	return []byte(b.String())
}
