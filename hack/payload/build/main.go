/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

// Command build builds the Windows payload (make payload): every binary
// from a public Go module at the version its wrapper module under
// hack/payload/<component>/ pins, for windows/amd64 without cgo, into
// payload/<kubernetes-version>/ with a manifest.json (pkg/payload).
//
// Builds are reproducible: -trimpath, -buildvcs=false and -buildid= with
// each project's own version ldflags, so two builds of the same inputs
// give the same SHA-256. Every binary is checked after the build: a PE32+
// x86-64 executable whose Go build information names the module and
// version it was meant to come from.
//
//	go run ./hack/payload/build [-k8s-version v1.37.2] [-version VERSION]
//	    [-out DIR] [-components kubelet,wicd,...]
//	go run ./hack/payload/build -verify-modules
//
// -components builds a subset (by file name without .exe, or by component
// such as cni); a subset writes no manifest, since a manifest must list
// every required file. -verify-modules runs go mod verify in every wrapper
// module instead of building.
package main

import (
	"cmp"
	"context"
	"debug/buildinfo"
	"debug/pe"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/openwmco/wmco/pkg/payload"
)

// repoModule is this repository's module, the source of wicd.exe.
const repoModule = "github.com/openwmco/wmco"

// binary is one file of the payload and how to build it.
type binary struct {
	// path in the payload, e.g. cni/host-local.exe.
	path      string
	component payload.Component
	// wrapper is the directory, relative to hack/payload, of the module
	// that pins the sources; "" builds from this repository.
	wrapper string
	// module whose version the binary is built at; pkg is the main
	// package.
	module, pkg string
	// ldflags returns the project's version ldflags for module version v.
	ldflags func(v string) []string
	// version returns the version the binary reports for module version v.
	version func(v string) string
	// env adds to the build environment.
	env []string
}

// name is how -components names the binary: its file name without .exe.
func (b binary) name() string {
	return strings.TrimSuffix(filepath.Base(b.path), ".exe")
}

// ovnModule is hybrid-overlay's module: served by the module proxy but
// unknown to the checksum database, as are two forks it replaces
// dependencies with. The wrapper's committed go.sum is the lock for them.
const ovnModule = "github.com/ovn-org/ovn-kubernetes/go-controller"

var ovnNoSumDB = strings.Join([]string{ovnModule, "github.com/JacobTanenbaum/arping", "github.com/trozet/go-iptables"}, ",")

func same(v string) string { return v }

// binaries returns the payload's files for Kubernetes version k8s (its
// staging modules are v0.<minor>.<patch>) and project version version.
func binaries(k8s, version string) []binary {
	kube := "kubernetes/" + k8s
	k8sFlags := func(string) []string {
		minor := strings.SplitN(strings.TrimPrefix(k8s, "v"), ".", 3)[1]
		var out []string
		for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
			out = append(out, "-X", p+".gitVersion="+k8s, "-X", p+".gitMajor=1", "-X", p+".gitMinor="+minor, "-X", p+".gitTreeState=clean")
		}
		return out
	}
	k8sVersion := func(string) string { return k8s }
	xflag := func(sym string, f func(string) string) func(string) []string {
		return func(v string) []string { return []string{"-X", sym + "=" + f(v)} }
	}
	cni := func(plugin, dir string) binary {
		return binary{path: payload.CNIDir + "/" + plugin + ".exe", component: payload.ComponentCNI, wrapper: "cni-plugins",
			module: "github.com/containernetworking/plugins", pkg: "github.com/containernetworking/plugins/plugins/" + dir + "/" + plugin,
			ldflags: xflag("github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion", same), version: same}
	}
	return []binary{
		{path: payload.KubeletPath, component: payload.ComponentKubelet, wrapper: kube,
			module: "k8s.io/kubernetes", pkg: "k8s.io/kubernetes/cmd/kubelet", ldflags: k8sFlags, version: k8sVersion},
		{path: payload.KubeProxyPath, component: payload.ComponentKubeProxy, wrapper: kube,
			module: "k8s.io/kubernetes", pkg: "k8s.io/kubernetes/cmd/kube-proxy", ldflags: k8sFlags, version: k8sVersion},
		{path: payload.KubeLogRunnerPath, component: payload.ComponentKubeLogRunner, wrapper: kube,
			module: "k8s.io/component-base", pkg: "k8s.io/component-base/logs/kube-log-runner", ldflags: k8sFlags, version: k8sVersion},
		{path: payload.ContainerdPath, component: payload.ComponentContainerd, wrapper: "containerd",
			module: "github.com/containerd/containerd/v2", pkg: "github.com/containerd/containerd/v2/cmd/containerd",
			ldflags: xflag("github.com/containerd/containerd/v2/version.Version", same), version: same},
		{path: payload.ContainerdShimPath, component: payload.ComponentContainerd, wrapper: "hcsshim",
			module: "github.com/Microsoft/hcsshim", pkg: "github.com/Microsoft/hcsshim/cmd/containerd-shim-runhcs-v1",
			ldflags: xflag("main.version", same), version: same},
		cni("win-overlay", "main/windows"),
		cni("win-bridge", "main/windows"),
		cni("host-local", "ipam"),
		{path: payload.WindowsExporterPath, component: payload.ComponentWindowsExporter, wrapper: "windows-exporter",
			module: "github.com/prometheus-community/windows_exporter", pkg: "github.com/prometheus-community/windows_exporter",
			// windows_exporter's releases set the version without the v.
			ldflags: xflag("github.com/prometheus/common/version.Version", func(v string) string { return strings.TrimPrefix(v, "v") }),
			version: same},
		{path: payload.CSIProxyPath, component: payload.ComponentCSIProxy, wrapper: "csi-proxy",
			module: "github.com/kubernetes-csi/csi-proxy", pkg: "github.com/kubernetes-csi/csi-proxy/cmd/csi-proxy",
			ldflags: func(string) []string { return nil }, version: same},
		{path: payload.HybridOverlayPath, component: payload.ComponentHybridOverlay, wrapper: "hybrid-overlay",
			module: ovnModule, pkg: ovnModule + "/hybrid-overlay/cmd/hybrid-overlay-node",
			// The commit of the pseudo-version, as ovn-kubernetes' Makefile sets it.
			ldflags: xflag(ovnModule+"/pkg/config.Commit", func(v string) string { return v[strings.LastIndexByte(v, '-')+1:] }),
			version: same, env: []string{"GONOSUMDB=" + ovnNoSumDB}},
		// flanneld for network type Flannel; its wrapper was resolved with
		// go mod edit -require and one -mod=mod build (go get -tool fails on
		// a Linux-only dependency the proxy does not serve).
		{path: payload.FlanneldPath, component: payload.ComponentFlannel, wrapper: "flannel",
			module: "github.com/flannel-io/flannel", pkg: "github.com/flannel-io/flannel",
			ldflags: xflag("github.com/flannel-io/flannel/pkg/version.Version", same), version: same},
		{path: payload.WICDPath, component: payload.ComponentWICD,
			module: repoModule, pkg: "./cmd/wicd",
			ldflags: func(string) []string { return []string{"-X", repoModule + "/pkg/version.Version=" + version} },
			version: func(string) string { return version }},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "payload:", err)
		os.Exit(1)
	}
}

type options struct {
	k8sVersion, version, out, root string
	only                           []string
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var o options
	var only string
	var verify bool
	fs.StringVar(&o.k8sVersion, "k8s-version", "v1.37.2", "Kubernetes version of kubelet, kube-proxy and kube-log-runner")
	fs.StringVar(&o.version, "version", "dev", "version stamped into wicd.exe")
	fs.StringVar(&o.out, "out", "", "output directory (default payload/<k8s-version>)")
	fs.BoolVar(&verify, "verify-modules", false, "run go mod verify in every wrapper module under hack/payload and exit")
	fs.StringVar(&only, "components", "", "comma-separated subset to build (file names without .exe, or components); writes no manifest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := payload.ValidateKubernetesVersion(o.k8sVersion); err != nil {
		return fmt.Errorf("-k8s-version %q: %w", o.k8sVersion, err)
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	o.root = root
	if verify {
		return verifyModules(ctx, root, stdout)
	}
	if o.out == "" {
		o.out = filepath.Join(root, "payload", o.k8sVersion)
	}
	// Builds run in the wrapper modules' directories.
	if o.out, err = filepath.Abs(o.out); err != nil {
		return err
	}
	for s := range strings.SplitSeq(only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.only = append(o.only, s)
		}
	}
	return build(ctx, o, stdout)
}

// result is one built file.
type result struct {
	bin             binary
	source, version string
	size            int64
	took            time.Duration
}

func build(ctx context.Context, o options, stdout io.Writer) error {
	all := binaries(o.k8sVersion, o.version)
	selected, err := selectBinaries(all, o.only)
	if err != nil {
		return err
	}
	if wantsKubernetes(selected, o.k8sVersion) {
		if err := ensureKubernetesWrapper(ctx, o.root, o.k8sVersion, stdout); err != nil {
			return err
		}
	}
	// A full build goes to a fresh directory that replaces the old one
	// only once everything is built, so no stale file survives.
	full := len(o.only) == 0
	dest := o.out
	if full {
		dest = o.out + ".partial"
		if err := os.RemoveAll(dest); err != nil {
			return err
		}
	}
	start := time.Now()
	var results []result
	for i, b := range selected {
		fmt.Fprintf(stdout, "[payload %d/%d] %s ...\n", i+1, len(selected), b.path)
		r, err := buildOne(ctx, o, b, dest)
		if err != nil {
			return fmt.Errorf("%s: %w", b.path, err)
		}
		fmt.Fprintf(stdout, "[payload %d/%d] %s %s (%s) %.1f MB in %.0fs\n", i+1, len(selected), b.path, r.version, r.source,
			float64(r.size)/1e6, r.took.Seconds())
		results = append(results, r)
	}
	if full {
		m, err := manifest(dest, o.k8sVersion, results)
		if err != nil {
			return err
		}
		if err := m.WriteFile(dest); err != nil {
			return err
		}
		if _, err := payload.Load(dest); err != nil {
			return fmt.Errorf("the built payload does not load: %w", err)
		}
		if err := os.RemoveAll(o.out); err != nil {
			return err
		}
		if err := os.Rename(dest, o.out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\npayload %s (Kubernetes %s) in %s\n", m.Version, m.KubernetesVersion, rel(o.root, o.out))
	} else {
		fmt.Fprintf(stdout, "\n%d of %d files in %s (a subset: no manifest written)\n", len(results), len(all), rel(o.root, o.out))
	}
	summary(stdout, results, time.Since(start))
	return nil
}

func selectBinaries(all []binary, only []string) ([]binary, error) {
	if len(only) == 0 {
		return all, nil
	}
	var out []binary
	for _, s := range only {
		n := len(out)
		for _, b := range all {
			if (b.name() == s || string(b.component) == s) && !slices.ContainsFunc(out, func(o binary) bool { return o.path == b.path }) {
				out = append(out, b)
			}
		}
		if len(out) == n {
			var names []string
			for _, b := range all {
				names = append(names, b.name())
			}
			return nil, fmt.Errorf("-components: %q names no payload file (known: %s, or a component)", s, strings.Join(names, ", "))
		}
	}
	return out, nil
}

func wantsKubernetes(bs []binary, k8s string) bool {
	return slices.ContainsFunc(bs, func(b binary) bool { return b.wrapper == "kubernetes/"+k8s })
}

// buildOne builds b into dest and checks the result.
func buildOne(ctx context.Context, o options, b binary, dest string) (result, error) {
	start := time.Now()
	dir := o.root
	if b.wrapper != "" {
		dir = filepath.Join(o.root, "hack", "payload", filepath.FromSlash(b.wrapper))
	}
	modVersion, err := moduleVersion(ctx, dir, b.module)
	if err != nil {
		return result{}, err
	}
	source := b.module + "@" + modVersion
	if b.wrapper == "" {
		modVersion, source = o.version, repoModule+"@"+o.version
	}
	out := filepath.Join(dest, filepath.FromSlash(b.path))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return result{}, err
	}
	ldflags := append([]string{"-s", "-w", "-buildid="}, b.ldflags(modVersion)...)
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", strings.Join(ldflags, " "), "-o", out + ".tmp", b.pkg}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(buildEnv(), b.env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("go %s (in %s): %w", strings.Join(args, " "), rel(o.root, dir), err)
	}
	if err := check(out+".tmp", b, modVersion); err != nil {
		_ = os.Remove(out + ".tmp")
		return result{}, err
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return result{}, err
	}
	// The manifest hashes every file once (payload.Create); the summary
	// needs only the size.
	fi, err := os.Stat(out)
	if err != nil {
		return result{}, err
	}
	return result{bin: b, source: source, version: b.version(modVersion), size: fi.Size(), took: time.Since(start)}, nil
}

// buildEnv is the environment of every build: windows/amd64 without cgo,
// the wrapper's go.mod and go.sum taken as they are.
func buildEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOOS=windows", "GOARCH=amd64", "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=readonly")
}

// verifyModules runs go mod verify in every wrapper module: the modules
// in the module cache must match the committed go.sum.
func verifyModules(ctx context.Context, root string, stdout io.Writer) error {
	base := filepath.Join(root, "hack", "payload")
	var dirs []string
	err := filepath.WalkDir(base, func(name string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "go.mod" {
			dirs = append(dirs, filepath.Dir(name))
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		fmt.Fprintf(stdout, "[payload] go mod verify in %s: ", rel(root, dir))
		cmd := exec.CommandContext(ctx, "go", "mod", "verify")
		cmd.Dir = dir
		cmd.Env = append(buildEnv(), "GONOSUMDB="+ovnNoSumDB)
		cmd.Stdout, cmd.Stderr = stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go mod verify in %s: %w", rel(root, dir), err)
		}
	}
	return nil
}

// moduleVersion is the version of module in the build list of the module
// in dir.
func moduleVersion(ctx context.Context, dir, module string) (string, error) {
	if module == repoModule {
		return "", nil
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", module)
	cmd.Dir = dir
	cmd.Env = buildEnv()
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s (in %s): %w", module, dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// check verifies that name is a PE32+ x86-64 executable whose Go build
// information names module at version v (for a wrapped module).
func check(name string, b binary, v string) error {
	f, err := pe.Open(name)
	if err != nil {
		return fmt.Errorf("not a Windows executable: %w", err)
	}
	machine := f.Machine
	_, pe64 := f.OptionalHeader.(*pe.OptionalHeader64)
	_ = f.Close()
	if machine != pe.IMAGE_FILE_MACHINE_AMD64 || !pe64 {
		return fmt.Errorf("not a PE32+ x86-64 executable (machine %#x)", machine)
	}
	bi, err := buildinfo.ReadFile(name)
	if err != nil {
		return fmt.Errorf("read Go build information: %w", err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["GOOS"] != "windows" || settings["GOARCH"] != "amd64" || settings["CGO_ENABLED"] != "0" {
		return fmt.Errorf("built for GOOS=%s GOARCH=%s CGO_ENABLED=%s", settings["GOOS"], settings["GOARCH"], settings["CGO_ENABLED"])
	}
	if b.wrapper == "" {
		return nil
	}
	// The module holding the main package is Main, the others are Deps.
	for _, d := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
		if d.Path == b.module {
			if d.Version != v {
				return fmt.Errorf("built from %s@%s, want %s", d.Path, d.Version, v)
			}
			return nil
		}
	}
	return fmt.Errorf("build information does not name %s", b.module)
}

// manifest describes the built payload. Its version is the
// [payload.Manifest.ContentVersion]: the Kubernetes version and a digest of
// every file's path and SHA-256, so any change of content gives a new
// version directory on the hosts.
func manifest(dir, k8s string, results []result) (*payload.Manifest, error) {
	m, err := payload.Create(dir, "x", k8s)
	if err != nil {
		return nil, err
	}
	for i, f := range m.Files {
		j := slices.IndexFunc(results, func(r result) bool { return r.bin.path == f.Path })
		if j < 0 {
			return nil, fmt.Errorf("%s was not built by this run", f.Path)
		}
		m.Files[i].Source, m.Files[i].Version = results[j].source, results[j].version
	}
	m.Version = m.ContentVersion()
	return m, m.Validate()
}

func summary(w io.Writer, results []result, total time.Duration) {
	slices.SortStableFunc(results, func(a, b result) int { return cmp.Compare(a.bin.component, b.bin.component) })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "component\tfile\tversion\tsource\tMB\tseconds\t")
	var size int64
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%.0f\t\n", r.bin.component, r.bin.path, r.version, r.source, float64(r.size)/1e6, r.took.Seconds())
		size += r.size
	}
	fmt.Fprintf(tw, "total\t%d files\t\t\t%.1f\t%.0f\t\n", len(results), float64(size)/1e6, total.Seconds())
	_ = tw.Flush()
}

// ensureKubernetesWrapper writes hack/payload/kubernetes/<version>/go.mod
// when it is missing, as hack/setup-envtest.sh does for the control plane:
// k8s.io/kubernetes requires every k8s.io/<m> at v0.0.0 and replaces it
// with ./staging/src/k8s.io/<m>, so a module depending on it replaces each
// with its published v0.<minor>.<patch>. sample-cli-plugin and
// sample-controller are not needed (and not served).
func ensureKubernetesWrapper(ctx context.Context, root, k8s string, stdout io.Writer) error {
	dir := filepath.Join(root, "hack", "payload", "kubernetes", k8s)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return nil
	}
	fmt.Fprintf(stdout, "[payload] writing wrapper module %s for k8s.io/kubernetes %s\n", rel(root, dir), k8s)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	goMod := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOWORK=off", "GOFLAGS=-mod=mod")
		cmd.Stderr = os.Stderr
		return cmd.Output()
	}
	out, err := goMod("mod", "download", "-json", "k8s.io/kubernetes@"+k8s)
	if err != nil {
		return fmt.Errorf("download k8s.io/kubernetes@%s: %w", k8s, err)
	}
	m := regexp.MustCompile(`"GoMod": "([^"]+)"`).FindSubmatch(out)
	if m == nil {
		return errors.New("go mod download printed no GoMod")
	}
	upstream, err := os.ReadFile(string(m[1]))
	if err != nil {
		return err
	}
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(upstream)
	if goLine == nil {
		return errors.New("k8s.io/kubernetes go.mod has no go line")
	}
	staging := "v0." + strings.TrimPrefix(k8s, "v1.")
	var b strings.Builder
	fmt.Fprintf(&b, "module wmco.local/payload/kubernetes\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n", goLine[1], k8s)
	for _, r := range regexp.MustCompile(`(?m)^\s*(k8s\.io/[a-z0-9-]+) => \./staging/`).FindAllSubmatch(upstream, -1) {
		if mod := string(r[1]); !strings.Contains(mod, "sample-") {
			fmt.Fprintf(&b, "\t%s => %s %s\n", mod, mod, staging)
		}
	}
	b.WriteString(")\n")
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(b.String()), 0o644); err != nil {
		return err
	}
	_, err = goMod("get", "-tool", "k8s.io/kubernetes/cmd/kubelet@"+k8s, "k8s.io/kubernetes/cmd/kube-proxy@"+k8s,
		"k8s.io/component-base/logs/kube-log-runner")
	if err != nil {
		return fmt.Errorf("resolve the wrapper module in %s: %w", rel(root, dir), err)
	}
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func rel(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return r
	}
	return p
}
