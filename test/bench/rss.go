package main

import (
	"context"
	"debug/elf"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/test/localcluster"
)

// rssResult is the operator's memory in an empty cluster and in a large
// one.
type rssResult struct {
	empty, loaded                  memStatus
	emptyGo, loadedGo              goMem
	linuxNodes, windowsNodes, pods int
	namespaces                     int
	create                         time.Duration
	settleEmpty, settleLoaded      time.Duration
	// join is the operator's peak during a join of --rss-join-hosts
	// hosts (a fresh environment, the first --concurrency); nil when
	// not run.
	join *joinResult
	// compare are the --rss-compare operators, measured in the same
	// clusters.
	compare []rssRun
	// mapped is what the operator binary maps from its file (its
	// loadable ELF segments' file sizes: text, read-only and initialised
	// data); 0 when unknown.
	mapped int64
}

// rssRun is one --rss-compare operator's memory in the empty and the
// loaded cluster.
type rssRun struct {
	name                      string
	empty, loaded             memStatus
	emptyGo, loadedGo         goMem
	settleEmpty, settleLoaded time.Duration
}

// rssVariant is an operator binary and its extra flags (--rss-compare).
type rssVariant struct {
	bin  string
	args []string
}

func (v rssVariant) String() string {
	return strings.Join(append([]string{filepath.Base(v.bin)}, v.args...), " ")
}

func runRSSPhase(ctx context.Context, c config, r *report, work string) error {
	// The Nodes have no kubelets: a long grace period keeps
	// kube-controller-manager from marking them all unreachable (and
	// rewriting them) while the operator is measured.
	p, err := startPlane(ctx, work, "rss", localcluster.Options{NodeMonitorGracePeriod: time.Hour})
	if err != nil {
		return err
	}
	defer p.stop()
	if r.kubernetes == "" {
		r.kubernetes = kubernetesVersion(p.clientset)
	}
	res := &rssResult{namespaces: c.namespaces}
	if res.mapped, err = mappedSize(c.operator); err != nil {
		logf("Memory: the operator binary's segments: %v", err)
	}

	logf("Memory: the operator in an empty cluster")
	if res.empty, res.emptyGo, res.settleEmpty, err = measureOperator(ctx, c, p, c.operator, c.operatorArgs, nil); err != nil {
		return err
	}
	logf("Memory: empty cluster: VmHWM %s, VmRSS %s (%s)", fmtBytes(res.empty.HWM), fmtBytes(res.empty.RSS), memParts(res.empty, res.emptyGo))
	res.compare = make([]rssRun, len(c.rssCompare))
	for i, v := range c.rssCompare {
		run := &res.compare[i]
		run.name = v.String()
		if run.empty, run.emptyGo, run.settleEmpty, err = measureOperator(ctx, c, p, v.bin, v.args, nil); err != nil {
			return fmt.Errorf("%s: %w", run.name, err)
		}
		logf("Memory: empty cluster, %s: VmHWM %s, VmRSS %s (%s)", run.name, fmtBytes(run.empty.HWM), fmtBytes(run.empty.RSS), memParts(run.empty, run.emptyGo))
	}

	cfg := *p.cluster.Config
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		return err
	}
	t0 := time.Now()
	logf("Memory: creating %d Linux Nodes, %d Windows Nodes, %d Pods in %d namespaces with %d workers", c.linuxNodes, c.windowsNodes, c.pods, c.namespaces, c.workers)
	if err := createLoad(ctx, c, cs); err != nil {
		return err
	}
	res.create = time.Since(t0)
	if res.linuxNodes, res.windowsNodes, res.pods, err = countLoad(ctx, cs); err != nil {
		return err
	}
	logf("Memory: the API server holds %d Linux Nodes, %d Windows Nodes and %d Pods (created in %s)", res.linuxNodes, res.windowsNodes, res.pods, res.create.Round(time.Second))

	logf("Memory: the operator in the loaded cluster")
	profArgs, profBase, err := pprofArgs(c)
	if err != nil {
		return err
	}
	loadedArgs := append(slices.Clone(c.operatorArgs), profArgs...)
	settled := func(ctx context.Context) {
		if profBase == "" {
			return
		}
		// The heap as it is settled (no GC forced), where the loaded
		// figure's Go heap goes.
		pr := &profiler{c: c, r: r, get: httpSource(profBase), phase: "memory, loaded cluster, settled"}
		s := pr.fetch(ctx, "heap", "/debug/pprof/heap")
		if s.err != nil {
			logf("Memory: heap profile: %v", s.err)
		}
		r.profiles = append(r.profiles, s)
	}
	if res.loaded, res.loadedGo, res.settleLoaded, err = measureOperator(ctx, c, p, c.operator, loadedArgs, settled); err != nil {
		return err
	}
	logf("Memory: loaded cluster: VmHWM %s, VmRSS %s (%s)", fmtBytes(res.loaded.HWM), fmtBytes(res.loaded.RSS), memParts(res.loaded, res.loadedGo))
	for i, v := range c.rssCompare {
		run := &res.compare[i]
		if run.loaded, run.loadedGo, run.settleLoaded, err = measureOperator(ctx, c, p, v.bin, v.args, nil); err != nil {
			return fmt.Errorf("%s: %w", run.name, err)
		}
		logf("Memory: loaded cluster, %s: VmHWM %s, VmRSS %s (%s)", run.name, fmtBytes(run.loaded.HWM), fmtBytes(run.loaded.RSS), memParts(run.loaded, run.loadedGo))
	}
	r.rss = res
	if c.rssJoinHosts > 0 {
		p.stop()
		logf("Memory: the operator's peak during a join of %d hosts", c.rssJoinHosts)
		// The memory phase's flags apply to its join too.
		cj := c
		cj.joinArgs = c.operatorArgs
		jr, _, err := runJoin(ctx, cj, r, c.rssJoinHosts, c.concurrency[0], false)
		res.join = jr
		if err != nil {
			return fmt.Errorf("join of %d hosts: %w", c.rssJoinHosts, err)
		}
		logf("Memory: join of %d hosts: operator VmHWM %s", c.rssJoinHosts, fmtBytes(jr.operatorHWM))
	}
	return nil
}

// measureOperator starts the operator, lets it settle (at least
// settleMin, then until VmHWM has not grown for 20s, at most settleMax),
// reads its memory (and the Go runtime's view of it), calls settled (when
// not nil) and stops it.
func measureOperator(ctx context.Context, c config, p *plane, bin string, args []string, settled func(context.Context)) (memStatus, goMem, time.Duration, error) {
	op, err := startOperator(ctx, bin, p.cluster, p.dir, p.payloadDir, args...)
	if err != nil {
		return memStatus{}, goMem{}, 0, err
	}
	defer op.Stop()
	t0 := time.Now()
	var last memStatus
	lastGrow, lastLog := t0, t0
	for {
		m, err := readMemStatus(op.PID())
		if err != nil {
			return memStatus{}, goMem{}, 0, fmt.Errorf("operator memory: %w", err)
		}
		if m.HWM > last.HWM {
			lastGrow = time.Now()
		}
		last = m
		if time.Since(lastLog) >= 10*time.Second {
			logf("  operator VmHWM %s, VmRSS %s after %s", fmtBytes(m.HWM), fmtBytes(m.RSS), time.Since(t0).Round(time.Second))
			lastLog = time.Now()
		}
		elapsed := time.Since(t0)
		if (elapsed >= c.settleMin && time.Since(lastGrow) >= 20*time.Second) || elapsed >= c.settleMax {
			gm, err := readGoMem(ctx, op.MetricsURL)
			if err != nil {
				logf("  the operator's Go memory statistics: %v", err)
			}
			if settled != nil {
				settled(ctx)
			}
			return m, gm, elapsed, nil
		}
		select {
		case <-ctx.Done():
			return memStatus{}, goMem{}, 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func linuxNodeName(i int) string   { return fmt.Sprintf("linux-%05d", i) }
func windowsNodeName(i int) string { return fmt.Sprintf("win-bench-%04d", i) }
func podNamespace(i int) string    { return fmt.Sprintf("bench-pods-%02d", i) }

func createLoad(ctx context.Context, c config, cs *kubernetes.Clientset) error {
	nodes := c.linuxNodes + c.windowsNodes
	err := parallel(ctx, "nodes", c.workers, nodes, 500, func(ctx context.Context, i int) error {
		var n *corev1.Node
		if i < c.linuxNodes {
			n = benchNode(linuxNodeName(i), i, false)
		} else {
			n = benchNode(windowsNodeName(i-c.linuxNodes), i, true)
		}
		_, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	for i := range c.namespaces {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: podNamespace(i)}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	logf("  waiting for the default ServiceAccount of %d namespaces", c.namespaces)
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < c.namespaces; {
		_, err := cs.CoreV1().ServiceAccounts(podNamespace(i)).Get(ctx, "default", metav1.GetOptions{})
		switch {
		case err == nil:
			i++
			continue
		case !apierrors.IsNotFound(err):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("no default ServiceAccount in %s after 2m", podNamespace(i))
		}
		time.Sleep(200 * time.Millisecond)
	}
	return parallel(ctx, "pods", c.workers, c.pods, 2000, func(ctx context.Context, i int) error {
		k := i % nodes
		node, windows := "", k >= c.linuxNodes
		if windows {
			node = windowsNodeName(k - c.linuxNodes)
		} else {
			node = linuxNodeName(k)
		}
		pod := benchPod(i, node, windows)
		pod.Namespace = podNamespace(i % c.namespaces)
		_, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
}

// countLoad asks the API server how many objects there are (a list of one
// item and the count of the remaining ones).
func countLoad(ctx context.Context, cs *kubernetes.Clientset) (linux, windows, pods int, err error) {
	count := func(list func(metav1.ListOptions) (metav1.ListInterface, int, error), selector string) (int, error) {
		l, items, err := list(metav1.ListOptions{Limit: 1, LabelSelector: selector})
		if err != nil {
			return 0, err
		}
		if rem := l.GetRemainingItemCount(); rem != nil {
			return items + int(*rem), nil
		}
		if l.GetContinue() != "" {
			return 0, fmt.Errorf("the API server did not count the remaining items")
		}
		return items, nil
	}
	nodes := func(o metav1.ListOptions) (metav1.ListInterface, int, error) {
		l, err := cs.CoreV1().Nodes().List(ctx, o)
		if err != nil {
			return nil, 0, err
		}
		return l, len(l.Items), nil
	}
	// remainingItemCount is only given without a label selector: count
	// all Nodes, then the Windows ones page by page.
	all, err := count(nodes, "")
	if err != nil {
		return 0, 0, 0, err
	}
	opts := metav1.ListOptions{LabelSelector: corev1.LabelOSStable + "=windows", Limit: 500}
	for {
		l, err := cs.CoreV1().Nodes().List(ctx, opts)
		if err != nil {
			return 0, 0, 0, err
		}
		windows += len(l.Items)
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	pods, err = count(func(o metav1.ListOptions) (metav1.ListInterface, int, error) {
		l, err := cs.CoreV1().Pods("").List(ctx, o)
		if err != nil {
			return nil, 0, err
		}
		return l, len(l.Items), nil
	}, "")
	return all - windows, windows, pods, err
}

// benchNode is a Node as a kubelet registers it, with a realistic status
// (conditions, addresses, capacity, system info, 20 images). Windows
// Nodes carry the labels, annotation and taint the operator gives the
// Nodes it made.
func benchNode(name string, i int, windows bool) *corev1.Node {
	osName, build := "linux", ""
	labels := map[string]string{
		corev1.LabelHostname:               name,
		corev1.LabelArchStable:             "amd64",
		"beta.kubernetes.io/arch":          "amd64",
		"node.kubernetes.io/instance-type": "m5.xlarge",
		corev1.LabelTopologyZone:           "zone-" + strconv.Itoa(i%3),
		corev1.LabelTopologyRegion:         "region-1",
		wmcov1.LabelWorkerRole:             "",
	}
	var annotations map[string]string
	var taints []corev1.Taint
	kernel, osImage, runtime := "6.8.0-1019-aws", "Ubuntu 24.04.1 LTS", "containerd://1.7.22"
	if windows {
		osName, build = "windows", "10.0.20348"
		labels[corev1.LabelWindowsBuild] = build
		labels[wmcov1.LabelInstance] = name
		labels[wmcov1.LabelSource] = "configmap"
		labels[wmcov1.LabelOSID] = "Windows"
		annotations = map[string]string{wmcov1.AnnotationPayloadVersion: "v0.0.0-test"}
		taints = []corev1.Taint{{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}}
		kernel, osImage, runtime = "10.0.20348.2700", "Windows Server 2022 Datacenter", "containerd://1.7.22"
	}
	labels[corev1.LabelOSStable] = osName
	labels["beta.kubernetes.io/os"] = osName
	ip := fmt.Sprintf("10.%d.%d.%d", 10+i/65536, (i/256)%256, i%256)
	now := metav1.Now()
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for j := range conds {
		conds[j].LastHeartbeatTime, conds[j].LastTransitionTime = now, now
	}
	var images []corev1.ContainerImage
	for j := range 20 {
		repo := fmt.Sprintf("registry.example.com/platform/component-%02d", j)
		images = append(images, corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("%s@sha256:%064x", repo, j*7919+1), fmt.Sprintf("%s:v1.%d.%d", repo, j, i%10)},
			SizeBytes: int64(20+j*13) << 20,
		})
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("16221756Ki"),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("101430960Ki"),
		"hugepages-2Mi":                 resource.MustParse("0"),
	}
	alloc := capacity.DeepCopy()
	alloc[corev1.ResourceCPU] = resource.MustParse("3920m")
	alloc[corev1.ResourceMemory] = resource.MustParse("15504956Ki")
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec:       corev1.NodeSpec{Taints: taints, ProviderID: "aws:///zone/i-" + fmt.Sprintf("%017x", i)},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: alloc, Conditions: conds, Images: images,
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ip},
				{Type: corev1.NodeHostName, Address: name},
				{Type: corev1.NodeInternalDNS, Address: name + ".region-1.compute.internal"},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: fmt.Sprintf("%032x", i), SystemUUID: fmt.Sprintf("ec2%05x-0000-0000-0000-%012x", i, i), BootID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i),
				KernelVersion: kernel, OSImage: osImage, ContainerRuntimeVersion: runtime,
				KubeletVersion: "v1.37.2", OperatingSystem: osName, Architecture: "amd64",
			},
		},
	}
}

// benchPod is a Deployment's Pod bound to the node (no scheduler runs).
func benchPod(i int, node string, windows bool) *corev1.Pod {
	app := fmt.Sprintf("app-%03d", i%200)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s-7d9f8b6c5d-%05d", app, i),
			Labels:      map[string]string{"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "bench", "pod-template-hash": "7d9f8b6c5d"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
		},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example.com/team/" + app + ":1.4.2",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env: []corev1.EnvVar{
					{Name: "LOG_LEVEL", Value: "info"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 10,
				},
			}},
		},
	}
	if windows {
		pod.Spec.NodeSelector = map[string]string{corev1.LabelOSStable: "windows"}
		pod.Spec.Tolerations = []corev1.Toleration{{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}}
		pod.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	}
	return pod
}

// memParts says where a settled operator's resident memory is: file-backed
// (the binary's mapped pages) and anonymous, and of the latter what the Go
// runtime holds, its heap and the heap's collection goal.
func memParts(m memStatus, g goMem) string {
	out := fmt.Sprintf("file-backed %s, anonymous %s", fmtBytes(m.File), fmtBytes(m.Anon))
	if g.HeapAlloc > 0 {
		out += fmt.Sprintf("; Go heap %s allocated in %s of spans, GC goal %s, stacks %s, held from the OS %s",
			fmtBytes(g.HeapAlloc), fmtBytes(g.HeapInuse), fmtBytes(g.NextGC), fmtBytes(g.Stacks), fmtBytes(g.Retained))
	}
	return out
}

// mappedSize is what an ELF executable maps from its file: the file sizes
// of its loadable segments.
func mappedSize(path string) (int64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close() //nolint:errcheck // read-only: Close cannot lose data
	var n int64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			n += int64(p.Filesz) //nolint:gosec // segment sizes fit in int64
		}
	}
	return n, nil
}

// whereMemoryGoes explains the loaded cluster's figures: what of the
// operator's resident memory is its binary's mapped file and what the Go
// runtime holds.
func (m *rssResult) whereMemoryGoes() string {
	l, g := m.loaded, m.loadedGo
	if l.RSS == 0 || l.Anon+l.File == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Where the memory goes, in the loaded cluster: %s of the operator's %s\n", fmtBytes(l.File), fmtBytes(l.RSS))
	if m.mapped > 0 {
		fmt.Fprintf(&b, "resident is file-backed, pages of the operator binary, which maps %s from its\n", fmtBytes(m.mapped))
		b.WriteString("file (code, read-only and initialised data; a kernel that keeps files in\n")
		b.WriteString("large folios maps a whole folio at a time, so most of it is resident\n")
		b.WriteString("once the code runs: a smaller binary is smaller resident memory).\n")
	} else {
		b.WriteString("resident is file-backed, pages of the operator binary.\n")
	}
	fmt.Fprintf(&b, "The other %s is anonymous: the Go runtime's", fmtBytes(l.Anon))
	if g.HeapAlloc > 0 {
		fmt.Fprintf(&b, " heap (%s allocated, in %s of spans;\n", fmtBytes(g.HeapAlloc), fmtBytes(g.HeapInuse))
		fmt.Fprintf(&b, "the collector lets it grow to %s, by GOGC (the operator's default 50: half) over what\n", fmtBytes(g.NextGC))
		fmt.Fprintf(&b, "was live at the last collection, or less under a memory limit), %s of goroutine stacks, and its own\n", fmtBytes(g.Stacks))
		b.WriteString("metadata and freed pages not yet returned to the OS.\n")
	} else {
		b.WriteString(" heap, stacks and metadata.\n")
	}
	return b.String()
}
