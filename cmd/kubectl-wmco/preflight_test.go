/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// testHostDir is where the tests have the plugin put the agent: the
// simulated host runs programs registered by path, so the agent's
// program is registered there (it runs only once the binary is there).
const testHostDir = `C:\Windows\Temp\wmco-preflight-test`

// preflightHost is a simulated host the plugin can check.
type preflightHost struct {
	host    *winsim.Host
	node    *simagent.Node
	keyFile string
	agent   string // the agent binary on this machine
	keyPEM  []byte
}

func startPreflightHost(t *testing.T, hopts winsim.Options, opts simagent.Options) *preflightHost {
	t.Helper()
	g := NewWithT(t)
	h, err := winsim.Start(context.Background(), hopts)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	node, err := simagent.Install(h, opts)
	g.Expect(err).NotTo(HaveOccurred())
	key, err := winsim.NewUserKey()
	g.Expect(err).NotTo(HaveOccurred())
	h.AuthorizeKey("Administrator", key.PublicKey())
	dir := t.TempDir()
	p := &preflightHost{host: h, node: node, keyFile: filepath.Join(dir, "id"), agent: filepath.Join(dir, "wicd.exe"), keyPEM: key.PEM}
	g.Expect(os.WriteFile(p.keyFile, key.PEM, 0o600)).To(Succeed())
	g.Expect(os.WriteFile(p.agent, simagent.AgentImage("v9.9.9-test"), 0o600)).To(Succeed())
	// The uploaded agent, run in-process on the host's backend, as
	// simagent runs C:\k\wicd.exe: only once its file is on the disk.
	g.Expect(h.RegisterProgram(testHostDir+`\wicd.exe`, winsim.ProgramFunc(func(ctx context.Context, inv *winsim.Invocation) int {
		if _, err := h.Disk().ReadFile(inv.Path); err != nil {
			fmt.Fprintf(inv.Stderr, "'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n", inv.Args[0])
			return 1
		}
		b := *node.Backend()
		b.Executable = inv.Path
		return wicd.Main(ctx, &b, inv.Args[1:], inv.Stdout, inv.Stderr)
	}))).To(Succeed())
	return p
}

// preflight runs `kubectl wmco preflight` against the host with extra
// flags; it returns the exit status and what was printed.
func (p *preflightHost) preflight(t *testing.T, extra ...string) (int, string) {
	var out, errOut bytes.Buffer
	args := append([]string{"preflight", p.host.IP(), "--port", strconv.Itoa(p.host.Port()), "--key", p.keyFile,
		"--host-key", p.host.HostKey(), "--agent", p.agent, "--host-dir", testHostDir}, extra...)
	code := run(t.Context(), args, &out, &errOut)
	all := out.String() + errOut.String()
	t.Logf("kubectl wmco preflight: exit %d\n%s", code, all)
	if bytes.Contains([]byte(all), p.keyPEM) || strings.Contains(all, "PRIVATE KEY") {
		t.Fatal("the output holds the private key")
	}
	return code, out.String()
}

// hostState is everything on the host's disk (path, content, security
// descriptor) and its services, firewall rules and networks.
type hostState struct {
	Files    []string
	Services []string
	Firewall []wicdapi.FirewallRule
	Networks []string
}

func snapshot(t *testing.T, p *preflightHost) hostState {
	t.Helper()
	var s hostState
	var walk func(dir string)
	walk = func(dir string) {
		infos, err := p.host.Disk().List(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, fi := range infos {
			path := strings.TrimSuffix(dir, `\`) + `\` + fi.Name()
			sddl, _ := p.host.Disk().Security(path)
			if fi.IsDir() {
				s.Files = append(s.Files, fmt.Sprintf("%s\\ (dir) %s", path, sddl))
				walk(path)
				continue
			}
			data, err := p.host.Disk().ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s.Files = append(s.Files, fmt.Sprintf("%s %q %s %v", path, data, sddl, fi.Mode()&fs.ModePerm))
		}
	}
	walk(`C:\`)
	ctx := t.Context()
	names, err := p.node.Services.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		st, err := p.node.Services.Query(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		s.Services = append(s.Services, fmt.Sprintf("%s %+v", n, st))
	}
	slices.Sort(s.Services)
	s.Firewall = p.node.FirewallRules()
	s.Networks = p.node.Networks()
	return s
}

// A good host: every check passes, the exit status is 0, and the host's
// disk and services are as they were (the agent and its folders gone).
func TestPreflightGoodHost(t *testing.T) {
	g := NewWithT(t)
	p := startPreflightHost(t, winsim.Options{}, simagent.Options{})
	before := snapshot(t, p)
	code, out := p.preflight(t)
	g.Expect(code).To(Equal(exitOK))
	for _, check := range []string{"Reachable", "HostKey", "Authentication", "Agent", wicdapi.CheckOSBuild, wicdapi.CheckHostname,
		wicdapi.CheckDiskSpace, wicdapi.CheckContainers, wicdapi.CheckContainerd, wicdapi.CheckKubelet, wicdapi.CheckKubeProxy,
		wicdapi.CheckFirewall, wicdapi.CheckClock} {
		g.Expect(out).To(MatchRegexp(`(?m)^%s\s+PASS`, check))
	}
	g.Expect(out).NotTo(ContainSubstring("FAIL"))
	g.Expect(out).To(HavePrefix("CHECK"))
	g.Expect(out).To(ContainSubstring("Every check passed."))
	g.Expect(snapshot(t, p)).To(Equal(before))
	g.Expect(p.host.Stats().Commands).To(BeNumerically("==", 1), "one command: the agent's preflight")
}

// A host the operator configured before (files under C:\k): the agent's
// facts write their hash cache there; the plugin puts it back as it was.
func TestPreflightLeavesAConfiguredHostAsItWas(t *testing.T) {
	g := NewWithT(t)
	p := startPreflightHost(t, winsim.Options{}, simagent.Options{})
	g.Expect(p.host.Disk().WriteFile(`C:\k\kubelet.exe`, []byte("MZ kubelet"))).To(Succeed())
	before := snapshot(t, p)
	code, _ := p.preflight(t)
	g.Expect(code).To(Equal(exitOK))
	g.Expect(snapshot(t, p)).To(Equal(before))

	// With a cache already there, the same.
	g.Expect(p.host.Disk().WriteFile(`C:\k\.wicd-hashes.json`, []byte(`{}`))).To(Succeed())
	before = snapshot(t, p)
	code, _ = p.preflight(t)
	g.Expect(code).To(Equal(exitOK))
	g.Expect(snapshot(t, p)).To(Equal(before))
}

// A host short of disk space and without the Containers feature: both
// are named with their fixes, the exit status is 1, and the host is as
// it was.
func TestPreflightFullDiskAndNoContainersFeature(t *testing.T) {
	g := NewWithT(t)
	p := startPreflightHost(t, winsim.Options{}, simagent.Options{ContainersFeatureDisabled: true})
	d := p.host.Disk()
	d.SetQuota(d.Used() + 1<<20) // 1 MiB free: room for the agent, not for a node
	before := snapshot(t, p)
	code, out := p.preflight(t)
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: free space on C: is 1\.0 MiB, at least 10\.0 GiB is needed\s+free space on C:`, wicdapi.CheckDiskSpace))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: the Containers feature is not enabled.*Install-WindowsFeature -Name Containers`, wicdapi.CheckContainers))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+PASS`, wicdapi.CheckOSBuild))
	g.Expect(out).To(ContainSubstring("The host is not ready to become a node."))
	g.Expect(snapshot(t, p)).To(Equal(before))

	// Not even room for the agent: the disk check fails on the upload,
	// the agent's checks are skipped, and nothing is left behind.
	d.Fill()
	before = snapshot(t, p)
	code, out = p.preflight(t)
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: no room on C: even for the agent`, wicdapi.CheckDiskSpace))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+SKIP`, wicdapi.CheckContainers))
	g.Expect(snapshot(t, p)).To(Equal(before))
}

// Unsupported build, foreign containerd and a skewed clock each fail
// with their fix.
func TestPreflightOtherFailures(t *testing.T) {
	g := NewWithT(t)
	p := startPreflightHost(t, winsim.Options{OSBuild: 14393, Hostname: "WIN_2016"}, simagent.Options{ClockSkew: 20 * time.Minute})
	g.Expect(p.node.Services.Create(t.Context(), wicdapi.Service{Name: "containerd", Binary: `C:\Program Files\containerd\containerd.exe`})).To(Succeed())
	before := snapshot(t, p)
	code, out := p.preflight(t)
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: a containerd service not installed by this operator.*sc\.exe delete containerd`, wicdapi.CheckContainerd))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: host clock differs.*w32tm /resync`, wicdapi.CheckClock))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: OS build 14393 is not supported.*Windows Server 2019 \(17763\)`, wicdapi.CheckOSBuild))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: hostname "WIN_2016".*Rename-Computer`, wicdapi.CheckHostname))
	g.Expect(snapshot(t, p)).To(Equal(before))
}

// A kubelet and a kube-proxy some other installer left (kubeadm's
// C:\k\kubelet.exe, not a payload folder): both fail with their fix and
// the host is as it was. The same services installed as this operator
// installs them (from a payload folder, kubelet under kube-log-runner)
// pass.
func TestPreflightForeignKubeletAndKubeProxy(t *testing.T) {
	g := NewWithT(t)
	p := startPreflightHost(t, winsim.Options{}, simagent.Options{})
	ctx := t.Context()
	g.Expect(p.node.Services.Create(ctx, wicdapi.Service{Name: "kubelet", Binary: `C:\k\kubelet.exe`,
		Args: []string{"--windows-service", `--kubeconfig=C:\k\config`}})).To(Succeed())
	g.Expect(p.node.Services.Create(ctx, wicdapi.Service{Name: "kube-proxy", Binary: `C:\k\kube-proxy.exe`})).To(Succeed())
	before := snapshot(t, p)
	code, out := p.preflight(t)
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: a kubelet service not installed by this operator exists \(binary C:\\k\\kubelet\.exe\).*sc\.exe delete kubelet`, wicdapi.CheckKubelet))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+FAIL: a kube-proxy service not installed by this operator.*sc\.exe delete kube-proxy`, wicdapi.CheckKubeProxy))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+PASS`, wicdapi.CheckContainerd))
	g.Expect(snapshot(t, p)).To(Equal(before))

	for _, name := range []string{"kubelet", "kube-proxy"} {
		g.Expect(p.node.Services.Delete(ctx, name)).To(Succeed())
	}
	g.Expect(p.node.Services.Create(ctx, wicdapi.Service{Name: "kubelet", Binary: wicdapi.PayloadRoot + `\v1.37.2\kube-log-runner.exe`,
		Args: []string{`-log-file=C:\var\log\kubelet\kubelet.log`, wicdapi.PayloadRoot + `\v1.37.2\kubelet.exe`, "--windows-service"}})).To(Succeed())
	g.Expect(p.node.Services.Create(ctx, wicdapi.Service{Name: "kube-proxy", Binary: wicdapi.PayloadRoot + `\v1.37.2\kube-proxy.exe`})).To(Succeed())
	code, out = p.preflight(t)
	g.Expect(code).To(Equal(exitOK), out)
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+PASS`, wicdapi.CheckKubelet))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+PASS`, wicdapi.CheckKubeProxy))
}

// SSH failures: a key the host does not accept, a host key other than
// the pinned one, nothing listening. The host's checks are skipped.
func TestPreflightConnectionFailures(t *testing.T) {
	g := NewWithT(t)
	p := startPreflightHost(t, winsim.Options{}, simagent.Options{})
	other, err := winsim.NewUserKey()
	g.Expect(err).NotTo(HaveOccurred())
	otherFile := filepath.Join(t.TempDir(), "other")
	g.Expect(os.WriteFile(otherFile, other.PEM, 0o600)).To(Succeed())

	code, out := p.preflight(t, "--key", otherFile)
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(out).To(MatchRegexp(`(?m)^Authentication\s+FAIL: .*administrators_authorized_keys`))
	g.Expect(out).To(MatchRegexp(`(?m)^%s\s+SKIP`, wicdapi.CheckOSBuild))

	stranger, err := winsim.NewHostKey()
	g.Expect(err).NotTo(HaveOccurred())
	code, out = p.preflight(t, "--host-key", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(stranger.PublicKey()))))
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(out).To(MatchRegexp(`(?m)^HostKey\s+FAIL: host key mismatch`))

	// Trust on first use prints the key to pin.
	var o, e bytes.Buffer
	code = run(t.Context(), []string{"preflight", p.host.IP(), "--port", strconv.Itoa(p.host.Port()), "--key", p.keyFile,
		"--insecure-accept-host-key", "--agent", p.agent, "--host-dir", testHostDir}, &o, &e)
	g.Expect(code).To(Equal(exitOK), e.String())
	g.Expect(o.String()).To(ContainSubstring("The host presented " + p.host.HostKey()))

	addr := p.host.IP()
	port := p.host.Port()
	g.Expect(p.host.Close()).To(Succeed())
	o.Reset()
	code = run(t.Context(), []string{"preflight", addr, "--port", strconv.Itoa(port), "--key", p.keyFile,
		"--insecure-accept-host-key", "--agent", p.agent}, &o, &e)
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(o.String()).To(MatchRegexp(`(?m)^Reachable\s+FAIL: .*unreachable.*Start-Service sshd`))
}

// Usage errors exit with 2 before anything is dialled.
func TestPreflightUsage(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k")
	NewWithT(t).Expect(os.WriteFile(key, []byte("x"), 0o600)).To(Succeed())
	for name, args := range map[string][]string{
		"no address":     {"preflight", "--key", key, "--insecure-accept-host-key"},
		"two addresses":  {"preflight", "a", "b", "--key", key, "--insecure-accept-host-key"},
		"no key":         {"preflight", "10.0.0.5", "--insecure-accept-host-key"},
		"no host key":    {"preflight", "10.0.0.5", "--key", key},
		"bad host key":   {"preflight", "10.0.0.5", "--key", key, "--host-key", "ssh-ed25519 nope"},
		"unknown flag":   {"preflight", "10.0.0.5", "--nope"},
		"no agent":       {"preflight", "10.0.0.5", "--key", key, "--insecure-accept-host-key", "--payload-dir", t.TempDir()},
		"no command":     {},
		"unknown":        {"frobnicate"},
		"status args":    {"status", "x"},
		"logs no svc":    {"logs", "node-1"},
		"logs bad svc":   {"logs", "node-1", "kubelet;rm"},
		"logs a file":    {"logs", "node-1", `kubelet\kubelet.log`},
		"logs too many":  {"logs", "n", "a", "b", "c", "d", "e"},
		"status bad flg": {"status", "--nope"},
	} {
		t.Run(name, func(t *testing.T) {
			var o, e bytes.Buffer
			NewWithT(t).Expect(run(t.Context(), args, &o, &e)).To(Equal(exitUsage), e.String())
		})
	}
}
