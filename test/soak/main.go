// Command soak churns a local environment (test/localenv: control plane,
// simulated Windows hosts, the operator as its own process) with a bounded
// random schedule of operations for a while, with test/localenv's
// invariant checker running throughout, and reports what it did and what
// broke. The schedule follows from the seed: the same seed gives the same
// operations in the same order (their timing follows the machine).
//
//	go run ./test/soak --operator bin/operator --duration 30m --seed 1 --hosts 6
//
// It exits with status 1 when an invariant was violated or the system did
// not settle at the end.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Operation kinds.
const (
	opAdd            = "add host"
	opRemove         = "remove host"
	opRename         = "rename node"
	opReboot         = "reboot host"
	opDrop           = "drop connections"
	opOperator       = "restart operator"
	opAPIServer      = "restart kube-apiserver"
	opTouchConfig    = "touch WindowsNodeConfig"
	opForeignCSR     = "submit foreign CSR"
	maxParallelLimit = 3
)

// weights of the operations in the schedule.
var weights = []struct {
	op string
	w  int
}{
	{opAdd, 5}, {opRemove, 3}, {opRename, 2}, {opReboot, 3}, {opDrop, 4},
	{opOperator, 2}, {opAPIServer, 1}, {opTouchConfig, 2}, {opForeignCSR, 2},
}

// Bounds of the schedule: the pause between two operations, and how many
// operations at least come between two restarts of the operator or of the
// API server (counted in operations, not time, so that the schedule
// depends on the seed alone).
const (
	minPause          = 3 * time.Second
	maxPause          = 9 * time.Second
	operatorEvery     = 8
	apiServerEvery    = 15
	maxRebootingHosts = 2
	settleTimeout     = 5 * time.Minute
)

type soak struct {
	env     *localenv.Env
	checker *localenv.InvariantChecker
	rng     *rand.Rand
	log     io.Writer

	mu    sync.Mutex
	hosts []*localenv.Host // every host started
	// listed hosts are in the windows-instances ConfigMap, with their
	// node name override ("" for none).
	listed    map[*localenv.Host]string
	rebooting int
	renames   int

	ops            map[string]int
	skipped        map[string]int
	n              int // operations drawn
	lastOperator   int
	lastAPIServer  int
	graceful       int
	wncToggle      bool
	peakRSS        int64
	peakGoroutines int
}

func main() {
	duration := flag.Duration("duration", 30*time.Minute, "how long to churn (then settle and report)")
	seed := flag.Uint64("seed", 1, "seed of the random schedule")
	hosts := flag.Int("hosts", 6, "simulated hosts (at most half of them more are started by adds)")
	operator := flag.String("operator", "", "operator binary (default: built from cmd/operator)")
	verbose := flag.Bool("v", false, "print the environment's progress lines")
	flag.Parse()
	if err := run(*duration, *seed, *hosts, *operator, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Printf("%s %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(duration time.Duration, seed uint64, nHosts int, operator string, verbose bool) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if nHosts < 2 {
		return fmt.Errorf("--hosts must be at least 2")
	}
	began := time.Now()
	envLog := io.Discard
	if verbose {
		envLog = os.Stdout
	}
	logf("Soak: %s, seed %d, %d hosts, maxParallelConfigurations %d", duration, seed, nHosts, maxParallelLimit)
	env, err := localenv.Start(ctx, localenv.Options{
		Hosts: nHosts, OperatorBinary: operator, Log: envLog, MaxParallelConfigurations: maxParallelLimit,
		Host: simagent.Options{RebootDownTime: 3 * time.Second},
	})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	s := &soak{
		env: env, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), log: envLog,
		hosts: slices.Clone(env.Hosts), listed: map[*localenv.Host]string{},
		ops: map[string]int{}, skipped: map[string]int{},
	}
	if s.checker, err = localenv.NewInvariantChecker(env); err != nil {
		return err
	}
	s.checker.Hosts = func() []*localenv.Host {
		s.mu.Lock()
		defer s.mu.Unlock()
		return slices.Clone(s.hosts)
	}
	s.checker.Grace = time.Minute
	s.checker.StuckAfter = 5 * time.Minute
	s.checker.MaxParallel = maxParallelLimit
	defer s.checker.Stop()

	// Half the hosts join first; the schedule adds the rest.
	for _, h := range s.hosts[:max(1, nHosts/2)] {
		s.listed[h] = ""
	}
	if err := s.writeInventory(ctx); err != nil {
		return err
	}
	logf("Waiting for the first %d hosts to join", len(s.listed))
	if err := s.settle(ctx); err != nil {
		return fmt.Errorf("initial join: %w", err)
	}
	start := s.sample()
	logf("Joined; operator at start: %s", start)

	checkCtx, stopChecks := context.WithCancel(ctx)
	defer stopChecks()
	checked := make(chan struct{})
	go func() { s.checker.Run(checkCtx, time.Second); close(checked) }()
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-checkCtx.Done():
				return
			case <-t.C:
				s.sample()
			}
		}
	}()

	deadline := time.Now().Add(duration)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		op := s.pick()
		if err := s.do(ctx, op); err != nil {
			logf("%s: %v", op, err)
			s.skipped[op]++
		}
		pause := minPause + time.Duration(s.rng.Int64N(int64(maxPause-minPause)))
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	logf("Churn over after %s; letting the system settle", time.Since(began).Round(time.Second))
	settleErr := s.settle(ctx)
	if settleErr == nil {
		// Settled: nothing may be broken now, eventual invariants
		// included.
		cur, err := s.checker.Current(ctx)
		if err != nil {
			settleErr = err
		}
		for _, v := range cur {
			logf("Not settled: %s", v)
			settleErr = fmt.Errorf("not settled: %d invariants broken at the end", len(cur))
		}
	}
	if _, err := s.checker.Check(ctx); err != nil && settleErr == nil {
		settleErr = err
	}
	stopChecks()
	<-checked
	<-sampled
	end := s.sample()
	violations := s.checker.Violations()
	s.report(time.Since(began), seed, start, end, violations, settleErr)
	if settleErr != nil {
		return settleErr
	}
	if len(violations) > 0 {
		return fmt.Errorf("%d invariant violations", len(violations))
	}
	return nil
}

// pick draws the next operation.
func (s *soak) pick() string {
	total := 0
	for _, w := range weights {
		total += w.w
	}
	n := s.rng.IntN(total)
	for _, w := range weights {
		if n < w.w {
			return w.op
		}
		n -= w.w
	}
	return weights[0].op
}

// do runs one operation, or skips it when the schedule's bounds forbid it
// now (recorded as skipped, not as an error).
func (s *soak) do(ctx context.Context, op string) error {
	s.mu.Lock()
	var listed, unlisted []*localenv.Host
	for _, h := range s.hosts {
		if _, ok := s.listed[h]; ok {
			listed = append(listed, h)
		} else {
			unlisted = append(unlisted, h)
		}
	}
	s.mu.Unlock()
	// Draw from the random source the same way whatever the state, so
	// the schedule depends on the seed alone.
	pickN := s.rng.IntN(1 << 20)
	s.n++
	skip := func() error { s.skipped[op]++; return nil }
	choose := func(l []*localenv.Host) *localenv.Host { return l[pickN%len(l)] }
	switch op {
	case opAdd:
		var h *localenv.Host
		switch {
		case len(unlisted) > 0:
			// Possibly one still being deconfigured: listed again
			// meanwhile, it must join again once that is done.
			h = choose(unlisted)
		case len(s.hosts) < 2*len(s.env.Hosts) && len(s.hosts) < 12:
			added, err := s.env.AddHosts(1)
			if err != nil {
				return err
			}
			h = added[0]
			s.mu.Lock()
			s.hosts = append(s.hosts, h)
			s.mu.Unlock()
		default:
			return skip()
		}
		s.mu.Lock()
		s.listed[h] = ""
		s.mu.Unlock()
		logf("%s %s", op, h.Name)
	case opRemove:
		if len(listed) <= 2 {
			return skip()
		}
		h := choose(listed)
		s.mu.Lock()
		delete(s.listed, h)
		s.mu.Unlock()
		logf("%s %s", op, h.Name)
	case opRename:
		if len(listed) == 0 {
			return skip()
		}
		h := choose(listed)
		s.mu.Lock()
		if s.listed[h] == "" {
			s.renames++
			s.listed[h] = fmt.Sprintf("%s-r%d", h.Name, s.renames)
		} else {
			s.listed[h] = ""
		}
		name := s.listed[h]
		s.mu.Unlock()
		logf("%s %s to %q", op, h.Name, name)
	case opReboot:
		if len(listed) == 0 {
			return skip()
		}
		h := choose(listed)
		s.mu.Lock()
		if s.rebooting >= maxRebootingHosts {
			s.mu.Unlock()
			return skip()
		}
		s.rebooting++
		s.mu.Unlock()
		logf("%s %s", op, h.Name)
		go func() {
			defer func() { s.mu.Lock(); s.rebooting--; s.mu.Unlock() }()
			if err := h.Host.Reboot(context.Background(), 3*time.Second); err != nil {
				logf("reboot %s: %v", h.Name, err)
				return
			}
			_ = h.Host.WaitUp(ctx)
		}()
		s.ops[op]++
		return nil
	case opDrop:
		if len(listed) == 0 {
			return skip()
		}
		h := choose(listed)
		if pickN%2 == 0 {
			logf("%s %s: reset every connection", op, h.Name)
			h.Host.ResetConnections()
		} else {
			n := int64(pickN%(4<<20)) + 64<<10
			logf("%s %s: the connection carrying byte %d from now is reset", op, h.Name, n)
			h.Host.DropAfter(n)
		}
		s.ops[op]++
		return nil
	case opOperator:
		if s.n-s.lastOperator < operatorEvery {
			return skip()
		}
		s.lastOperator = s.n
		if pickN%2 == 0 {
			logf("%s: SIGKILL (the supervisor restarts it)", op)
			s.env.KillOperator()
		} else {
			logf("%s: SIGTERM and start", op)
			s.env.StopOperator()
			s.graceful++
		}
		if err := s.env.RestartOperator(ctx); err != nil {
			return err
		}
		s.ops[op]++
		return nil
	case opAPIServer:
		if s.n-s.lastAPIServer < apiServerEvery {
			return skip()
		}
		s.lastAPIServer = s.n
		logf("%s", op)
		if err := s.env.Cluster.RestartAPIServer(ctx, s.env.Cluster.APIServerVersion()); err != nil {
			return err
		}
		s.ops[op]++
		return nil
	case opTouchConfig:
		s.wncToggle = !s.wncToggle
		days := int32(7)
		if s.wncToggle {
			days = 14
		}
		limit := int32(maxParallelLimit - pickN%2)
		logf("%s: logRotation.maxAgeDays %d, maxParallelConfigurations %d", op, days, limit)
		if err := s.touchConfig(ctx, days, limit); err != nil {
			return err
		}
		s.ops[op]++
		return nil
	case opForeignCSR:
		csr, err := localenv.ForeignCSR(ctx, s.env, fmt.Sprintf("foreign-%d", pickN))
		if err != nil {
			return err
		}
		s.checker.Foreign(csr.Name)
		logf("%s %s", op, csr.Name)
		s.ops[op]++
		return nil
	}
	s.ops[op]++
	return s.writeInventory(ctx)
}

// writeInventory writes the listed hosts into the windows-instances
// ConfigMap.
func (s *soak) writeInventory(ctx context.Context) error {
	s.mu.Lock()
	data := map[string]string{}
	for h, node := range s.listed {
		v := h.InventoryEntry()
		if node != "" {
			v += "\nnodeName=" + node
		}
		data[h.IP] = v
	}
	s.mu.Unlock()
	return s.env.SetInventoryData(ctx, data)
}

func (s *soak) touchConfig(ctx context.Context, days, limit int32) error {
	var wnc wmcov1.WindowsNodeConfig
	if err := s.env.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, &wnc); err != nil {
		return err
	}
	patch := client.MergeFrom(wnc.DeepCopy())
	wnc.Spec.LogRotation.MaxAgeDays = days
	wnc.Spec.MaxParallelConfigurations = limit
	return s.env.Client.Patch(ctx, &wnc, patch)
}

// settle waits until every listed host's instance is Ready under its
// node name and every other instance is gone.
func (s *soak) settle(ctx context.Context) error {
	deadline := time.Now().Add(settleTimeout)
	var last string
	for {
		ok, why, err := s.settled(ctx)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			why = err.Error()
		}
		if why != last {
			logf("Settling: %s", why)
			last = why
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not settled within %s: %s", settleTimeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (s *soak) settled(ctx context.Context) (bool, string, error) {
	var list wmcov1.WindowsInstanceList
	if err := s.env.Client.List(ctx, &list); err != nil {
		return false, "", err
	}
	s.mu.Lock()
	want := map[string]string{}
	for h, node := range s.listed {
		want[h.IP] = node
	}
	s.mu.Unlock()
	var waiting []string
	for _, wi := range list.Items {
		node, ok := want[wi.Spec.Address]
		switch {
		case !ok:
			waiting = append(waiting, wi.Name+" to be removed")
		case wi.Status.Phase != wmcov1.PhaseReady || wi.Spec.NodeName != node || (node != "" && wi.Status.NodeName != node):
			waiting = append(waiting, fmt.Sprintf("%s (%s): %s", wi.Name, wi.Status.Phase, wi.Status.Message))
		}
		delete(want, wi.Spec.Address)
	}
	for ip := range want {
		waiting = append(waiting, ip+" to be listed")
	}
	sort.Strings(waiting)
	return len(waiting) == 0, strings.Join(waiting, "; "), nil
}

// opSample is the operator process's resources at one moment.
type opSample struct {
	pid        int
	rss, hwm   int64
	goroutines int
}

func (o opSample) String() string {
	return fmt.Sprintf("PID %d, VmRSS %.1f MiB, VmHWM %.1f MiB, go_goroutines %d", o.pid, float64(o.rss)/(1<<20), float64(o.hwm)/(1<<20), o.goroutines)
}

// sample reads the operator's memory (/proc) and goroutines (its metrics)
// and keeps the peaks.
func (s *soak) sample() opSample {
	o := opSample{pid: s.env.OperatorPID()}
	if o.pid == 0 {
		return o
	}
	if f, err := os.Open("/proc/" + strconv.Itoa(o.pid) + "/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "VmRSS":
				o.rss = kb << 10
			case "VmHWM":
				o.hwm = kb << 10
			}
		}
		_ = f.Close()
	}
	o.goroutines = goroutines(s.env.MetricsURL)
	s.mu.Lock()
	s.peakRSS = max(s.peakRSS, o.hwm)
	s.peakGoroutines = max(s.peakGoroutines, o.goroutines)
	s.mu.Unlock()
	return o
}

// goroutines reads go_goroutines from the operator's metrics (-1 when it
// cannot).
func goroutines(url string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(n)
			}
		}
	}
	return -1
}

func (s *soak) report(total time.Duration, seed uint64, start, end opSample, violations []localenv.Violation, settleErr error) {
	fmt.Printf("\nSoak report (seed %d, %s in all)\n\n", seed, total.Round(time.Second))
	fmt.Printf("| operation | done | skipped (bounds) |\n| --- | --- | --- |\n")
	done := 0
	for _, w := range weights {
		fmt.Printf("| %s | %d | %d |\n", w.op, s.ops[w.op], s.skipped[w.op])
		done += s.ops[w.op]
	}
	fmt.Printf("| all | %d | |\n\n", done)
	s.mu.Lock()
	hosts, listed := len(s.hosts), len(s.listed)
	s.mu.Unlock()
	fmt.Printf("hosts started: %d, listed at the end: %d\n", hosts, listed)
	fmt.Printf("invariant checks: %d, violations: %d\n", s.checker.Checks(), len(violations))
	for _, v := range violations {
		fmt.Printf("  VIOLATION at %s: %s\n", v.At.UTC().Format(time.TimeOnly), v)
	}
	fmt.Printf("operator restarts survived: %d (SIGKILL, restarted by the supervisor: %d; SIGTERM and start: %d)\n",
		s.env.OperatorRestarts()+s.graceful, s.env.OperatorRestarts(), s.graceful)
	fmt.Printf("peak hosts with an agent command running at once: %d (maxParallelConfigurations at most %d)\n", s.checker.PeakParallel(), maxParallelLimit)
	fmt.Printf("operator at start: %s\n", start)
	fmt.Printf("operator at end:   %s\n", end)
	fmt.Printf("operator peaks over the run (samples every 5 s, across restarts): VmHWM %.1f MiB, go_goroutines %d\n", float64(s.peakRSS)/(1<<20), s.peakGoroutines)
	if start.goroutines > 0 && end.goroutines > 0 {
		fmt.Printf("goroutines end - start: %+d\n", end.goroutines-start.goroutines)
	}
	if settleErr != nil {
		fmt.Printf("settled at the end: NO: %v\n", settleErr)
	} else {
		fmt.Printf("settled at the end: yes (every listed host Ready, every other instance gone, no invariant broken)\n")
	}
}
