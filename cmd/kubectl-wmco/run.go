/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/pkg/preflight"
	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/version"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

const usage = `kubectl wmco: the Windows Machine Config Operator's kubectl plugin

Usage:
  kubectl wmco preflight <address> --key FILE (--host-key KEY | --insecure-accept-host-key) [flags]
      checks a Windows host before it is listed: reachability, SSH key, OS build,
      hostname, free disk, Containers feature, foreign containerd, firewall, clock;
      runs the payload's agent from a folder it removes again (the host is left as it was)
  kubectl wmco status [--kubeconfig FILE] [--context NAME]
      lists the WindowsInstances: address, node, phase, payload version, last problem
  kubectl wmco logs <node> <service>... [--kubeconfig FILE] [--context NAME]
      prints a Windows node's service logs (kubelet, kube-proxy, containerd, ...) through
      the API server's node proxy: GET /api/v1/nodes/<node>/proxy/logs/?query=<service>
  kubectl wmco version

Run "kubectl wmco <command> -h" for a command's flags.
Exit status: 0 success (every check passed), 1 failure, 2 usage error.
`

// run is the plugin; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "preflight":
		return runPreflight(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "logs":
		return runLogs(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kubectl-wmco", version.Version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "kubectl wmco: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// parse parses flags wherever they are among the positional arguments
// (kubectl's habit: `preflight 10.0.0.5 --key k`) and returns the
// positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("kubectl wmco "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// helpOrUsage is the exit status of a flag parsing error: 0 for -h.
func helpOrUsage(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func usageError(stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "kubectl wmco: "+format+"\n", a...)
	return exitUsage
}

func runPreflight(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("preflight <address>", stderr)
	port := fs.Int("port", remote.DefaultPort, "SSH port")
	user := fs.String("user", "Administrator", "Windows account to log in as")
	keyPath := fs.String("key", "", "private key file (PEM or OpenSSH, unencrypted) the host accepts")
	hostKey := fs.String("host-key", "", `the host's public key to pin, "ssh-ed25519 AAAA..."`)
	tofu := fs.Bool("insecure-accept-host-key", false, "accept whatever key the host presents (the key is printed, to pin it with --host-key)")
	agentPath := fs.String("agent", "", "the agent (wicd.exe) to run on the host; default: the payload's")
	payloadDir := fs.String("payload-dir", defaultPayloadDir(), "payload whose wicd.exe runs on the host (a manifest.json, or v1.x.y/ folders as make payload writes them)")
	hostDir := fs.String("host-dir", "", `folder created on the host for the agent and removed afterwards; it must not exist (default `+preflight.DefaultHostTempDir+`\wmco-preflight-<random>)`)
	skew := fs.Duration("max-clock-skew", preflight.DefaultMaxClockSkew, "largest accepted difference between the host's clock and this machine's")
	timeout := fs.Duration("timeout", preflight.DefaultStepTimeout, "deadline of each step on the host")
	pos, err := parse(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	switch {
	case len(pos) != 1:
		return usageError(stderr, "preflight takes exactly one host address")
	case *keyPath == "":
		return usageError(stderr, "preflight needs --key")
	case *hostKey == "" && !*tofu:
		return usageError(stderr, "preflight needs --host-key, or --insecure-accept-host-key to accept the key the host presents")
	}
	if *hostKey != "" {
		k, err := remote.CanonicalHostKey(*hostKey)
		if err != nil {
			return usageError(stderr, "--host-key: %v", err)
		}
		*hostKey = k
	}
	key, err := os.ReadFile(*keyPath)
	if err != nil {
		return usageError(stderr, "--key: %v", err)
	}
	agent, err := findAgent(*agentPath, *payloadDir)
	if err != nil {
		return usageError(stderr, "%v", err)
	}
	res, err := preflight.Run(ctx, preflight.Options{
		Target: remote.Target{Address: pos[0], Port: *port, Username: *user, PrivateKey: key,
			HostKey: *hostKey, TrustOnFirstUse: *hostKey == ""},
		Agent: agent, HostDir: *hostDir, MaxClockSkew: *skew, StepTimeout: *timeout,
	})
	if err != nil {
		fmt.Fprintln(stderr, "kubectl wmco preflight:", err)
		return exitFailed
	}
	if err := res.WriteTable(stdout); err != nil {
		return exitFailed
	}
	if res.CleanupError != nil {
		fmt.Fprintln(stdout, "\nWARNING:", res.CleanupError)
	}
	if *hostKey == "" && res.HostKey != "" {
		fmt.Fprintf(stdout, "\nThe host presented %s\n(pin it with --host-key, or as spec.hostKey of its WindowsInstance)\n", res.HostKey)
	}
	if !res.Passed() {
		fmt.Fprintln(stdout, "\nThe host is not ready to become a node.")
		return exitFailed
	}
	fmt.Fprintln(stdout, "\nEvery check passed.")
	return exitOK
}

// defaultPayloadDir is where the payload is looked for: $WMCO_PAYLOAD_DIR,
// else ./payload (where make payload writes it).
func defaultPayloadDir() string {
	if d := os.Getenv("WMCO_PAYLOAD_DIR"); d != "" {
		return d
	}
	return "payload"
}

// findAgent is the agent to run: --agent, or the payload's wicd.exe (the
// newest payload when there are several), checked against its manifest.
func findAgent(path, payloadDir string) (preflight.Agent, error) {
	if path != "" {
		return preflight.AgentFromFile(path)
	}
	dir, _, err := payload.FindDir(payloadDir)
	if err != nil {
		return preflight.Agent{}, fmt.Errorf("no agent: %w (pass --agent or --payload-dir)", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, payload.ManifestFile))
	if err != nil {
		return preflight.Agent{}, err
	}
	m, err := payload.Decode(data)
	if err != nil {
		return preflight.Agent{}, err
	}
	f, ok := m.File(payload.WICDPath)
	if !ok {
		return preflight.Agent{}, fmt.Errorf("the payload in %s has no %s", dir, payload.WICDPath)
	}
	a, err := preflight.AgentFromFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
	if err != nil {
		return preflight.Agent{}, err
	}
	if a.SHA256 != f.SHA256 || a.Size != f.Size {
		return preflight.Agent{}, fmt.Errorf("%s does not match the payload's manifest", a.Path)
	}
	return a, nil
}

// kubeFlags are the flags that choose the cluster.
type kubeFlags struct {
	kubeconfig, context *string
}

func addKubeFlags(fs *flag.FlagSet) kubeFlags {
	return kubeFlags{
		kubeconfig: fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"),
		context:    fs.String("context", "", "kubeconfig context to use"),
	}
}

// config loads the client configuration as kubectl does.
func (k kubeFlags) config() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *k.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: *k.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-wmco/" + version.Version
	return cfg, nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", stderr)
	kf := addKubeFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	if len(pos) != 0 {
		return usageError(stderr, "status takes no arguments")
	}
	cfg, err := kf.config()
	if err != nil {
		fmt.Fprintln(stderr, "kubectl wmco status:", err)
		return exitFailed
	}
	scheme := runtime.NewScheme()
	if err := wmcov1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(stderr, "kubectl wmco status:", err)
		return exitFailed
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(stderr, "kubectl wmco status:", err)
		return exitFailed
	}
	var list wmcov1.WindowsInstanceList
	if err := c.List(ctx, &list); err != nil {
		fmt.Fprintln(stderr, "kubectl wmco status: list WindowsInstances:", err)
		return exitFailed
	}
	if len(list.Items) == 0 {
		fmt.Fprintln(stdout, "No WindowsInstances.")
		return exitOK
	}
	writeStatus(stdout, list.Items)
	return exitOK
}

// writeStatus prints one line per instance, sorted by name.
func writeStatus(w io.Writer, items []wmcov1.WindowsInstance) {
	slices.SortFunc(items, func(a, b wmcov1.WindowsInstance) int { return strings.Compare(a.Name, b.Name) })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESS\tNODE\tPHASE\tVERSION\tPROBLEM")
	for _, wi := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wi.Name, orDash(wi.Spec.Address), orDash(wi.Status.NodeName),
			orDash(string(wi.Status.Phase)), orDash(wi.Status.PayloadVersion), orDash(problem(&wi)))
	}
	_ = tw.Flush()
}

// problem is what keeps an instance from being Ready: its status message,
// or the message of its first condition that is not True.
func problem(wi *wmcov1.WindowsInstance) string {
	if wi.Status.Phase == wmcov1.PhaseReady {
		return ""
	}
	msg := wi.Status.Message
	if msg == "" {
		for _, c := range wi.Status.Conditions {
			if c.Status != "True" && c.Message != "" {
				msg = c.Type + ": " + c.Message
				break
			}
		}
	}
	return strings.Join(strings.Fields(msg), " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// serviceName is what the kubelet's node log query accepts as a service
// (its reServiceNameUnsafeCharacters, inverted).
var serviceName = regexp.MustCompile(`^[a-zA-Z\-_.:0-9@]{1,256}$`)

// maxServices is the kubelet's limit of services per query.
const maxServices = 4

func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("logs <node> <service>...", stderr)
	kf := addKubeFlags(fs)
	timeout := fs.Duration("timeout", time.Minute, "deadline of the request")
	pos, err := parse(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	if len(pos) < 2 {
		return usageError(stderr, "logs takes a node and at least one service (kubelet, kube-proxy, containerd, ...)")
	}
	node, services := pos[0], pos[1:]
	if len(services) > maxServices {
		return usageError(stderr, "at most %d services at once", maxServices)
	}
	for _, s := range services {
		if !serviceName.MatchString(s) {
			return usageError(stderr, "%q is not a service name (letters, digits and - _ . : @)", s)
		}
	}
	cfg, err := kf.config()
	if err != nil {
		fmt.Fprintln(stderr, "kubectl wmco logs:", err)
		return exitFailed
	}
	out, err := nodeLogs(ctx, cfg, node, services, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl wmco logs:", err)
		return exitFailed
	}
	_, _ = stdout.Write(out)
	return exitOK
}

// nodeLogs queries a node's service logs through the API server's node
// proxy, as `kubectl get --raw` and `oc adm node-logs` do.
func nodeLogs(ctx context.Context, cfg *rest.Config, node string, services []string, timeout time.Duration) ([]byte, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	q := url.Values{"query": services}
	uri := "/api/v1/nodes/" + url.PathEscape(node) + "/proxy/logs/?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := cs.CoreV1().RESTClient().Get().RequestURI(uri).Do(ctx)
	out, err := res.Raw()
	if err != nil {
		// Error decodes the API server's Status from the body.
		return nil, fmt.Errorf("node %s: %w", node, res.Error())
	}
	return out, nil
}
