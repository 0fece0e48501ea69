/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package nodeconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	wmcov1alpha1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/wicdapi"
)

// fuzzTokenPrefix starts every fuzzed bootstrap token, so that a leak is
// recognisable.
const fuzzTokenPrefix = "Zz9fuzz."

// checkRendered asserts what holds for every Render outcome: an error
// wraps ErrInvalidInputs and never holds the token; a plan is
// deterministic, survives the JSON round trip to the agent unchanged, keeps
// the token in Sensitive files only and writes below C:\ only.
// tokenElsewhere says that the token text also appears in another input,
// which an error may then quote legitimately.
func checkRendered(t *testing.T, in Inputs, tokenElsewhere bool) *wicdapi.Plan {
	t.Helper()
	plan, err := Render(in)
	if err != nil {
		if !errors.Is(err, ErrInvalidInputs) {
			t.Fatalf("the inputs passed validation but did not render: %v", err)
		}
		if !tokenElsewhere && in.BootstrapToken != "" && strings.Contains(err.Error(), in.BootstrapToken) {
			t.Fatalf("the error quotes the bootstrap token: %v", err)
		}
		return nil
	}
	again, err := Render(in)
	if err != nil || !reflect.DeepEqual(plan, again) {
		t.Fatalf("the same inputs rendered differently (%v)", err)
	}
	if plan.NodeName != in.NodeName || plan.SchemaVersion != wicdapi.SchemaVersion {
		t.Fatalf("plan for node %q schema %d, want %q schema %d", plan.NodeName, plan.SchemaVersion, in.NodeName, wicdapi.SchemaVersion)
	}
	data, err := json.Marshal(plan)
	if err != nil {
		t.Fatalf("marshal the plan: %v", err)
	}
	var decoded wicdapi.Plan
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&decoded); err != nil {
		t.Fatalf("the plan does not decode as the agent decodes it: %v", err)
	}
	if redone, _ := json.Marshal(&decoded); !bytes.Equal(redone, data) {
		t.Fatalf("the plan changes in the JSON round trip:\n%s\n%s", data, redone)
	}
	if !tokenElsewhere {
		for _, f := range plan.Files {
			if !f.Sensitive && bytes.Contains(f.Content, []byte(in.BootstrapToken)) {
				t.Fatalf("%s holds the bootstrap token and is not Sensitive", f.Path)
			}
		}
		for _, s := range plan.Services {
			if strings.Contains(strings.Join(s.Args, " "), in.BootstrapToken) {
				t.Fatalf("service %s has the bootstrap token on its command line", s.Name)
			}
		}
	}
	paths := slices.Clone(plan.Directories)
	for _, f := range plan.Files {
		paths = append(paths, f.Path)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, `C:\`) || slices.Contains(strings.Split(p, `\`), "..") || strings.Contains(p, "/") {
			t.Fatalf("the plan writes %q, not a plain path below C:\\", p)
		}
	}
	if !slices.IsSorted(plan.Directories) {
		t.Fatalf("directories %v are not in creation order", plan.Directories)
	}
	return plan
}

// FuzzRender renders plans from valid inputs with fuzzed fields: Render
// never panics, rejects with ErrInvalidInputs only, and every plan it
// returns meets checkRendered.
func FuzzRender(f *testing.F) {
	base := testInputs(f)
	f.Add("win-2022-a", "https://api.cluster.example.com:6443", "172.30.0.0/16", "10.132.0.0/14", "172.30.0.10", "", "v1.37.2",
		"10.0.12.34,fd00::1234", OSBuildServer2022, "10.132.4.0/24", "abcdef.0123456789abcdef", "topology.kubernetes.io/zone", "zone-a",
		"os", "Windows", "NoSchedule", "docker.io", "https://mirror.local:5000", "registry.k8s.io/pause:3.10", false, int32(4789), "")
	f.Add("win-2019", "https://10.0.0.1:6443/", "fd00:30::/112", "", "fd00:30::a", "corp.local", "v1.38.0",
		"fd00::5", OSBuildServer2019, "", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "", "",
		"", "", "", "registry.local:5000", "http://10.0.0.2", "pause", true, int32(0), "external")
	f.Add("n", "https://[fd00::1]:6443", "172.30.0.0/16", "10.128.0.0/9", "8.8.8.8", "x", "v1.37.0-rc.1+abc",
		"10.0.0.1", OSBuildServer2025, "10.128.0.0/29", "t", "node.kubernetes.io/exclude-from-external-load-balancers", "",
		"node-role.kubernetes.io/worker", "", "NoExecute", "*", "https://a", "a@b", false, int32(70000), "aws")
	f.Fuzz(func(t *testing.T, nodeName, apiURL, serviceCIDR, clusterCIDR, dnsIP, domain, kubeVersion, addresses string, osBuild int,
		hostSubnet, tokenSuffix, labelKey, labelValue, taintKey, taintValue, taintEffect, mirrorRegistry, mirrorEndpoint, pauseImage string,
		networkNone bool, vxlanPort int32, cloudProvider string) {
		in := base
		in.Payload = testManifest()
		in.NodeName = nodeName
		in.Cluster.APIServerURL, in.Cluster.ServiceCIDR, in.Cluster.ClusterNetworkCIDR = apiURL, serviceCIDR, clusterCIDR
		in.Cluster.DNSIP, in.Cluster.Domain, in.Cluster.KubernetesVersion = dnsIP, domain, kubeVersion
		in.Host = HostFacts{Hostname: "WIN", OSBuild: osBuild, Addresses: strings.Split(addresses, ",")}
		in.HostSubnet, in.CloudProvider = hostSubnet, cloudProvider
		in.BootstrapToken = fuzzTokenPrefix + tokenSuffix
		in.NodeLabels = nil
		if labelKey != "" {
			in.NodeLabels = map[string]string{labelKey: labelValue}
		}
		spec := apiDefaultedSpec()
		if networkNone {
			spec.Network = wmcov1alpha1.NetworkSpec{Type: wmcov1alpha1.NetworkNone}
		}
		if vxlanPort != 0 {
			spec.Network.VXLANPort = &vxlanPort
		}
		spec.Taints = nil
		if taintKey != "" {
			spec.Taints = []wmcov1alpha1.NodeTaint{{Key: taintKey, Value: taintValue, Effect: wmcov1alpha1.TaintEffect(taintEffect)}}
		}
		if mirrorRegistry != "" {
			spec.Containerd.RegistryMirrors = []wmcov1alpha1.RegistryMirror{{Registry: mirrorRegistry, Endpoints: []string{mirrorEndpoint}}}
		}
		spec.Containerd.PauseImage = pauseImage
		in.Config = spec

		others := []string{nodeName, apiURL, serviceCIDR, clusterCIDR, dnsIP, domain, kubeVersion, addresses, hostSubnet,
			labelKey, labelValue, taintKey, taintValue, taintEffect, mirrorRegistry, mirrorEndpoint, pauseImage, cloudProvider}
		tokenElsewhere := slices.ContainsFunc(others, func(s string) bool { return strings.Contains(s, in.BootstrapToken) })
		plan := checkRendered(t, in, tokenElsewhere)
		if plan == nil {
			return
		}
		// What the inputs promise shows in the plan.
		if (len(plan.Networks) > 0) == networkNone {
			t.Fatalf("networks %v for network type None = %v", plan.Networks, networkNone)
		}
		if ip, err := netip.ParseAddr(in.Host.Addresses[0]); err != nil || !slices.ContainsFunc(plan.Services, func(s wicdapi.Service) bool {
			return slices.Contains(s.Args, "--node-ip="+ip.String())
		}) {
			t.Fatalf("no service runs with the node IP %q", in.Host.Addresses[0])
		}
	})
}

// FuzzHostFacts decodes what `wicd facts` printed the way the operator does
// and renders a plan from it: whatever the agent reports, Render never
// panics and meets checkRendered, and HostFactsFrom keeps no reference
// into the decoded facts.
func FuzzHostFacts(f *testing.F) {
	base := testInputs(f)
	f.Add([]byte(`{"osBuild":20348,"hostname":"WIN-1","addresses":["10.0.12.34","fd00::1"]}`))
	f.Add([]byte(`{"osBuild":17763,"hostname":"","addresses":["fe80::1%eth0","10.0.0.1"]}`))
	f.Add([]byte(`{"osBuild":26100,"addresses":[]}`))
	f.Add([]byte(`{"osBuild":-1,"addresses":["127.0.0.1"],"unknown":{"x":[1,2]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var facts wicdapi.Facts
		if json.Unmarshal(data, &facts) != nil {
			return
		}
		in := base
		in.Payload = testManifest()
		in.Host = HostFactsFrom(facts)
		if len(facts.Addresses) > 0 {
			facts.Addresses[0] = "mutated"
			if in.Host.Addresses[0] == "mutated" {
				t.Fatal("HostFactsFrom shares the addresses with the facts")
			}
		}
		plan := checkRendered(t, in, bytes.Contains(data, []byte(in.BootstrapToken)))
		if plan != nil && !slices.Contains(SupportedOSBuilds(), in.Host.OSBuild) {
			t.Fatalf("rendered a plan for unsupported build %d", in.Host.OSBuild)
		}
	})
}

// fuzzProxyPassword is the password of every fuzzed proxy URL; no error
// may quote it.
const fuzzProxyPassword = "Fuzz-Proxy-Password-7c1e"

// FuzzClusterSettings renders plans with a fuzzed proxy, trusted CA
// bundle and image mirror: Render never panics, rejects with
// ErrInvalidInputs only, never quotes the proxy password or a certificate,
// puts the proxy on containerd and the kubelet only, and never lets a
// registry that must not be contacted be containerd's fallback.
func FuzzClusterSettings(f *testing.F) {
	base := testInputs(f)
	ca := testCA(f)
	f.Add("proxy.local:3128", "https", ".corp,10.0.0.0/8", "quay.io/team/app", "mirror.local/x/team/app", true, true, ca)
	f.Add("", "http", "", "docker.io", "mirror.local:5000", false, false, []byte("# none\n"))
	f.Add("[::1]:3128/p?q", "socks5", "a b,*", "Quay.IO:5000", "m/a/../b", false, true, append(slices.Clone(ca), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"...))
	f.Fuzz(func(t *testing.T, proxyHost, scheme, noProxy, source, mirrorRef string, resolve, never bool, bundle []byte) {
		in := base
		in.Payload = testManifest()
		proxyURL := ""
		if proxyHost != "" {
			proxyURL = scheme + "://user:" + fuzzProxyPassword + "@" + proxyHost
		}
		in.Cluster.Proxy = Proxy{HTTPProxy: proxyURL, NoProxy: noProxy}
		in.Cluster.TrustedCAPEM = bundle
		in.Cluster.ImageMirrors = []ImageMirror{{Source: source, Mirrors: []string{mirrorRef}, Resolve: resolve, NeverContactSource: never}}
		plan, err := Render(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidInputs) {
				t.Fatalf("not ErrInvalidInputs: %v", err)
			}
			if strings.Contains(err.Error(), fuzzProxyPassword) {
				t.Fatalf("the error quotes the proxy password: %v", err)
			}
			if strings.Contains(err.Error(), "BEGIN CERTIFICATE") {
				t.Fatalf("the error quotes a certificate: %v", err)
			}
			return
		}
		checkRendered(t, in, false)
		for _, s := range plan.Services {
			proxied := s.Name == ServiceContainerd || s.Name == ServiceKubelet
			if (len(s.Env) > 0) != (proxied && proxyURL != "") {
				t.Fatalf("service %s has environment %d variables (proxy %v)", s.Name, len(s.Env), proxyURL != "")
			}
			if len(s.Env) > 0 && !s.SensitiveEnv {
				t.Fatalf("service %s: a proxy URL with a password is not marked sensitive", s.Name)
			}
		}
		for _, fl := range plan.Files {
			if strings.Contains(string(fl.Content), fuzzProxyPassword) {
				t.Fatalf("%s holds the proxy password", fl.Path)
			}
			if never && strings.HasSuffix(fl.Path, `\hosts.toml`) {
				host, _, _ := strings.Cut(source, "/")
				if strings.Contains(string(fl.Content), `server = "https://`+strings.ToLower(host)+`"`) {
					t.Fatalf("%s falls back to the source registry:\n%s", fl.Path, fl.Content)
				}
			}
		}
	})
}
