package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// joinResult is one join run: N hosts at one concurrency.
type joinResult struct {
	hosts, concurrency int
	// duration from writing the ConfigMap until every instance was Ready
	// (or the run gave up).
	duration time.Duration
	ready    int
	timedOut bool
	// bytesPerHost is the mean of what each host received during the run.
	bytesPerHost float64
	connsPerHost float64
	// operatorHWM is the operator's VmHWM at the end of the run.
	operatorHWM int64
	// stalled counts hosts whose kubelet emulator did not report its
	// Node Ready in time (see stallWatch).
	stalled int
	// phases split T(1) (N=1 runs only); floor is the least T(1) the
	// settings allow.
	phases []phaseShare
	floor  joinFloor
	// cpu is the CPU time each process used during the join, in seconds
	// (joinSimulatedHosts: the benchmark's own process).
	cpu map[string]float64
	// samples are the durations of every run of this N and concurrency
	// when it was run more than once (N=1: --t1-runs); this result is the
	// median run's.
	samples []time.Duration
	// probe is probeSpeed right before the run's environment started.
	probe time.Duration
}

// joinSimulatedHosts names the benchmark's own process among a join's
// processes: the simulated hosts with their agents and kubelet emulators.
const joinSimulatedHosts = "simulated hosts"

// stallWatch notices hosts whose Node stays NotReady for 8s although the
// CNI configuration is on the host. In its first two minutes the kubelet
// emulator reports its Node Ready within 100 ms of the file appearing, as
// the kubelet's start-up status loop does, and retries a failed report
// every 100 ms; later it reports at the Lease renewal after the change and
// at its status interval. Such hosts are counted, so that a T(N) they
// lengthened is not taken for the operator's.
type stallWatch struct {
	last    time.Time
	since   map[string]time.Time
	flagged map[string]bool
}

func (w *stallWatch) check(ctx context.Context, env *localenv.Env) {
	w.last = time.Now()
	nodes, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		ready[n.Name] = false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ready[n.Name] = c.Status == corev1.ConditionTrue
			}
		}
	}
	for _, h := range env.Hosts {
		r, registered := ready[h.Name]
		_, err := h.Host.Disk().Stat(nodeconfig.CNIConfigPath)
		if !registered || r || err != nil {
			delete(w.since, h.Name)
			continue
		}
		if w.since[h.Name].IsZero() {
			w.since[h.Name] = time.Now()
		} else if time.Since(w.since[h.Name]) > 8*time.Second && !w.flagged[h.Name] {
			w.flagged[h.Name] = true
			svc := h.Services
			logf("  host %s: Node still NotReady 8s after its CNI configuration was written (kubelet service running=%t, starts=%d, last exit error: %v)",
				h.Name, svc.Running(nodeconfig.ServiceKubelet), svc.Starts(nodeconfig.ServiceKubelet), svc.LastError(nodeconfig.ServiceKubelet))
		}
	}
}

// idleResult is the cost of one event on Ready hosts.
type idleResult struct {
	event string
	hosts int
	// per host deltas
	bytes, conns, commands stat
	// duration from the trigger until the last counter moved; for the
	// background window, the window.
	duration time.Duration
	// moved is how many hosts saw at least one new SSH connection.
	moved int
}

// stat summarises per-host values.
type stat struct{ mean, min, max float64 }

func statOf(v []int64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := stat{min: float64(v[0]), max: float64(v[0])}
	var sum float64
	for _, x := range v {
		f := float64(x)
		sum += f
		s.min, s.max = min(s.min, f), max(s.max, f)
	}
	s.mean = sum / float64(len(v))
	return s
}

func payloadFiles() int {
	n := 0
	for _, c := range payload.Components() {
		n += len(payload.RequiredFiles(c))
	}
	return n
}

func runJoinPhase(ctx context.Context, c config, r *report) error {
	largest := c.hosts[len(c.hosts)-1]
	var errs []error
	for i, conc := range c.concurrency {
		for _, n := range c.hosts {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			idle := c.phases["idle"] && i == 0 && n == largest
			runs := 1
			if n == 1 {
				runs = max(1, c.t1Runs)
			}
			res, idles, err := runJoinMedian(ctx, c, r, n, conc, idle, runs)
			if err != nil {
				logf("Join N=%d concurrency=%d: %v", n, conc, err)
				errs = append(errs, fmt.Errorf("join N=%d concurrency=%d: %w", n, conc, err))
			}
			if res != nil {
				r.joins = append(r.joins, *res)
			}
			r.idle = append(r.idle, idles...)
			freeMemory()
		}
	}
	return errors.Join(errs...)
}

// runJoinMedian runs the join of n hosts runs times and returns the
// median run's result (by duration, the slower middle one for an even
// count), with every run's duration; the idle measurement follows the
// last run. A failed run ends the series with its error.
func runJoinMedian(ctx context.Context, c config, r *report, n, conc int, idle bool, runs int) (*joinResult, []idleResult, error) {
	var (
		done  []*joinResult
		idles []idleResult
	)
	for i := range runs {
		if i > 0 {
			freeMemory()
		}
		res, runIdles, err := runJoin(ctx, c, r, n, conc, idle && i == runs-1)
		if err != nil || runs == 1 {
			return res, runIdles, err
		}
		done, idles = append(done, res), runIdles
	}
	slices.SortFunc(done, func(a, b *joinResult) int { return cmp.Compare(a.duration, b.duration) })
	med := done[len(done)/2]
	for _, d := range done {
		med.samples = append(med.samples, d.duration)
	}
	logf("Join N=%d concurrency=%d: median of %d runs %s (%s)", n, conc, runs, fmtDur(med.duration), fmtDurs(med.samples))
	return med, idles, nil
}

// fmtDurs lists durations, comma-separated.
func fmtDurs(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmtDur(d)
	}
	return strings.Join(out, ", ")
}

// runJoin starts a fresh environment with n hosts, lists them all in the
// windows-instances ConfigMap and waits until every WindowsInstance is
// Ready. With idle, it then measures what a resync costs.
func runJoin(ctx context.Context, c config, r *report, n, conc int, idle bool) (*joinResult, []idleResult, error) {
	logf("Join N=%d concurrency=%d: starting the control plane, %d simulated hosts and the operator", n, conc, n)
	var hostLog io.Writer
	if c.hostLog != "" {
		f, err := os.OpenFile(c.hostLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, err
		}
		defer func() {
			if err := f.Close(); err != nil {
				logf("Closing the host log: %v", err)
			}
		}()
		fmt.Fprintf(f, "=== N=%d concurrency=%d %s\n", n, conc, time.Now().UTC().Format(time.RFC3339))
		hostLog = &stampWriter{w: f}
	}
	tl := &timelines{}
	opArgs, pprofBase, err := joinProfileArgs(c, n, conc)
	if err != nil {
		return nil, nil, err
	}
	opArgs = append(opArgs, c.joinArgs...)
	var auditFlags []string
	var auditLog string
	if c.countRequests {
		dir, err := os.MkdirTemp("", "bench-join-audit-")
		if err != nil {
			return nil, nil, err
		}
		defer os.RemoveAll(dir) //nolint:errcheck // a temporary directory
		if auditFlags, auditLog, err = auditArgs(dir); err != nil {
			return nil, nil, err
		}
	}
	probe := probeSpeed()
	env, err := localenv.Start(ctx, localenv.Options{
		ExtraAPIServerArgs:        auditFlags,
		HostLogger:                tl.logger,
		Hosts:                     n,
		OperatorBinary:            c.operator,
		OperatorArgs:              opArgs,
		MaxParallelConfigurations: int32(conc),
		BandwidthLimit:            int64(c.bandwidthMB * 1e6),
		PayloadFileSize:           c.fileSizeMiB << 20,
		Host: simagent.Options{
			ServiceStartDelay:     c.serviceDelay,
			KubeletStatusInterval: c.statusEvery,
			Log:                   hostLog,
		},
		Log:        prefixWriter{prefix: fmt.Sprintf("  [N=%d c=%d] ", n, conc)},
		KeepLogsIn: c.keepLogsIn(fmt.Sprintf("join-n%d-c%d", n, conc)),
	})
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		logf("Join N=%d concurrency=%d: stopping the environment", n, conc)
		if err := env.Stop(); err != nil {
			logf("stop: %v", err)
		}
	}()

	if r.kubernetes == "" {
		r.kubernetes = kubernetesVersion(env.Clientset)
	}
	before := snapshot(env.Hosts)
	logf("Join N=%d concurrency=%d: writing the windows-instances ConfigMap", n, conc)
	prof := startProfile(ctx, c, r, pprofBase, fmt.Sprintf("join N=%d concurrency=%d", n, conc), env.OperatorPID())
	// Every process of the join shares the machine's cores: the
	// simulated hosts (this process) do what real hosts do on their own.
	pids := env.Cluster.PIDs()
	pids["operator"] = env.OperatorPID()
	pids[joinSimulatedHosts] = os.Getpid()
	cpu0 := takeCPU(pids)
	t0 := time.Now()
	if err := env.SetInventory(ctx, env.Hosts...); err != nil {
		return nil, nil, fmt.Errorf("write inventory: %w", err)
	}
	res := &joinResult{hosts: n, concurrency: conc, probe: probe}
	stalls := &stallWatch{since: map[string]time.Time{}, flagged: map[string]bool{}}
	res.ready, err = waitAllReady(ctx, env, n, t0, c.joinTimeout, stalls, tl)
	// Before the profile is finished: that waits for the CPU profile's
	// full --profile-for, which T(10) used to include (20.8 s for a
	// join whose last host was Ready after 11.4 s).
	res.duration = time.Since(t0)
	res.cpu = takeCPU(pids).minus(cpu0)
	if auditLog != "" {
		if reqs, aerr := countRequests(auditLog, t0, time.Now()); aerr == nil {
			logf("Join N=%d concurrency=%d: API requests from the inventory written until every instance was Ready:\n%s", n, conc, reqs.per(n, "host"))
		} else {
			logf("Join N=%d concurrency=%d: count the API requests: %v", n, conc, aerr)
		}
	}
	prof.finish(ctx)
	res.stalled = len(stalls.flagged)
	res.timedOut = err != nil
	after := snapshot(env.Hosts)
	var bytes, conns []int64
	for i := range after {
		bytes = append(bytes, after[i].BytesReceived-before[i].BytesReceived)
		conns = append(conns, after[i].Connections-before[i].Connections)
	}
	res.bytesPerHost, res.connsPerHost = statOf(bytes).mean, statOf(conns).mean
	if n == 1 && err == nil {
		res.phases = joinPhases(tl.host(env.Hosts[0].Name), t0)
		if hostLog != nil {
			fmt.Fprintf(hostLog, "timeline of %s from the inventory written:\n", env.Hosts[0].Name)
			tl.host(env.Hosts[0].Name).dump(hostLog, t0)
			if data, rerr := os.ReadFile(env.OperatorLog); rerr == nil {
				fmt.Fprintf(hostLog, "operator log:\n%s", data)
			}
		}
		if res.floor, err = computeFloor(c, env); err != nil {
			logf("Join N=%d concurrency=%d: floor: %v", n, conc, err)
			err = nil
		}
		for _, p := range res.phases {
			logf("  phase %-60s %8s  %3.0f %%", p.name, fmtDur(p.duration), 100*p.duration.Seconds()/res.duration.Seconds())
		}
		logf("  floor %s (transfer %s + %d sequential service starts %s)", fmtDur(res.floor.total()), fmtDur(res.floor.transfer), len(res.floor.chain), fmtDur(res.floor.starts))
	}
	if m, merr := readMemStatus(env.OperatorPID()); merr == nil {
		res.operatorHWM = m.HWM
	}
	if err != nil {
		logf("Join N=%d concurrency=%d: %d/%d Ready after %s; last operator log lines:\n%s", n, conc, res.ready, n, res.duration.Round(time.Millisecond), proc.TailFile(env.OperatorLog, 15))
		return res, nil, err
	}
	logf("Join N=%d concurrency=%d: all %d Ready in %s (%.1f MB received per host); CPU time: %s; speed probe before %s", n, conc, n, res.duration.Round(time.Millisecond), res.bytesPerHost/1e6, fmtCPU(res.cpu, res.duration, runtime.NumCPU()), fmtProbe(probe))
	if !idle {
		return res, nil, nil
	}
	idles, err := runIdle(ctx, c, env)
	return res, idles, err
}

// watchInstances follows the WindowsInstances through a watch until ctx
// ends: waitAllReady reads them ten times a second, and a LIST of 50
// instances as often cost the API server about a second of CPU in a
// 50-host join, on the two cores the join shares with it.
func watchInstances(ctx context.Context, env *localenv.Env) (client.Reader, error) {
	c, err := cache.New(env.Cluster.Config, cache.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		return nil, err
	}
	if _, err := c.GetInformer(ctx, &wmcov1.WindowsInstance{}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, errors.New("watch WindowsInstances: the cache did not sync")
	}
	return c, nil
}

// waitAllReady reads the WindowsInstances (from watchInstances) until n
// have a true Ready condition. A benchmark's display loop, not a
// controller.
func waitAllReady(ctx context.Context, env *localenv.Env, n int, t0 time.Time, timeout time.Duration, stalls *stallWatch, tl *timelines) (int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	instances, err := watchInstances(wctx, env)
	if err != nil {
		return 0, err
	}
	lastReady, lastLog := -1, time.Now()
	for {
		var list wmcov1.WindowsInstanceList
		ready := 0
		if err := instances.List(ctx, &list); err == nil {
			for i := range list.Items {
				if meta.IsStatusConditionTrue(list.Items[i].Status.Conditions, wmcov1.ConditionReady) {
					ready++
				}
			}
		}
		if n == 1 && tl != nil {
			noteProgress(ctx, env, list.Items, tl.host(env.Hosts[0].Name))
		}
		if ready != lastReady || time.Since(lastLog) > 15*time.Second {
			phases := map[wmcov1.InstancePhase]int{}
			for i := range list.Items {
				phases[list.Items[i].Status.Phase]++
			}
			logf("  %6.1fs  %d/%d Ready  %v", time.Since(t0).Seconds(), ready, n, phases)
			lastReady, lastLog = ready, time.Now()
		}
		if ready >= n {
			return ready, nil
		}
		if time.Since(stalls.last) >= 2*time.Second {
			stalls.check(ctx, env)
		}
		if env.OperatorExited() {
			return ready, errors.New("the operator exited")
		}
		select {
		case <-ctx.Done():
			return ready, ctx.Err()
		case <-deadline.C:
			return ready, fmt.Errorf("%d of %d Ready within %s", ready, n, timeout)
		case <-tick.C:
		}
	}
}

func snapshot(hosts []*localenv.Host) []winsim.Stats {
	out := make([]winsim.Stats, len(hosts))
	for i, h := range hosts {
		out[i] = h.Host.Stats()
	}
	return out
}

// waitQuiet waits until no host's counters have moved for quiet and either
// every host opened a new SSH connection since base, or nothing moved for
// giveUp (an event that reaches no host). It returns the last snapshot and
// when a counter last moved.
func waitQuiet(ctx context.Context, hosts []*localenv.Host, base []winsim.Stats, quiet, giveUp, bound time.Duration) ([]winsim.Stats, time.Time, error) {
	t0 := time.Now()
	last := snapshot(hosts)
	lastMove := t0
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, lastMove, ctx.Err()
		case <-tick.C:
		}
		cur := snapshot(hosts)
		if !slices.Equal(cur, last) {
			lastMove = time.Now()
		}
		last = cur
		all := true
		for i := range cur {
			if cur[i].Connections == base[i].Connections {
				all = false
				break
			}
		}
		still := time.Since(lastMove)
		switch {
		case all && still >= quiet:
			return cur, lastMove, nil
		case still >= giveUp:
			return cur, lastMove, nil
		case time.Since(t0) > bound:
			return cur, lastMove, fmt.Errorf("hosts still busy after %s", bound)
		}
	}
}

func deltas(event string, before, after []winsim.Stats, d time.Duration) idleResult {
	var b, cn, cm []int64
	moved := 0
	for i := range after {
		b = append(b, after[i].BytesReceived-before[i].BytesReceived)
		cn = append(cn, after[i].Connections-before[i].Connections)
		cm = append(cm, after[i].Commands-before[i].Commands)
		if after[i].Connections > before[i].Connections {
			moved++
		}
	}
	return idleResult{event: event, hosts: len(after), bytes: statOf(b), conns: statOf(cn), commands: statOf(cm), duration: d, moved: moved}
}

// runIdle measures, on Ready hosts: the background traffic over a window,
// then one full resync (the cluster WindowsNodeConfig touched, which every
// instance watches), then one Node status report per host (what a kubelet
// posts every nodeStatusReportFrequency, and whenever its status changes).
func runIdle(ctx context.Context, c config, env *localenv.Env) ([]idleResult, error) {
	hosts := env.Hosts
	logf("Idle: waiting for the hosts to go quiet after the join")
	base := snapshot(hosts)
	if _, _, err := waitQuiet(ctx, hosts, base, c.quiet, c.quiet, 3*time.Minute); err != nil {
		return nil, err
	}
	var out []idleResult

	logf("Idle: observing background traffic for %s", c.idleWindow)
	s0 := snapshot(hosts)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(c.idleWindow):
	}
	bg := deltas("background, no event", s0, snapshot(hosts), c.idleWindow)
	bg.event = fmt.Sprintf("no event besides the kubelets' status reports (%s window)", c.idleWindow)
	out = append(out, bg)
	logf("Idle: background: %.0f bytes, %.2f connections per host", bg.bytes.mean, bg.conns.mean)

	// Let anything the window caught finish.
	if _, _, err := waitQuiet(ctx, hosts, snapshot(hosts), c.quiet, c.quiet, 3*time.Minute); err != nil {
		return out, err
	}
	logf("Idle: touching WindowsNodeConfig %q (full resync)", wmcov1.WindowsNodeConfigName)
	s0 = snapshot(hosts)
	t0 := time.Now()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		wnc := &wmcov1.WindowsNodeConfig{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, wnc); err != nil {
			return err
		}
		if wnc.Annotations == nil {
			wnc.Annotations = map[string]string{}
		}
		wnc.Annotations["bench.wmco.io/touched"] = time.Now().UTC().Format(time.RFC3339Nano)
		return env.Client.Update(ctx, wnc)
	}); err != nil {
		return out, fmt.Errorf("touch WindowsNodeConfig: %w", err)
	}
	s1, lastMove, err := waitQuiet(ctx, hosts, s0, c.quiet, 60*time.Second, 10*time.Minute)
	res := deltas("WindowsNodeConfig `cluster` touched (full resync)", s0, s1, lastMove.Sub(t0))
	out = append(out, res)
	logf("Idle: resync: %.0f bytes, %.2f connections per host; %d/%d hosts reached; over in %s", res.bytes.mean, res.conns.mean, res.moved, res.hosts, res.duration.Round(time.Millisecond))
	if err != nil {
		return out, err
	}

	logf("Idle: posting one Node status report per host")
	s0 = snapshot(hosts)
	t0 = time.Now()
	for _, h := range hosts {
		if err := heartbeat(ctx, env, h.Name); err != nil {
			return out, fmt.Errorf("node status of %s: %w", h.Name, err)
		}
	}
	s1, lastMove, err = waitQuiet(ctx, hosts, s0, c.quiet, 60*time.Second, 10*time.Minute)
	res = deltas(eventNodeStatus, s0, s1, lastMove.Sub(t0))
	out = append(out, res)
	logf("Idle: Node status: %.0f bytes, %.2f connections per host; %d/%d hosts reached; over in %s", res.bytes.mean, res.conns.mean, res.moved, res.hosts, res.duration.Round(time.Millisecond))
	return out, err
}

// eventNodeStatus names the idle measurement of Node status reports.
const eventNodeStatus = "one Node status report per host"

// heartbeat does what a kubelet's status report does to its Node: the
// conditions' heartbeat times move.
func heartbeat(ctx context.Context, env *localenv.Env, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := env.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		for i := range node.Status.Conditions {
			node.Status.Conditions[i].LastHeartbeatTime = now
		}
		if len(node.Status.Conditions) == 0 {
			return apierrors.NewBadRequest("node has no conditions")
		}
		_, err = env.Clientset.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

// stampWriter prefixes each write with the time.
type stampWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *stampWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := fmt.Fprintf(s.w, "%s %s", time.Now().UTC().Format("15:04:05.000"), p); err != nil {
		return 0, err
	}
	return len(p), nil
}
