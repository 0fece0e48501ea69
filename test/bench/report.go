package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/openwmco/wmco/pkg/nodeconfig"
)

// report collects the figures of one run.
type report struct {
	cfg        config
	machine    machine
	kubernetes string
	started    time.Time
	total      time.Duration
	loadEnd    string
	// probeEnd is probeSpeed at the end.
	probeEnd time.Duration

	joins    []joinResult
	idle     []idleResult
	csrs     []*csrResult
	profiles []profileSummary
	rss      *rssResult
	upgrades []upgradeResult
	// unreachable are the runs of the unreachable phase.
	unreachable []unreachableResult
	errors      []string
}

func fmtBytes(b int64) string { return fmtBytesF(float64(b)) }

func fmtBytesF(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// fmtProbe is a speed probe's time as fmtDur gives it; "" when it did
// not run.
func fmtProbe(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmtDur(d)
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 100*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.0f s (%s)", d.Seconds(), d.Round(time.Second))
	}
}

type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	line(t.head)
	sep := make([]string, len(t.head))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	return b.String()
}

func (r *report) join(n, conc int) *joinResult {
	for i := range r.joins {
		if r.joins[i].hosts == n && r.joins[i].concurrency == conc {
			return &r.joins[i]
		}
	}
	return nil
}

func concName(c int) string {
	if c == 1 {
		return "concurrency 1 (serial)"
	}
	return fmt.Sprintf("concurrency %d", c)
}

// joinTable is T(N) and T(N)/T(1) per concurrency, side by side.
func (r *report) joinTable() string {
	t := &table{head: []string{"N hosts"}}
	for _, c := range r.cfg.concurrency {
		t.head = append(t.head, "T(N), "+concName(c), "T(N)/T(1)")
	}
	speedup := slices.Contains(r.cfg.concurrency, 1) && r.cfg.concurrency[0] != 1
	if speedup {
		t.head = append(t.head, fmt.Sprintf("serial ÷ concurrency %d", r.cfg.concurrency[0]))
	}
	for _, n := range r.cfg.hosts {
		row := []string{fmt.Sprint(n)}
		for _, c := range r.cfg.concurrency {
			j, one := r.join(n, c), r.join(r.cfg.hosts[0], c)
			switch {
			case j == nil:
				row = append(row, "not run", "")
			case j.timedOut:
				row = append(row, fmt.Sprintf("> %s (%d/%d Ready)", fmtDur(j.duration), j.ready, n), "")
			default:
				ratio := ""
				if one != nil && !one.timedOut && r.cfg.hosts[0] == 1 {
					ratio = fmt.Sprintf("%.1f", j.duration.Seconds()/one.duration.Seconds())
				}
				row = append(row, fmtDur(j.duration), ratio)
			}
		}
		if speedup {
			s, p := r.join(n, 1), r.join(n, r.cfg.concurrency[0])
			if s != nil && p != nil && !s.timedOut && !p.timedOut {
				row = append(row, fmt.Sprintf("%.1f×", s.duration.Seconds()/p.duration.Seconds()))
			} else {
				row = append(row, "")
			}
		}
		t.add(row...)
	}
	return t.String()
}

func (r *report) joinDetails() string {
	t := &table{head: []string{"N hosts", "concurrency", "Ready", "T(N)", "received per host", "SSH connections per host", "operator VmHWM", "late kubelet reports"}}
	stalled := 0
	for _, j := range r.joins {
		t.add(fmt.Sprint(j.hosts), fmt.Sprint(j.concurrency), fmt.Sprintf("%d/%d", j.ready, j.hosts), fmtDur(j.duration),
			fmtBytesF(j.bytesPerHost), fmt.Sprintf("%.1f", j.connsPerHost), fmtBytes(j.operatorHWM), fmt.Sprint(j.stalled))
		stalled += j.stalled
	}
	out := t.String() + "\n" + r.joinCPU()
	if stalled > 0 {
		out += fmt.Sprintf("\n\"Late kubelet reports\" counts hosts whose Node stayed NotReady more than\n"+
			"8 s after the CNI configuration was on the host: the kubelet emulator\n"+
			"(test/kubeletemu) lost its status report (see \"Notes\") and reported again\n"+
			"at its next one, up to %s later. Those runs' T(N) include that wait,\n"+
			"which is the test harness's and not the operator's.\n", r.cfg.statusEvery)
	}
	return out
}

// joinCPU is the CPU time each process used during each join: the
// simulated hosts do on this machine's cores what real hosts do on their
// own, so a join that fills the cores is bound by the machine.
func (r *report) joinCPU() string {
	var names []string
	for _, j := range r.joins {
		for n := range j.cpu {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	if i := slices.Index(names, joinSimulatedHosts); i > 0 {
		names = slices.Insert(slices.Delete(names, i, i+1), 0, joinSimulatedHosts)
	}
	t := &table{head: append(append([]string{"N hosts", "concurrency"}, names...), "in all", "share of the machine", "speed probe before")}
	for _, j := range r.joins {
		if j.cpu == nil {
			continue
		}
		row := []string{fmt.Sprint(j.hosts), fmt.Sprint(j.concurrency)}
		sum := 0.0
		for _, n := range names {
			v, ok := j.cpu[n]
			if !ok {
				row = append(row, "")
				continue
			}
			row = append(row, fmt.Sprintf("%.1f s", v))
			sum += v
		}
		row = append(row, fmt.Sprintf("%.1f s", sum), fmt.Sprintf("%.0f %% of %d cores", 100*machineShare(sum, j.duration, r.machine.cores), r.machine.cores), fmtProbe(j.probe))
		t.add(row...)
	}
	return fmt.Sprintf("CPU time of each process during the join (from the inventory written until\n"+
		"every instance was Ready; \"%s\" is the benchmark's own process, with\n"+
		"the real agent on each simulated host). Near 100 %%, T(N) is bound by\n"+
		"this machine's cores, which the simulated hosts share with the\n"+
		"operator and the control plane. The speed probe (see \"Machine\") ran\n"+
		"right before the run's environment started; the same code's CPU time\n"+
		"moves with it:\n\n%s", joinSimulatedHosts, t.String())
}

func (r *report) idleTable() string {
	t := &table{head: []string{"event", "hosts with a new SSH connection", "bytes received per host: mean (min–max)", "SSH connections per host: mean (min–max)", "agent commands per host", "over after"}}
	for _, e := range r.idle {
		over := fmtDur(e.duration)
		if e.moved == 0 && e.bytes.max == 0 {
			over = "nothing moved"
		}
		t.add(e.event, fmt.Sprintf("%d/%d", e.moved, e.hosts),
			fmt.Sprintf("%s (%s–%s)", fmtBytesF(e.bytes.mean), fmtBytesF(e.bytes.min), fmtBytesF(e.bytes.max)),
			fmt.Sprintf("%.2f (%.0f–%.0f)", e.conns.mean, e.conns.min, e.conns.max),
			fmt.Sprintf("%.1f", e.commands.mean), over)
	}
	return t.String()
}

func (r *report) csrTable() string {
	t := &table{head: []string{"CSRs", "approver", "approved", "denied", "left pending", "p50", "p99", "p99 of each burst", "max", "last approved after", "create request p50 / max",
		"created until seen p50 / p99", "seen until approved p50 / p99"}}
	for _, c := range r.csrs {
		runs := make([]string, 0, len(c.runP99s))
		for _, d := range c.runP99s {
			runs = append(runs, fmtDur(d))
		}
		t.add(fmt.Sprint(c.n), c.approverName(), fmt.Sprint(c.approved), fmt.Sprint(c.denied), fmt.Sprint(c.pending),
			fmtDur(c.p50), fmtDur(c.p99), strings.Join(runs, ", "), fmtDur(c.max), fmtDur(c.all), fmtDur(c.createP50)+" / "+fmtDur(c.createMax),
			fmtDur(c.seenP50)+" / "+fmtDur(c.seenP99), fmtDur(c.decideP50)+" / "+fmtDur(c.decideP99))
	}
	return t.String()
}

func (r *report) rssTable() string {
	m := r.rss
	t := &table{head: []string{"cluster", "Linux Nodes", "Windows Nodes", "Pods", "operator VmHWM (peak RSS)", "VmRSS after settling",
		"of it file-backed / anonymous", "Go heap allocated / GC goal", "settled for"}}
	parts := func(m memStatus, g goMem) (string, string) {
		heap := ""
		if g.HeapAlloc > 0 {
			heap = fmtBytes(g.HeapAlloc) + " / " + fmtBytes(g.NextGC)
		}
		return fmtBytes(m.File) + " / " + fmtBytes(m.Anon), heap
	}
	rss, heap := parts(m.empty, m.emptyGo)
	t.add("empty", "0", "0", "0", fmtBytes(m.empty.HWM), fmtBytes(m.empty.RSS), rss, heap, fmtDur(m.settleEmpty))
	rss, heap = parts(m.loaded, m.loadedGo)
	t.add("loaded", fmt.Sprint(m.linuxNodes), fmt.Sprint(m.windowsNodes), fmt.Sprint(m.pods), fmtBytes(m.loaded.HWM), fmtBytes(m.loaded.RSS), rss, heap, fmtDur(m.settleLoaded))
	for _, v := range m.compare {
		rss, heap = parts(v.empty, v.emptyGo)
		t.add("empty, `"+v.name+"`", "0", "0", "0", fmtBytes(v.empty.HWM), fmtBytes(v.empty.RSS), rss, heap, fmtDur(v.settleEmpty))
		rss, heap = parts(v.loaded, v.loadedGo)
		t.add("loaded, `"+v.name+"`", fmt.Sprint(m.linuxNodes), fmt.Sprint(m.windowsNodes), fmt.Sprint(m.pods), fmtBytes(v.loaded.HWM), fmtBytes(v.loaded.RSS), rss, heap, fmtDur(v.settleLoaded))
	}
	if j := m.join; j != nil {
		t.add(fmt.Sprintf("joining %d hosts (%d/%d Ready after %s)", j.hosts, j.ready, j.hosts, fmtDur(j.duration)), "0", fmt.Sprint(j.ready), "0", fmtBytes(j.operatorHWM), "", "", "", "")
	}
	return t.String()
}

// results are the measured tables, for stdout and the report.
func (r *report) results(heading string) string {
	var b strings.Builder
	if r.joins != nil {
		fmt.Fprintf(&b, "%s 1. Join time\n\n%s\n%s\n", heading, r.joinTable(), r.joinDetails())
		if p := r.phaseTable(); p != "" {
			fmt.Fprintf(&b, "%s\n", p)
		}
	}
	if r.idle != nil {
		fmt.Fprintf(&b, "%s 2. Idle cost (N=%d, %s)\n\n%s\n", heading, r.idle[0].hosts, concName(r.cfg.concurrency[0]), r.idleTable())
		for _, e := range r.idle {
			if e.event != eventNodeStatus {
				continue
			}
			if e.moved == 0 {
				b.WriteString("A Node status report that only moves heartbeat times cost the hosts\nnothing: no SSH connection.\n\n")
			} else {
				fmt.Fprintf(&b, "Every Node status report cost %d of %d hosts an SSH connection (%s\nreceived per host on average): the operator reconciled those hosts although\nonly heartbeat times changed.\n\n", e.moved, e.hosts, fmtBytesF(e.bytes.mean))
			}
		}
	}
	if r.csrs != nil {
		fmt.Fprintf(&b, "%s 3. CSR approval latency\n\n%s\n", heading, r.csrTable())
		for _, c := range r.csrs {
			fmt.Fprintf(&b, "CPU time during the burst of %d approved by %s: %s; %.2fs in all in %s on %d cores, %.0f%% of the machine. Connections the simulated kubelets opened during it: %d.",
				c.n, c.approverName(), c.cpu, c.cpuSum, fmtDur(c.cpuWall), r.machine.cores, 100*c.cpuShare, c.dialed)
			if c.closedWatches >= 0 {
				fmt.Fprintf(&b, " Watches of CSRs the API server closed during it for falling behind: %d.", c.closedWatches)
			}
			if c.apiServerGCs >= 0 {
				fmt.Fprintf(&b, " Garbage collections of the API server during it: %d.", c.apiServerGCs)
			}
			if len(c.queued) > 0 {
				b.WriteString(" Requests that waited in the API server's priority and fairness queues meanwhile, by priority level:")
				for _, q := range c.queued {
					fmt.Fprintf(&b, "\n- %s", q)
				}
			}
			b.WriteString("\n\n")
			if c.requests != nil {
				fmt.Fprintf(&b, "API requests during the first burst of %d approved by %s (until 3 s after the last approval):\n\n%s\n", c.n, c.approverName(), c.requests.per(c.n, "CSR"))
			}
		}
	}
	if r.rss != nil {
		fmt.Fprintf(&b, "%s 4. Operator memory\n\n%s\n", heading, r.rssTable())
		if w := r.rss.whereMemoryGoes(); w != "" {
			fmt.Fprintf(&b, "%s\n", w)
		}
	}
	if r.upgrades != nil {
		fmt.Fprintf(&b, "%s 5. Upgrades (N=%d)\n\n%s\n", heading, r.upgrades[0].hosts, r.upgradeTable())
	}
	if r.unreachable != nil {
		fmt.Fprintf(&b, "%s 6. A good host among unreachable ones (%s)\n\n%s\n", heading, concName(nodeconfig.DefaultMaxParallelConfigurations), r.unreachableTable())
	}
	b.WriteString(r.profilesSection(heading))
	if len(r.errors) > 0 {
		fmt.Fprintf(&b, "%s Failures\n\n", heading)
		for _, e := range r.errors {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *report) summary() string {
	return fmt.Sprintf("\n%s\nMachine: %s, %d cores, %s; %s; Kubernetes %s; total wall time %s\n",
		r.results("##"), r.machine.cpu, r.machine.cores, fmtBytes(r.machine.memory), r.machine.goVer, r.kubernetes, r.total.Round(time.Second))
}

func (r *report) markdown() string {
	c := r.cfg
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	k8s := r.kubernetes
	if k8s == "" {
		k8s = "not asked (no phase started a plain control plane)"
	}
	w("# Benchmarks\n\n")
	w("Written by `make bench` (`go run ./test/bench`) on %s. Every figure comes\n", r.started.UTC().Format("2006-01-02 15:04 MST"))
	w("from that one run; run it again to refresh them. The benchmark is not part\n")
	w("of the tests and asserts nothing.\n\n")

	w("## Machine\n\n")
	mt := &table{head: []string{"", ""}}
	mt.add("CPU", fmt.Sprintf("%s, %d cores", r.machine.cpu, r.machine.cores))
	mt.add("Memory", fmtBytes(r.machine.memory))
	if r.machine.kernel != "" {
		mt.add("OS", r.machine.kernel)
	}
	mt.add("Go", r.machine.goVer)
	mt.add("Kubernetes (control plane)", k8s)
	if r.machine.commit != "" {
		mt.add("Source", "`"+r.machine.commit+"`")
	}
	mt.add("Load average (1, 5, 15 min) at start / end", r.machine.loadAvg+" / "+r.loadEnd)
	mt.add("Speed probe at start / end (SHA-256, AES-GCM and a copy of 256 MiB on one core, the median of 3; lower is faster)", fmtProbe(r.machine.probe)+" / "+fmtProbe(r.probeEnd))
	mt.add("Date", r.started.UTC().Format(time.RFC1123))
	mt.add("Total wall time", fmtDur(r.total))
	b.WriteString(mt.String())
	w("\nEverything runs on this one machine at once: etcd, kube-apiserver,\n")
	w("kube-controller-manager, the operator process, and the simulated Windows\n")
	w("hosts (SSH/SFTP servers, the real agent on its `sim` backend, kubelet\n")
	w("emulators) inside the benchmark's process. The hosts' own work (SSH\n")
	w("decryption, hashing the payload, starting services) shares the same %d\n", r.machine.cores)
	w("cores with the operator and the control plane, which real hosts would\n")
	w("not; concurrent runs are therefore bounded by this machine's CPU, not by\n")
	w("the operator alone. A load average well above 0 at the start means other\n")
	w("work was running too.\n\n")

	w("## Settings\n\n")
	st := &table{head: []string{"setting", "value", "flag"}}
	files := payloadFiles()
	st.add("payload", fmt.Sprintf("%d files × %d MiB = %d MiB per host", files, c.fileSizeMiB, int64(files)*c.fileSizeMiB), "`--payload-file-size` (MiB per file)")
	st.add("bandwidth per simulated host", fmt.Sprintf("%g MB/s", c.bandwidthMB), "`--bandwidth`")
	st.add("Windows service start", fmt.Sprintf("%s per service start", c.serviceDelay), "`--service-start-delay`")
	st.add("kubelet emulator Node status report", fmt.Sprintf("every %s (Lease renewed every 2 s)", c.statusEvery), "`--kubelet-status-interval`")
	st.add("host counts N", joinInts(c.hosts), "`--hosts`")
	st.add("joins of one host per concurrency (T(1) is the median)", fmt.Sprint(max(1, c.t1Runs)), "`--t1-runs`")
	st.add("runs of each unreachable-hosts case (the median is reported)", fmt.Sprint(max(1, c.unreachableRuns)), "`--unreachable-runs`")
	st.add("concurrency (`maxParallelConfigurations`)", joinInts(c.concurrency), "`--concurrency`")
	st.add("CSR bursts", joinInts(c.csrs), "`--csrs`")
	st.add("bursts of each size (the median by p99 is reported)", fmt.Sprint(max(1, c.csrRuns)), "`--csr-runs`")
	st.add("CSR bursts also approved, for reference, by", cmp.Or(strings.Join(c.csrReference, ", "), "none"), "`--csr-reference`")
	st.add("memory phase objects", fmt.Sprintf("%d Linux Nodes, %d Windows Nodes, %d Pods in %d namespaces", c.linuxNodes, c.windowsNodes, c.pods, c.namespaces), "`--linux-nodes`, `--windows-nodes`, `--pods`, `--pod-namespaces`")
	b.WriteString(st.String())
	b.WriteString("\n")

	b.WriteString(r.results("##"))

	w("## What is measured, and how\n\n")
	w("1. **Join time.** For each N and each concurrency, a fresh environment\n")
	w("   (`test/localenv`): a new control plane, N new simulated hosts and the\n")
	w("   operator binary started with `maxParallelConfigurations` set in the\n")
	w("   `cluster` WindowsNodeConfig (it is read at start-up). T(N) runs from\n")
	w("   writing the `windows-instances` ConfigMap listing all N hosts until\n")
	w("   every WindowsInstance has condition `Ready=True` (polled every 100 ms),\n")
	w("   which needs the payload uploaded and verified, the services started,\n")
	w("   the kubelet's TLS bootstrap approved, the Node registered and Ready,\n")
	w("   and labelled and tainted by the operator. N=1 runs %d times at each\n", max(1, c.t1Runs))
	w("   concurrency, each in a fresh environment, and T(1) is the median run\n")
	w("   (one join varies by a few hundred ms). T(N)/T(1) divides by the\n")
	w("   T(1) of the same concurrency. \"received per host\" is what each\n")
	w("   host's SSH server received (payload plus SSH framing); \"operator\n")
	w("   VmHWM\" is the operator's peak RSS at the end of the run. The speed\n")
	w("   probe beside each join's CPU time (and at the start and end of the\n")
	w("   whole run) times SHA-256, AES-GCM sealing and a copy of 256 MiB on one\n")
	w("   core, the median of 3, right before the run's environment starts:\n")
	w("   a join spends most of its CPU on that work per byte, and this\n")
	w("   machine's speed moves from hour to hour (the same code's 50-host\n")
	w("   join has taken from 44 to 56 s of CPU), so a slower T(N) beside a\n")
	w("   slower probe is the machine's.\n")
	w("2. **Idle cost**, after the largest N of the first concurrency, with all\n")
	w("   hosts Ready: once the hosts' counters have been still for %s, the\n", c.quiet)
	w("   background traffic over a %s window with no event besides the\n", c.idleWindow)
	w("   kubelet emulators' status reports; then\n")
	w("   one full resync, triggered by touching (annotating) the `cluster`\n")
	w("   WindowsNodeConfig, which every instance watches; then one Node status\n")
	w("   report per host (the conditions' heartbeat times moved through the\n")
	w("   status subresource, as a kubelet does every nodeStatusReportFrequency,\n")
	w("   default 5 min, and whenever its status changes). Each event's cost is\n")
	w("   the per-host change of the simulated hosts' counters (`winsim`\n")
	w("   `Stats`: bytes received, SSH connections completed, exec requests)\n")
	w("   from the trigger until every host opened a new connection and no\n")
	w("   counter moved for %s (or nothing moved for 60 s); \"over after\" is\n", c.quiet)
	w("   when the last counter moved.\n")
	w("3. **CSR approval latency.** A fresh control plane and the operator,\n")
	w("   run as its ServiceAccount with the permissions of\n")
	w("   `config/rbac/role.yaml` (a token, as in a Deployment: its requests\n")
	w("   go through the API server's priority and fairness queues).\n")
	w("   N (%s) WindowsInstances with `spec.paused: true` and an address nothing\n", joinInts(c.csrs))
	w("   listens on, their `status.nodeName` and `status.host` set through the\n")
	w("   status subresource, each with a bootstrap identity from\n")
	w("   `pkg/bootstrap` `Tokens.Issue`. Once the operator has marked every\n")
	w("   instance Paused (so its cache holds them), one client per host\n")
	w("   authenticates as that host's bootstrap ServiceAccount\n")
	w("   (`system:serviceaccount:wmco-system:wmco-bootstrap-<x>`, with the\n")
	w("   token `Tokens.Issue` returned, as the kubelet's bootstrap kubeconfig\n")
	w("   holds it; `wmco:node-bootstrapper` lets it create CSRs) over a\n")
	w("   connection of its own opened beforehand (as each host has its own;\n")
	w("   the connections opened during the burst are counted and should be\n")
	w("   0), and all N create a kubelet client\n")
	w("   CSR (`system:node:<name>`, ECDSA) at the same moment. Latency is from\n")
	w("   the start of each create request until a watch opened before the\n")
	w("   burst shows the Approved condition; the create requests' own duration\n")
	w("   is given alongside. Percentiles are nearest-rank. Each size runs\n")
	w("   %d times (`--csr-runs`), each in a fresh control plane; the row is\n", max(1, c.csrRuns))
	w("   the median burst by p99, with every burst's p99 beside it. Only the\n")
	w("   first burst of each size is profiled and has its requests counted;\n")
	w("   the CPU times and waits below the table are the median burst's.\n")
	w("   The simulated kubelets live in the benchmark's process, whose\n")
	w("   garbage collector is paused from just before the burst until its\n")
	w("   CPU time is read: its heap is the whole benchmark's, not a kubelet's.\n")
	w("   Just before the burst the API server collects its garbage (its\n")
	w("   profiling endpoint, `/debug/pprof/heap?gc=1`), so that every burst\n")
	w("   starts from a collected heap: a burst of 200 allocates about 70 MB\n")
	w("   there, and whether that crossed the collector's goal during the\n")
	w("   burst was chance that moved its p99 by 150-250 ms. The collections\n")
	w("   during the burst are counted below the table.\n")
	if len(c.csrReference) > 0 {
		w("   For reference (`--csr-reference`), each size then runs as many\n")
		w("   bursts with no operator, approved by:\n")
		w("   - the floor: a process of the benchmark's that approves every\n")
		w("     pending CSR it sees, unchecked, as the operator's ServiceAccount\n")
		w("     (%d workers, protobuf, no client-side rate limit): one approval\n", floorWorkers)
		w("     write per CSR and nothing else, what this machine's control plane\n")
		w("     gives any approver;\n")
		w("   - `kube-controller-manager` (when asked for): Kubernetes' own\n")
		w("     approver (`certificatesigningrequest-approving-controller`), the\n")
		w("     bootstrap identities' group granted the `nodeclient` ClusterRole\n")
		w("     as kubeadm grants it to `system:bootstrappers`; one\n")
		w("     SubjectAccessReview and one approval per CSR, 5 workers, at\n")
		w("     kube-controller-manager's default client rate limit (20 requests\n")
		w("     per second).\n")
	}
	w("4. **Operator memory.** A fresh control plane (kube-controller-manager's\n")
	w("   node monitor grace period raised to 1 h, so that Nodes without\n")
	w("   kubelets are not all marked unreachable and rewritten meanwhile). The\n")
	w("   operator is started in the empty cluster and stopped; then the Nodes\n")
	w("   (realistic status: conditions, addresses, capacity, system info, 20\n")
	w("   images; the Windows ones labelled, annotated and tainted as the\n")
	w("   operator's own Nodes, `wmco.io/instance` included) and the Pods (bound\n")
	w("   to the Nodes round-robin through `spec.nodeName`, one container with\n")
	w("   probes and resources) are created by %d parallel clients, and the\n", c.workers)
	w("   operator is started again. Each time it settles at least %s and until\n", c.settleMin)
	w("   its VmHWM has not grown for 20 s (at most %s); VmHWM, VmRSS and its\n", c.settleMax)
	w("   parts RssFile (file-backed: the binary's pages) and RssAnon (anonymous:\n")
	w("   the Go runtime's) are read from `/proc/<pid>/status`, the Go heap's\n")
	w("   allocated bytes and collection goal from the operator's\n")
	w("   `go_memstats_heap_alloc_bytes` and `go_memstats_next_gc_bytes`. The\n")
	w("   object counts are the API server's. `--rss-compare` measures more\n")
	w("   operator builds or flags in the same clusters.\n")
	w("5. **Upgrades.** %d hosts join on a base payload (%d files of %d MiB);\n", c.upgradeHosts, payloadFiles(), c.fileSizeMiB)
	w("   then the operator is stopped and started with a payload that changes\n")
	w("   one file, as an operator upgrade ships a new payload: windows_exporter\n")
	w("   (applied in place: no drain), then the kubelet with maxUnavailable 1\n")
	w("   (one host at a time, as upstream WMCO), then the kubelet again with the\n")
	w("   default maxUnavailable. Time runs from the operator's start until every\n")
	w("   instance is Ready on the new payload; \"received per host\" is what the\n")
	w("   hosts' SSH servers received meanwhile (TCP payload), against the\n")
	w("   changed file's size; NotReady time is read from a watch of the Nodes;\n")
	w("   \"peak upgrading\" from a watch of the instances' `status.upgrade`.\n")
	w("6. **A good host among unreachable ones.** A fresh environment per run\n")
	w("   with one simulated host, at the default concurrency: its join alone\n")
	w("   (baseline); listed in the same ConfigMap write as %d dead addresses\n", c.deadHosts)
	w("   (together: half refuse connections, nothing listening; half accept and\n")
	w("   never answer); and listed after those were each tried once (later).\n")
	w("   The time runs from the ConfigMap write that lists the good host until\n")
	w("   its instance is Ready. The three cases run in rounds, %d times each,\n", max(1, c.unreachableRuns))
	w("   and each case's figure is its median run.\n\n")
	w("Every environment starts the operator only once its CRDs have been\n")
	w("Established for 2 s (`localcluster.AwaitCRDsSettled`): until then\n")
	w("kube-apiserver sleeps 2 s before each create of their objects, and a\n")
	w("clock started earlier would time the CRDs' age, not the operator.\n\n")

	w("## Notes\n\n")
	w("- The kubelet emulator (`test/kubeletemu`) reports its Node Ready at the\n")
	w("  first Lease renewal (every 2 s) after the CNI configuration appears,\n")
	w("  with a patch of the Node's status, and posts its status every %s.\n", c.statusEvery)
	w("  The \"late kubelet reports\" column counts hosts whose Ready report\n")
	w("  was refused and had to wait for the next one; it should stay 0.\n\n")
	w("## Reproduce\n\n")
	w("```sh\n")
	w("make bench    # = make setup-envtest operator; go run ./test/bench --operator bin/operator --out docs/benchmarks.md\n")
	w("go run ./test/bench --help    # every setting above is a flag\n")
	w("go run ./test/bench --operator bin/operator --phases join --hosts 1,10 --out /tmp/bench.md\n")
	w("```\n\n")
	w("Progress goes to stderr, the tables to stdout and to `--out`.\n")
	w("The simulated hosts keep their files in memory, in 1 MiB chunks; a full\n")
	w("chunk with the same bytes as another is held once for every file and\n")
	w("host (`test/winsim`), so N hosts receiving one payload hold it about\n")
	w("once, plus what each host writes differently.\n")
	return b.String()
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// upgradeTable is one row per upgrade of every host.
func (r *report) upgradeTable() string {
	t := &table{head: []string{"change", "maxUnavailable", "time to all upgraded", "peak upgrading", "received per host", "changed file", "received ÷ file", "Node NotReady (sum, longest)", "Nodes cordoned"}}
	for _, u := range r.upgrades {
		if u.err != "" {
			t.add(u.change, u.maxUnavailable, fmt.Sprintf("failed: %d/%d upgraded", u.upgraded, u.hosts), "", "", "", "", "", "")
			continue
		}
		t.add(u.change, u.maxUnavailable, fmtDur(u.duration), fmt.Sprint(u.peak), fmtBytesF(u.bytesPerHost), fmtBytes(u.fileSize),
			fmt.Sprintf("%.3f", u.bytesPerHost/float64(u.fileSize)), fmtDur(u.notReady)+", "+fmtDur(u.notReadyMax), fmt.Sprintf("%d/%d", u.drained, u.hosts))
	}
	return t.String()
}
