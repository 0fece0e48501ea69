// Command bench measures the operator on this machine and writes the
// results to docs/benchmarks.md. `make bench` runs it; it is not part of
// the tests and asserts nothing.
//
// Everything is real except the Windows kernel: a local control plane
// (test/localcluster), simulated Windows hosts running the real agent
// (test/winsim, test/winsim/simagent) and the operator binary as its own
// process. The phases, each in fresh environments:
//
//  1. join: time from writing the windows-instances ConfigMap until every
//     WindowsInstance is Ready, for each host count and concurrency;
//  2. idle: what one full resync of Ready hosts costs per host (bytes
//     sent to the host, SSH connections), after the largest join run;
//  3. csr: approval latency of a burst of kubelet client CSRs;
//  4. rss: the operator's peak resident memory in a large cluster;
//  5. upgrade: N Ready hosts moved to payloads that change one component
//     each (windows_exporter in place; the kubelet with maxUnavailable 1,
//     as upstream WMCO, and with the default): bytes sent per host against
//     the changed file, Node NotReady time, time until all are upgraded;
//  6. unreachable: one good host's join time alone, listed together with
//     --dead-hosts addresses that refuse connections or never answer, and
//     added while those are being retried.
//
// Progress goes to stderr, the table to stdout and to --out.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/proc"
)

// config is what the flags set.
type config struct {
	// keepWork keeps the working directory at the end (--keep-work).
	keepWork bool
	// envLogs is where the join, upgrade and unreachable environments
	// leave their operators' logs with keepWork.
	envLogs string
	// t1Runs is how many times each N=1 join runs; T(1) is the median.
	t1Runs int
	// unreachableRuns is how many times each case of the unreachable
	// phase runs; each case's figure is the median.
	unreachableRuns int
	operator        string
	out             string
	phases          map[string]bool

	hosts        []int
	concurrency  []int
	bandwidthMB  float64
	fileSizeMiB  int64
	serviceDelay time.Duration
	statusEvery  time.Duration
	joinTimeout  time.Duration
	hostLog      string
	idleWindow   time.Duration
	quiet        time.Duration

	csrs []int
	// csrRuns is how many bursts of each size run; the median by p99 is
	// reported.
	csrRuns int
	// csrReference are the approvers each burst size also runs with
	// instead of the operator (approverFloor, approverKCM).
	csrReference []string

	// cpuProfile and memProfile have the operator serve pprof, and
	// fetch CPU and heap profiles respectively of the CSR bursts and the
	// 10-host join (profile.go); --profile sets both.
	cpuProfile, memProfile bool
	profileFor             time.Duration
	// selfProfile is where a CPU profile of the benchmark's own process
	// (the simulated hosts, kubelet emulators) goes; "" takes none.
	selfProfile string
	// operatorArgs are added to the operator's flags in the CSR and
	// memory phases.
	operatorArgs []string
	// countRequests has the API server write an audit log during the CSR
	// bursts and the joins, to count the requests per CSR and per host
	// by component.
	countRequests bool

	deadHosts int

	upgradeHosts int

	// rssJoinHosts is the join whose operator peak the memory phase
	// reports (0: none).
	rssJoinHosts int
	// rssCompare are more operators the memory phase measures in the
	// same clusters (--rss-compare).
	rssCompare []rssVariant
	// joinArgs are added to the operator's flags in join runs (the
	// memory phase's join gets operatorArgs).
	joinArgs []string

	linuxNodes, windowsNodes, pods, namespaces, workers int
	settleMin, settleMax                                time.Duration
}

var (
	start   = time.Now()
	logMu   sync.Mutex
	logDest io.Writer = os.Stderr
)

// logf prints a progress line to stderr with the time since start.
func logf(format string, args ...any) {
	logMu.Lock()
	defer logMu.Unlock()
	d := time.Since(start).Round(time.Second)
	fmt.Fprintf(logDest, "[bench %02d:%02d:%02d] %s\n", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60, fmt.Sprintf(format, args...))
}

// prefixWriter turns localenv's progress lines into logf lines.
type prefixWriter struct{ prefix string }

func (w prefixWriter) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(p), "\n"), "\n") {
		logf("%s%s", w.prefix, line)
	}
	return len(p), nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

// csrChildren run the CSR phase's child processes, by their argument.
var csrChildren = map[string]func(kubeconfig string, in io.Reader, out io.Writer) error{
	csrObserverArg: runCSRObserver,
	csrFloorArg:    runCSRFloor,
}

func main() {
	// The CSR phase's child processes: the benchmark's binary with the
	// child's argument and a kubeconfig (startCSRChild).
	if len(os.Args) == 3 {
		if child, ok := csrChildren[os.Args[1]]; ok {
			if err := child(os.Args[2], os.Stdin, os.Stdout); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", os.Args[1], err)
				os.Exit(1)
			}
			return
		}
	}
	var (
		c                          config
		hosts, concurrency, phases string
		csrs, operatorArgs         string
		csrReference               string
		rssCompare                 string
	)
	flag.StringVar(&c.operator, "operator", "bin/operator", "operator binary (built from cmd/operator into a temporary directory when empty)")
	flag.StringVar(&c.out, "out", "docs/benchmarks.md", "Markdown report to write (empty: stdout only)")
	flag.StringVar(&phases, "phases", "join,idle,csr,rss,upgrade,unreachable", "phases to run: join, idle (needs join), csr, rss, upgrade, unreachable")
	flag.IntVar(&c.upgradeHosts, "upgrade-hosts", 8, "hosts of the upgrade phase")
	flag.StringVar(&hosts, "hosts", "1,10,50", "host counts N of the join phase")
	flag.StringVar(&concurrency, "concurrency", fmt.Sprintf("%d,1", nodeconfig.DefaultMaxParallelConfigurations), "maxParallelConfigurations values of the join phase; the first is the operator's default, 1 is the serial baseline")
	flag.Float64Var(&c.bandwidthMB, "bandwidth", 100, "bandwidth limit per simulated host, MB/s (10^6 bytes)")
	flag.Int64Var(&c.fileSizeMiB, "payload-file-size", 12, "size of each of the payload's files, MiB")
	flag.DurationVar(&c.serviceDelay, "service-start-delay", time.Second, "how long each Windows service start takes on a simulated host")
	flag.DurationVar(&c.statusEvery, "kubelet-status-interval", 10*time.Second, "how often the kubelet emulators post Node status; a failed post waits for the next one (a kubelet retries every nodeStatusUpdateFrequency, 10s)")
	flag.StringVar(&c.hostLog, "host-log", "", "append the simulated hosts' agent and kubelet emulator diagnostics to this file (for debugging)")
	flag.DurationVar(&c.joinTimeout, "join-timeout", 40*time.Minute, "bound of one join run")
	flag.DurationVar(&c.idleWindow, "idle-window", 20*time.Second, "how long the background traffic of Ready hosts is observed before the resync")
	flag.DurationVar(&c.quiet, "quiet", 5*time.Second, "a resync is over when no host's counters moved for this long")
	flag.StringVar(&csrs, "csrs", "200,1000", "CSRs in each approval burst (a fresh control plane each)")
	var both bool
	flag.BoolVar(&both, "profile", os.Getenv("BENCH_PROFILE") == "1", "--cpuprofile and --memprofile together (also BENCH_PROFILE=1)")
	flag.BoolVar(&c.cpuProfile, "cpuprofile", false, "have the operator serve pprof on loopback and keep CPU profiles of it (and of the API server in the CSR bursts) over each CSR burst's first run and the 10-host join in "+profileDir+"/, with their top entries in the report")
	flag.BoolVar(&c.memProfile, "memprofile", false, "have the operator serve pprof on loopback and keep heap profiles of it (in use at the end and at the resident set's peak) of each CSR burst's first run and the 10-host join in "+profileDir+"/, with their top entries in the report")
	flag.StringVar(&c.selfProfile, "self-cpuprofile", "", "write a CPU profile of the benchmark's own process (the simulated hosts and kubelet emulators) over the whole run to this file")
	flag.DurationVar(&c.profileFor, "profile-for", 20*time.Second, "length of each CPU profile, from the start of the burst or join")
	flag.BoolVar(&c.countRequests, "count-requests", false, "have the API server audit every request during the CSR bursts and the joins, report the requests per CSR and log those per host of each join, by component, verb and resource (the audit log costs the API server some CPU)")
	flag.StringVar(&operatorArgs, "operator-args", "", "extra operator flags for the CSR and memory phases, space-separated (e.g. --kube-api-qps=0)")
	flag.StringVar(&rssCompare, "rss-compare", "", "more operators the memory phase measures in the same empty and loaded clusters, each a binary and its extra flags, separated by ';' (e.g. 'bin/operator-before;bin/operator --memory-limit=64Mi')")
	flag.IntVar(&c.rssJoinHosts, "rss-join-hosts", 50, "the memory phase also reports the operator's peak RSS during a join of this many hosts (a fresh environment; 0 skips it)")
	flag.IntVar(&c.unreachableRuns, "unreachable-runs", 3, "how many times each case of the unreachable phase runs (in rounds of one each); each case's figure is its median run")
	flag.IntVar(&c.deadHosts, "dead-hosts", 50, "unreachable hosts of the unreachable phase (half refusing connections, half accepting and never answering)")
	flag.IntVar(&c.linuxNodes, "linux-nodes", 5000, "Linux Nodes of the memory phase")
	flag.IntVar(&c.windowsNodes, "windows-nodes", 500, "Windows Nodes (labelled as the operator's) of the memory phase")
	flag.IntVar(&c.pods, "pods", 20000, "Pods of the memory phase, bound to the Nodes round-robin")
	flag.IntVar(&c.namespaces, "pod-namespaces", 20, "namespaces the Pods are spread over")
	flag.IntVar(&c.workers, "workers", 8, "parallel API clients creating the memory phase's objects")
	flag.DurationVar(&c.settleMin, "settle", 30*time.Second, "the operator settles at least this long before its memory is read (until VmHWM stays flat for 20s)")
	flag.DurationVar(&c.settleMax, "settle-max", 3*time.Minute, "bound of the settling")
	flag.StringVar(&csrReference, "csr-reference", approverFloor, "approvers each --csrs size also runs --csr-runs times with instead of the operator, comma-separated (empty: none): "+approverFloor+" approves every CSR unchecked (one approval write per CSR, nothing read: what this machine gives any approver), "+approverKCM+" is Kubernetes' own approver (kube-controller-manager's certificatesigningrequest-approving-controller, the bootstrap identities granted the nodeclient ClusterRole; 20 requests per second, about 20 s for 200 CSRs)")
	flag.IntVar(&c.csrRuns, "csr-runs", 3, "how many bursts of each --csrs size run, each in a fresh control plane; the report gives the median burst by p99 and every burst's p99 (one burst's p99 varies by a fifth)")
	flag.IntVar(&c.t1Runs, "t1-runs", 3, "how many times each N=1 join runs; T(1) and its phases are the median run's (a single join varies by a few hundred ms)")
	flag.BoolVar(&c.keepWork, "keep-work", false, "keep the working directory (the control planes' and operators' logs; the join, upgrade and unreachable phases' operator logs under env-logs/) instead of removing it at the end, and print its path")
	flag.Parse()

	var err error
	if c.hosts, err = parseInts(hosts); err != nil {
		fatalf("--hosts: %v", err)
	}
	slices.Sort(c.hosts)
	if c.concurrency, err = parseInts(concurrency); err != nil {
		fatalf("--concurrency: %v", err)
	}
	if c.csrReference, err = parseApprovers(csrReference); err != nil {
		fatalf("--csr-reference: %v", err)
	}
	if c.csrs, err = parseInts(csrs); err != nil {
		fatalf("--csrs: %v", err)
	}
	c.operatorArgs = strings.Fields(operatorArgs)
	for v := range strings.SplitSeq(rssCompare, ";") {
		if f := strings.Fields(v); len(f) > 0 {
			bin, err := filepath.Abs(f[0])
			if err != nil {
				fatalf("--rss-compare: %v", err)
			}
			c.rssCompare = append(c.rssCompare, rssVariant{bin: bin, args: f[1:]})
		}
	}
	c.phases = map[string]bool{}
	for p := range strings.SplitSeq(phases, ",") {
		p = strings.TrimSpace(p)
		switch {
		case slices.Contains(phaseNames, p):
			c.phases[p] = true
		case p == "":
		default:
			fatalf("--phases: unknown phase %q", p)
		}
	}
	if both {
		c.cpuProfile, c.memProfile = true, true
	}
	if c.phases["idle"] && !c.phases["join"] {
		fatalf("--phases: idle runs after the join phase's largest run; add join")
	}
	if c.bandwidthMB <= 0 || c.fileSizeMiB <= 0 {
		fatalf("--bandwidth and --payload-file-size must be positive")
	}
	os.Exit(run(c))
}

// profiling says whether the operator serves pprof for the profiled runs.
func (c config) profiling() bool { return c.cpuProfile || c.memProfile }

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

func run(c config) int {
	// The controller-runtime clients log nothing worth showing here.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := proc.RepoRoot()
	if err != nil {
		logf("find the repository: %v", err)
		return 1
	}
	// localenv installs the CRDs from config/crd/bases, relative to the
	// working directory.
	if c.out != "" && !filepath.IsAbs(c.out) {
		wd, _ := os.Getwd()
		c.out = filepath.Join(wd, c.out)
	}
	if c.operator != "" && !filepath.IsAbs(c.operator) {
		wd, _ := os.Getwd()
		c.operator = filepath.Join(wd, c.operator)
	}
	if err := os.Chdir(root); err != nil {
		logf("%v", err)
		return 1
	}
	work, err := os.MkdirTemp("", "wmco-bench-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	if c.keepWork {
		c.envLogs = filepath.Join(work, "env-logs")
	}
	defer func() {
		if c.keepWork {
			logf("Kept %s", work)
			return
		}
		if err := os.RemoveAll(work); err != nil {
			logf("Removing %s: %v", work, err)
		}
	}()
	if c.operator == "" {
		c.operator = filepath.Join(work, "operator")
		logf("Building the operator into %s", c.operator)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", c.operator, "./cmd/operator")
		if out, err := cmd.CombinedOutput(); err != nil {
			logf("build operator: %v\n%s", err, out)
			return 1
		}
	}
	if _, err := os.Stat(c.operator); err != nil {
		logf("operator binary: %v", err)
		return 1
	}

	// The simulated hosts keep their disks in this process, but their
	// files share the payload's chunks (winsim's content), so the heap
	// holds about one payload whatever N: the default GC percentage
	// suits it. At 25 (when every disk held its own copy) the collector
	// took 0.6 to 1.5 s more of a 50-host join's CPU, for 0.8 instead of
	// 1.2 GB of peak RSS.
	if c.selfProfile != "" {
		f, err := os.Create(c.selfProfile)
		if err != nil {
			logf("self profile: %v", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			logf("self profile: %v", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				logf("self profile: %v", err)
			}
		}()
	}
	r := &report{cfg: c, machine: describeMachine(), started: start}
	r.machine.probe = probeSpeed()
	logf("Benchmark on %s, %d cores, %s memory; phases %s", r.machine.cpu, r.machine.cores, fmtBytes(r.machine.memory), strings.Join(sortedKeys(c.phases), ","))
	failed := false
	phase := func(name string, f func() error) {
		if !c.phases[name] || ctx.Err() != nil {
			return
		}
		t := time.Now()
		logf("=== Phase %s", name)
		if err := f(); err != nil {
			logf("Phase %s failed: %v", name, err)
			r.errors = append(r.errors, fmt.Sprintf("%s: %v", name, err))
			failed = true
		}
		logf("=== Phase %s done in %s", name, time.Since(t).Round(time.Second))
		freeMemory()
	}
	phase("join", func() error { return runJoinPhase(ctx, c, r) })
	phase("csr", func() error { return runCSRPhase(ctx, c, r, work) })
	phase("rss", func() error { return runRSSPhase(ctx, c, r, work) })
	phase("upgrade", func() error { return runUpgradePhase(ctx, c, r, work) })
	phase("unreachable", func() error { return runUnreachablePhase(ctx, c, r) })
	if ctx.Err() != nil {
		logf("Interrupted")
		return 1
	}
	r.total = time.Since(start)
	r.loadEnd = loadAverage()
	r.probeEnd = probeSpeed()

	md := r.markdown()
	fmt.Println(r.summary())
	if c.out != "" {
		if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
			logf("%v", err)
			return 1
		}
		if err := os.WriteFile(c.out, []byte(md), 0o644); err != nil {
			logf("write %s: %v", c.out, err)
			return 1
		}
		logf("Wrote %s", c.out)
	}
	logf("Total wall time %s", r.total.Round(time.Second))
	if failed {
		return 1
	}
	return 0
}

// freeMemory returns the simulated hosts' disks of a finished run to the
// system before the next one.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// phaseNames are the phases in the order they run.
var phaseNames = []string{"join", "idle", "csr", "rss", "upgrade", "unreachable"}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for _, k := range phaseNames {
		if m[k] {
			out = append(out, k)
		}
	}
	return out
}

// machine describes where the benchmark ran.
type machine struct {
	cpu     string
	cores   int
	memory  int64
	kernel  string
	goVer   string
	commit  string
	loadAvg string
	// probe is probeSpeed at the start.
	probe time.Duration
}

func describeMachine() machine {
	m := machine{cpu: "unknown", cores: runtime.NumCPU(), goVer: runtime.Version(), loadAvg: loadAverage()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				if fs := strings.Fields(v); len(fs) > 0 {
					if n, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
						m.memory = n << 10
					}
				}
			}
		}
		_ = f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		m.commit = strings.TrimSpace(string(out))
	}
	return m
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fs := strings.Fields(string(b))
	if len(fs) < 3 {
		return "unknown"
	}
	return strings.Join(fs[:3], " ")
}

// envRuns numbers the environments whose logs keepWork keeps.
var envRuns atomic.Int32

// keepLogsIn is localenv's KeepLogsIn for one environment of the
// benchmark, labelled: a directory of its own under the working directory
// with --keep-work, else "".
func (c config) keepLogsIn(label string) string {
	if c.envLogs == "" {
		return ""
	}
	return filepath.Join(c.envLogs, fmt.Sprintf("%02d-%s", envRuns.Add(1), label))
}
