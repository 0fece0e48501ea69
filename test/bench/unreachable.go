package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/inventory"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// unreachableResult is one run of the unreachable phase: how long one good
// host took to be Ready with the dead hosts listed as the case says.
type unreachableResult struct {
	// name of the case: baseline (no dead host), together (listed in the
	// same ConfigMap write) or later (the good host is added while the
	// dead ones are being retried).
	name string
	// refused hosts answer a connection with a reset (nothing listens);
	// silent ones accept it and never say a word.
	refused, silent int
	good            time.Duration
	// samples are the good host's times of every run of the case; good is
	// their median.
	samples []time.Duration
	// deadReasons counts the dead instances' Ready condition reasons when
	// the good host was Ready.
	deadReasons map[string]int
}

// runUnreachablePhase measures what dead hosts cost a good one (issue 17's
// bound: 50 of them delay its join by at most 20%). Every run is a fresh
// environment with one good simulated host at the default concurrency.
// The cases run in rounds of one each, --unreachable-runs times, so that a
// machine getting slower or faster meanwhile weighs on every case alike;
// each case's figure is its median run (one join varies by a few hundred
// ms).
func runUnreachablePhase(ctx context.Context, c config, r *report) error {
	refused, silent := c.deadHosts/2, c.deadHosts-c.deadHosts/2
	cases := []struct {
		name            string
		refused, silent int
		later           bool
	}{
		{"baseline", 0, 0, false},
		{"together", refused, silent, false},
		{"later", refused, silent, true},
	}
	runs := make([][]unreachableResult, len(cases))
	var errs []error
	for round := range max(1, c.unreachableRuns) {
		for i, tc := range cases {
			name := tc.name
			if c.unreachableRuns > 1 {
				name = fmt.Sprintf("%s #%d", tc.name, round+1)
			}
			res, err := runUnreachable(ctx, c, name, tc.refused, tc.silent, tc.later)
			freeMemory()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
				continue
			}
			res.name = tc.name
			runs[i] = append(runs[i], *res)
		}
	}
	for _, caseRuns := range runs {
		if len(caseRuns) > 0 {
			r.unreachable = append(r.unreachable, medianUnreachable(caseRuns))
		}
	}
	return errors.Join(errs...)
}

// medianUnreachable is the run of one case whose good host took the median
// time, with every run's time in samples (in the order they ran).
func medianUnreachable(runs []unreachableResult) unreachableResult {
	samples := make([]time.Duration, len(runs))
	for i, u := range runs {
		samples[i] = u.good
	}
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b unreachableResult) int { return cmp.Compare(a.good, b.good) })
	med := sorted[len(sorted)/2]
	med.samples = samples
	return med
}

func runUnreachable(ctx context.Context, c config, name string, refused, silent int, later bool) (*unreachableResult, error) {
	logf("Unreachable %s: one good host, %d refusing and %d silent addresses", name, refused, silent)
	env, err := localenv.Start(ctx, localenv.Options{
		Hosts:           1,
		OperatorBinary:  c.operator,
		BandwidthLimit:  int64(c.bandwidthMB * 1e6),
		PayloadFileSize: c.fileSizeMiB << 20,
		Host:            simagent.Options{ServiceStartDelay: c.serviceDelay, KubeletStatusInterval: c.statusEvery},
		Log:             prefixWriter{prefix: "  [" + name + "] "},
		KeepLogsIn:      c.keepLogsIn("unreachable-" + strings.ReplaceAll(strings.ReplaceAll(name, " ", ""), "#", "-")),
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			logf("stop: %v", err)
		}
	}()
	dead, stop, err := deadHosts(refused, silent)
	if err != nil {
		return nil, err
	}
	defer stop()

	good := env.Hosts[0]
	data := map[string]string{}
	for addr, port := range dead {
		data[addr] = "username=Administrator\nport=" + strconv.Itoa(port)
	}
	if later {
		if err := env.SetInventoryData(ctx, data); err != nil {
			return nil, err
		}
		// The dead instances exist and have been tried once each before
		// the good host is listed.
		if err := waitTried(ctx, env, len(dead)); err != nil {
			return nil, err
		}
	}
	data[good.IP] = good.InventoryEntry()
	t0 := time.Now()
	if err := env.SetInventoryData(ctx, data); err != nil {
		return nil, err
	}
	res := &unreachableResult{name: name, refused: refused, silent: silent, deadReasons: map[string]int{}}
	goodName := inventory.InstanceName(good.IP)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		wi := &wmcov1.WindowsInstance{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: goodName}, wi); err == nil &&
			meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReady) {
			res.good = time.Since(t0)
			break
		}
		if time.Since(t0) > c.joinTimeout {
			return nil, fmt.Errorf("the good host was not Ready within %s", c.joinTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	var list wmcov1.WindowsInstanceList
	if err := env.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	for _, wi := range list.Items {
		if wi.Name == goodName {
			continue
		}
		reason := "no Ready condition"
		if cond := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReady); cond != nil {
			reason = cond.Reason
		}
		res.deadReasons[reason]++
	}
	logf("Unreachable %s: the good host was Ready in %s; dead instances: %v", name, res.good.Round(time.Millisecond), res.deadReasons)
	return res, nil
}

// deadHosts starts silent listeners (accept, then never write) and picks
// addresses where nothing listens; it returns address → port.
func deadHosts(refused, silent int) (map[string]int, func(), error) {
	out := map[string]int{}
	var listeners []net.Listener
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	stop := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	for i := range refused {
		addr := fmt.Sprintf("127.0.77.%d", i+1)
		// A port that was free a moment ago: nothing listens there.
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			stop()
			return nil, nil, err
		}
		out[addr] = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
	}
	for i := range silent {
		addr := fmt.Sprintf("127.0.78.%d", i+1)
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			stop()
			return nil, nil, err
		}
		listeners = append(listeners, l)
		out[addr] = l.Addr().(*net.TCPAddr).Port
		wg.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	return out, stop, nil
}

// waitTried waits until n instances report a Ready condition (each was
// tried at least once).
func waitTried(ctx context.Context, env *localenv.Env, n int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var list wmcov1.WindowsInstanceList
		if err := env.Client.List(ctx, &list); err == nil {
			tried := 0
			for _, wi := range list.Items {
				if meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReady) != nil && wi.Status.Message != "" {
					tried++
				}
			}
			if tried >= n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the %d dead instances were not all tried within 5m", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// unreachableTable is the good host's join time per case.
func (r *report) unreachableTable() string {
	t := &table{head: []string{"case", "dead hosts (refusing + silent)", "good host Ready after (median)", "runs", "vs baseline", "dead instances' Ready reasons"}}
	var base time.Duration
	for _, u := range r.unreachable {
		if u.name == "baseline" {
			base = u.good
		}
	}
	for _, u := range r.unreachable {
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%+.0f%%", (u.good.Seconds()/base.Seconds()-1)*100)
		}
		reasons := "-"
		if len(u.deadReasons) > 0 {
			reasons = fmt.Sprint(u.deadReasons)
		}
		t.add(u.name, fmt.Sprintf("%d + %d", u.refused, u.silent), fmtDur(u.good), fmtDurs(u.samples), ratio, reasons)
	}
	return t.String()
}
