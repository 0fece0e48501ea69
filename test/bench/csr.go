package main

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/bootstrap"
	"github.com/openwmco/wmco/pkg/csr"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
)

// csrResult is the approval burst.
type csrResult struct {
	n int
	// approver approved the burst's CSRs: approverOperator, or one of
	// --csr-reference.
	approver                  string
	approved, denied, pending int
	// latency from the start of each CSR's create request until the
	// Approved condition was seen on a watch.
	p50, p99, max time.Duration
	// The latency in two parts: from the start of the create request
	// until the CSR was first seen on the watch (the API server), and
	// from then until it was seen approved (the approver).
	seenP50, seenP99, decideP50, decideP99 time.Duration
	// create is how long the create requests themselves took.
	createP50, createMax time.Duration
	// all is from the first create until the last approval.
	all time.Duration
	// cpu is the CPU time of the control plane's processes and the
	// operator from the first create until the last approval.
	cpu string
	// cpuSum is that CPU time in all, in seconds, over cpuWall; cpuShare
	// is its share of what the machine's cores could give meanwhile.
	cpuSum, cpuShare float64
	cpuWall          time.Duration
	// requests are the API requests received from the first create until
	// a few seconds after the last approval (--count-requests).
	requests requestCounts
	// runP99s is the p99 of each burst of this size, in the order they
	// ran (--csr-runs); this result is the median one's.
	runP99s []time.Duration
	// closedWatches is how many watches of CSRs the API server closed
	// during the burst because their watcher fell behind
	// (apiserver_terminated_watchers_total); -1 when it could not be read.
	closedWatches int
	// apiServerGCs is how many garbage collections the API server ran
	// during the burst (go_gc_duration_seconds_count); -1 when it could
	// not be read.
	apiServerGCs int
	// queued is what requests waited in the API server's priority and
	// fairness queues during the burst, by flow.
	queued []apfQueued
	// dialed is how many connections the simulated kubelets opened
	// during the burst: 0 when each create went out on its host's
	// connection opened beforehand.
	dialed int64
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// csrRequest is one host's kubelet client CSR, created as the host's
// bootstrap identity.
type csrRequest struct {
	instance string
	as       *kubernetes.Clientset
	obj      *certificatesv1.CertificateSigningRequest
	start    time.Time
	created  time.Duration
	err      error
}

// runCSRPhase runs --csr-runs bursts per --csrs value, each in a fresh
// control plane with a fresh operator, and keeps the median burst by p99
// (csrMedian): a single burst's p99 varies by a fifth from run to run on
// a 2-core machine. Only the first burst of each size is profiled and
// has its requests counted. Each size then runs as many bursts approved
// by each of --csr-reference instead of the operator.
func runCSRPhase(ctx context.Context, c config, r *report, work string) error {
	for _, n := range c.csrs {
		for _, approver := range append([]string{approverOperator}, c.csrReference...) {
			var runs []*csrResult
			for i := range max(1, c.csrRuns) {
				res, err := runCSRBurst(ctx, c, r, work, n, i, approver)
				if err != nil {
					if res != nil {
						r.csrs = append(r.csrs, res)
					}
					return fmt.Errorf("burst of %d (approver %s, run %d): %w", n, approver, i+1, err)
				}
				runs = append(runs, res)
			}
			r.csrs = append(r.csrs, csrMedian(runs))
		}
	}
	return nil
}

// Who approves a CSR burst's CSRs: the operator, or for reference
// (--csr-reference) the floor approver (csrfloor.go) or Kubernetes' own
// approver in kube-controller-manager, with no operator.
const (
	approverOperator = "operator"
	approverFloor    = "floor"
	approverKCM      = "kube-controller-manager"
)

// approverNames describes each approver in the report.
var approverNames = map[string]string{
	approverOperator: "the operator",
	approverFloor:    "the floor (every CSR approved unchecked)",
	approverKCM:      "kube-controller-manager's approver",
}

// approverName describes the approver of the burst.
func (c *csrResult) approverName() string { return approverNames[c.approver] }

// nodeClientRole is Kubernetes' default ClusterRole that lets
// kube-controller-manager's CSR approver approve a requester's kubelet
// client CSRs (kubeadm binds it to system:bootstrappers).
const nodeClientRole = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"

// allowNodeClient binds nodeClientRole to the ServiceAccounts of
// namespace, the bootstrap identities' group: kube-controller-manager's
// approver then approves their kubelet client CSRs after one
// SubjectAccessReview each.
func allowNodeClient(ctx context.Context, c client.Client, namespace string) error {
	b := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-nodeclient"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: nodeClientRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:serviceaccounts:" + namespace}},
	}
	return c.Create(ctx, b)
}

// csrMedian is the median of the runs of one burst size by p99 (the
// slower middle one of an even count), with every run's p99 in the
// order they ran and the first run's request counts (only it is
// counted); the other figures are the median run's.
func csrMedian(runs []*csrResult) *csrResult {
	var p99s []time.Duration
	for _, r := range runs {
		p99s = append(p99s, r.p99)
	}
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b *csrResult) int { return cmp.Compare(a.p99, b.p99) })
	med := *sorted[len(sorted)/2]
	med.runP99s = p99s
	if med.requests == nil {
		med.requests = runs[0].requests
	}
	return &med
}

// runCSRBurst runs the burst of n CSRs; run counts the bursts of that
// size from 0, and only run 0 is profiled and has its requests counted.
// A reference burst runs no operator: approver approves the CSRs.
func runCSRBurst(ctx context.Context, c config, r *report, work string, n, run int, approver string) (*csrResult, error) {
	var (
		opts     localcluster.Options
		auditLog string
	)
	name := fmt.Sprintf("csr-%d-run%d", n, run+1)
	if approver != approverOperator {
		name = fmt.Sprintf("csr-%d-%s-run%d", n, approver, run+1)
	}
	if approver == approverKCM {
		opts.Controllers = append(slices.Clone(localcluster.DefaultControllers), "certificatesigningrequest-approving-controller")
	}
	if c.countRequests && run == 0 {
		args, log, err := auditArgs(filepath.Join(work, name+"-audit"))
		if err != nil {
			return nil, err
		}
		opts.ExtraAPIServerArgs, auditLog = args, log
	}
	p, err := startPlane(ctx, work, name, opts)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if r.kubernetes == "" {
		r.kubernetes = kubernetesVersion(p.clientset)
	}
	profiled := c
	if run != 0 || approver != approverOperator {
		profiled.cpuProfile, profiled.memProfile = false, false
	}
	// As deployed: the operator's ServiceAccount with the generated RBAC,
	// so that its requests are authenticated, authorized and queued by
	// priority and fairness as in a cluster (an admin certificate would
	// skip the queues and cost a certificate check per request). The
	// floor approver runs as the same ServiceAccount.
	kubeconfig := filepath.Join(p.dir, "operator.kubeconfig")
	if approver != approverKCM {
		if err := localenv.OperatorServiceAccount(ctx, p.cluster, p.client, localenv.Namespace, operatorServiceAccount, kubeconfig); err != nil {
			return nil, err
		}
	}
	var (
		op        *localenv.Operator
		floor     *csrFloor
		pprofBase string
	)
	switch approver {
	case approverKCM:
		logf("CSR: no operator; kube-controller-manager's approver approves the kubelet client CSRs of ServiceAccounts of %s (ClusterRole %s)", localenv.Namespace, nodeClientRole)
		if err := allowNodeClient(ctx, p.client, localenv.Namespace); err != nil {
			return nil, err
		}
	case approverFloor:
		// Started just before the burst, once the CSR informer can list.
		logf("CSR: no operator; the floor approver (every CSR approved unchecked, %d workers) runs as ServiceAccount %s/%s", floorWorkers, localenv.Namespace, operatorServiceAccount)
	default:
		var args []string
		if args, pprofBase, err = pprofArgs(profiled); err != nil {
			return nil, err
		}
		logf("CSR: starting the operator as ServiceAccount %s/%s", localenv.Namespace, operatorServiceAccount)
		if op, err = startOperatorAs(ctx, c.operator, kubeconfig, p.dir, p.payloadDir, append(args, c.operatorArgs...)...); err != nil {
			return nil, err
		}
		defer op.Stop()
	}

	tokens := &bootstrap.Tokens{Client: p.client, Namespace: localenv.Namespace}
	if err := tokens.EnsureRBAC(ctx); err != nil {
		return nil, err
	}
	ports, err := proc.FreePorts(1) // closed again: nothing listens there
	if err != nil {
		return nil, err
	}
	reqs := make([]*csrRequest, n)
	var dials atomic.Int64
	logf("CSR: creating %d paused WindowsInstances with node names, host facts and bootstrap tokens", n)
	err = parallel(ctx, "instances", 8, n, 50, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("csr-bench-%03d", i)
		wi := &wmcov1.WindowsInstance{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: wmcov1.WindowsInstanceSpec{
				Address: "127.0.0.1", Port: int32(ports[0]), Username: "Administrator", Paused: true,
			},
		}
		if err := p.client.Create(ctx, wi); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		patch := client.MergeFrom(wi.DeepCopy())
		wi.Status.NodeName = name
		wi.Status.Host = wmcov1.HostFacts{
			Hostname: strings.ToUpper(name), OSBuild: 20348,
			Addresses: []string{fmt.Sprintf("192.0.2.%d", i%250+1)},
		}
		if err := p.client.Status().Patch(ctx, wi, patch); err != nil {
			return err
		}
		token, err := tokens.Issue(ctx, wi)
		if err != nil {
			return err
		}
		if token == "" {
			return fmt.Errorf("no bootstrap token for %s", name)
		}
		users, err := tokens.Usernames(ctx, wi)
		if err != nil || len(users) != 1 {
			return fmt.Errorf("bootstrap identity of %s: %v %w", name, users, err)
		}
		// As a kubelet talks to the API server: the bootstrap token of
		// its kubeconfig, and its --kube-api-content-type.
		cfg := &rest.Config{Host: p.cluster.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: p.cluster.CACert}}
		cfg.ContentType = runtime.ContentTypeProtobuf
		as, err := kubeletClient(cfg, &dials)
		if err != nil {
			return err
		}
		request, err := nodeCSR(name)
		if err != nil {
			return err
		}
		reqs[i] = &csrRequest{instance: name, as: as, obj: &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certificatesv1.CertificateSigningRequestSpec{
				Request: request, SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
				Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
			},
		}}
		return nil
	})
	if err != nil {
		return nil, err
	}

	if op != nil {
		logf("CSR: waiting until the operator has seen every instance (phase Paused)")
		if err := waitPaused(ctx, p.client, n); err != nil {
			return nil, err
		}
	}
	logf("CSR: opening each host's connection and checking it may create CSRs (dry run)")
	err = parallel(ctx, "clients", 8, n, 0, func(ctx context.Context, i int) error {
		// Warms the connection, so the burst measures the approver and
		// not 200 TLS handshakes.
		if _, err := reqs[i].as.Discovery().ServerVersion(); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := reqs[0].as.CertificatesV1().CertificateSigningRequests().Create(ctx, reqs[0].obj.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("dry-run CSR as %s: %w", reqs[0].instance, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Watch before the burst; record when each CSR is first seen and
	// first seen decided (csrobserver.go).
	obs, err := startCSRObserver(ctx, p.cluster.KubeconfigPath, n)
	if err != nil {
		return nil, err
	}
	defer func() { _ = obs.stop() }()
	if approver == approverFloor {
		if floor, err = startCSRFloor(ctx, kubeconfig); err != nil {
			return nil, err
		}
		defer func() { _ = floor.stop() }()
	}

	logf("CSR: creating %d kubelet client CSRs at once, each as its host's bootstrap identity", n)
	fire := make(chan struct{})
	var wg sync.WaitGroup
	for _, q := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-fire
			q.start = time.Now()
			_, q.err = q.as.CertificatesV1().CertificateSigningRequests().Create(ctx, q.obj, metav1.CreateOptions{})
			q.created = time.Since(q.start)
		}()
	}
	pids := p.cluster.PIDs()
	opPID := 0
	if op != nil {
		opPID = op.PID()
		pids["operator"] = opPID
	}
	if floor != nil {
		pids["floor approver"] = floor.PID()
	}
	prof := startProfile(ctx, profiled, r, pprofBase, fmt.Sprintf("CSR burst of %d", n), opPID)
	apiProf := startAPIServerProfile(ctx, profiled, r, p.clientset, fmt.Sprintf("CSR burst of %d", n))
	// The simulated kubelets and the observer share the machine too.
	pids["benchmark (kubelets)"] = os.Getpid()
	pids["benchmark (observer)"] = obs.cmd.Process.Pid
	// The benchmark's heap (every host's client, the set-up's garbage)
	// is not a kubelet's: its garbage collector waits until the burst is
	// measured, so that the simulated kubelets cost the machine what
	// their requests cost (pauseGC).
	resumeGC := pauseGC()
	defer resumeGC()
	collectAPIServerGarbage(ctx, p.clientset)
	cpu0, cpuStart := takeCPU(pids), time.Now()
	metrics0, metricsOK := readAPIServerMetrics(ctx, p.clientset)
	dials0 := dials.Load()
	t0 := time.Now()
	close(fire)
	wg.Wait()
	dialed := dials.Load() - dials0
	var createErrs []error
	for _, q := range reqs {
		if q.err != nil {
			createErrs = append(createErrs, fmt.Errorf("%s: %w", q.instance, q.err))
		}
	}
	if len(createErrs) > 0 {
		return nil, fmt.Errorf("%d CSRs not created: %w", len(createErrs), errors.Join(createErrs...))
	}
	logf("CSR: all %d created in %s (%d connections opened for them); waiting for the approver", n, time.Since(t0).Round(time.Millisecond), dialed)
	select {
	case <-obs.allDone:
	case <-obs.ended:
		return nil, fmt.Errorf("the CSR observer ended during the burst: %w", obs.failure())
	case <-time.After(3 * time.Minute):
		logf("CSR: not every CSR decided within 3m")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cpu1, wall := takeCPU(pids), time.Since(cpuStart)
	resumeGC()
	cpu := cpu1.since(cpu0)
	cpuSum, cpuShare := cpu1.busy(cpu0, wall, goruntime.NumCPU())
	logf("CSR: CPU time during the burst: %s; %.2fs in all in %s on %d cores (%.0f%% of the machine)", cpu, cpuSum, wall.Round(time.Millisecond), goruntime.NumCPU(), 100*cpuShare)
	closedWatches, apiServerGCs := -1, -1
	var queued []apfQueued
	if metrics1, ok := readAPIServerMetrics(ctx, p.clientset); ok && metricsOK {
		closedWatches = metrics1.closedCSRWatches - metrics0.closedCSRWatches
		apiServerGCs = metrics1.gcs - metrics0.gcs
		logf("CSR: watches of CSRs the API server closed during the burst for falling behind: %d (the benchmark's own watch resumed %d times)", closedWatches, obs.resumed())
		logf("CSR: garbage collections of the API server during the burst: %d", apiServerGCs)
		queued = metrics1.queuedSince(metrics0)
		for _, q := range queued {
			logf("CSR: waited in the API server's priority and fairness queues: %s", q)
		}
	}
	prof.finish(ctx)
	apiProf.finish(ctx)
	var requests requestCounts
	if auditLog != "" {
		// Events and certificates follow the approvals asynchronously.
		time.Sleep(3 * time.Second)
		if requests, err = countRequests(auditLog, t0, time.Now()); err != nil {
			return nil, err
		}
		logf("CSR: API requests per CSR:\n%s", requests.per(n, "CSR"))
	}

	obs.mu.Lock()
	defer obs.mu.Unlock()
	approved, denied, seen := obs.approved, obs.denied, obs.seen
	res := csrResult{n: n, approver: approver, approved: len(approved), denied: len(denied), cpu: cpu, requests: requests, closedWatches: closedWatches, apiServerGCs: apiServerGCs, queued: queued, dialed: dialed,
		cpuSum: cpuSum, cpuShare: cpuShare, cpuWall: wall}
	res.pending = n - res.approved - res.denied
	var lat, create, visible, decide []time.Duration
	var last time.Time
	for _, q := range reqs {
		create = append(create, q.created)
		if at, ok := approved[q.instance]; ok {
			lat = append(lat, max(0, at.Sub(q.start)))
			if s, ok := seen[q.instance]; ok {
				visible = append(visible, max(0, s.Sub(q.start)))
				decide = append(decide, max(0, at.Sub(s)))
			}
			if at.After(last) {
				last = at
			}
		}
	}
	slices.Sort(lat)
	slices.Sort(create)
	slices.Sort(visible)
	slices.Sort(decide)
	res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
	res.seenP50, res.seenP99 = percentile(visible, 50), percentile(visible, 99)
	res.decideP50, res.decideP99 = percentile(decide, 50), percentile(decide, 99)
	if len(lat) > 0 {
		res.max = lat[len(lat)-1]
	}
	res.createP50, res.createMax = percentile(create, 50), create[len(create)-1]
	if !last.IsZero() {
		res.all = last.Sub(t0)
	}
	logf("CSR: %d approved, %d denied, %d pending; latency p50 %s, p99 %s, max %s", res.approved, res.denied, res.pending,
		res.p50.Round(time.Millisecond), res.p99.Round(time.Millisecond), res.max.Round(time.Millisecond))
	logf("CSR: create until seen on a watch p50 %s, p99 %s; seen until seen approved p50 %s, p99 %s",
		res.seenP50.Round(time.Millisecond), res.seenP99.Round(time.Millisecond), res.decideP50.Round(time.Millisecond), res.decideP99.Round(time.Millisecond))
	if res.approved != n {
		return &res, fmt.Errorf("%d of %d CSRs approved", res.approved, n)
	}
	return &res, nil
}

// collectAPIServerGarbage has the API server run a garbage collection
// (its profiling endpoint's heap profile with gc=1), so that each burst
// starts from a collected heap. A burst of 200 CSRs allocates about 70 MB
// in the API server; whether that crossed its collector's goal during
// the burst was chance, and a collection then cost it as much CPU time
// again as the burst's requests (0.7-0.9 s against 0.4 s) and the burst's
// p99 150-250 ms. The report counts the collections during each burst.
func collectAPIServerGarbage(ctx context.Context, cs kubernetes.Interface) {
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/debug/pprof/heap").Param("gc", "1").DoRaw(ctx); err != nil {
		logf("CSR: have the API server collect its garbage before the burst: %v", err)
	}
}

// pauseGC collects the benchmark's garbage and stops its collector until
// the returned function is called (again harmless). A burst of 1,000
// CSRs allocates a few tens of MiB in the benchmark, which the machine has.
func pauseGC() (resume func()) {
	goruntime.GC()
	percent := debug.SetGCPercent(-1)
	var once sync.Once
	return func() { once.Do(func() { debug.SetGCPercent(percent) }) }
}

// kubeletClient is the client of one simulated kubelet: a transport of
// its own, as each host has its own connection to the API server.
// client-go would otherwise share one transport among all clients of
// the same TLS settings, and a burst of N creates on one HTTP/2
// connection overflows its stream limit, so that the burst would open
// connections (a TLS handshake each on the API server) mid-way. Each
// connection dialed is counted in dials.
func kubeletClient(cfg *rest.Config, dials *atomic.Int64) (*kubernetes.Clientset, error) {
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr := utilnet.SetTransportDefaults(&http.Transport{
		TLSClientConfig: tlsCfg,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	})
	rt, err := rest.HTTPWrappersForConfig(cfg, tr)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfigAndClient(cfg, &http.Client{Transport: rt})
}

// waitPaused waits until the operator has written phase Paused on n
// instances, so its cache holds them all.
func waitPaused(ctx context.Context, c client.Client, n int) error {
	bound := max(2*time.Minute, time.Duration(n)*200*time.Millisecond)
	deadline := time.Now().Add(bound)
	for {
		var list wmcov1.WindowsInstanceList
		if err := c.List(ctx, &list); err != nil {
			return err
		}
		paused := 0
		for _, wi := range list.Items {
			if wi.Status.Phase == wmcov1.PhasePaused && wi.Status.NodeName != "" {
				paused++
			}
		}
		if paused >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d instances Paused with a node name after %s", paused, n, bound)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// nodeCSR is a kubelet's client certificate request for the node, with an
// ECDSA key as the kubelet makes it.
func nodeCSR(node string) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: csr.NodeUserPrefix + node, Organization: []string{csr.NodesGroup}},
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// apiServerMetrics are the figures of the API server's /metrics the CSR
// burst reports, read before and after it.
type apiServerMetrics struct {
	// closedCSRWatches is how many CSR watchers the API server has closed
	// for falling behind (apiserver_terminated_watchers_total for
	// certificatesigningrequests). The counter appears with the first such
	// closure: absent is 0.
	closedCSRWatches int
	// gcs is how many garbage collections the API server has run
	// (go_gc_duration_seconds_count).
	gcs int
	// queued is the time requests waited in the API priority and fairness
	// queues, by priority level and flow schema
	// (apiserver_flowcontrol_request_wait_duration_seconds).
	queued map[apfFlow]apfWait
}

// apfFlow is a priority level and flow schema of API priority and fairness.
type apfFlow struct{ priorityLevel, flowSchema string }

// apfWait is how many requests waited and how long in all, in seconds.
type apfWait struct {
	count int
	sum   float64
}

// readAPIServerMetrics scrapes the API server; ok is false when it could
// not be read.
func readAPIServerMetrics(ctx context.Context, cs kubernetes.Interface) (m apiServerMetrics, ok bool) {
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		logf("CSR: read the API server's metrics: %v", err)
		return m, false
	}
	return parseAPIServerMetrics(string(raw)), true
}

func parseAPIServerMetrics(raw string) apiServerMetrics {
	m := apiServerMetrics{queued: map[apfFlow]apfWait{}}
	const waitName = "apiserver_flowcontrol_request_wait_duration_seconds"
	for line := range strings.Lines(raw) {
		name, labels, value, ok := metricSample(line)
		if !ok {
			continue
		}
		switch {
		case name == "apiserver_terminated_watchers_total" && labels["resource"] == "certificatesigningrequests":
			m.closedCSRWatches += int(value)
		case name == "go_gc_duration_seconds_count":
			m.gcs = int(value)
		case name == waitName+"_sum" || name == waitName+"_count":
			flow := apfFlow{labels["priority_level"], labels["flow_schema"]}
			w := m.queued[flow]
			if name == waitName+"_sum" {
				w.sum += value
			} else {
				w.count += int(value)
			}
			m.queued[flow] = w
		}
	}
	return m
}

// metricSample splits a line of the Prometheus text format that has no
// timestamp: name{label="value",...} value.
func metricSample(line string) (name string, labels map[string]string, value float64, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", nil, 0, false
	}
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	value, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	series := line[:sp]
	labels = map[string]string{}
	name, rest, hasLabels := strings.Cut(series, "{")
	if hasLabels {
		rest, closed := strings.CutSuffix(rest, "}")
		if !closed {
			return "", nil, 0, false
		}
		// Label values here hold no commas or quotes.
		for pair := range strings.SplitSeq(rest, ",") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				continue
			}
			labels[k] = strings.Trim(v, `"`)
		}
	}
	return name, labels, value, true
}

// queuedSince is what waited in the priority and fairness queues between
// before and m, the flows that waited longest first.
func (m apiServerMetrics) queuedSince(before apiServerMetrics) []apfQueued {
	var out []apfQueued
	for flow, w := range m.queued {
		b := before.queued[flow]
		if n := w.count - b.count; n > 0 {
			out = append(out, apfQueued{flow: flow, count: n, total: time.Duration((w.sum - b.sum) * float64(time.Second))})
		}
	}
	slices.SortFunc(out, func(a, b apfQueued) int {
		return cmp.Or(cmp.Compare(b.total, a.total), cmp.Compare(a.flow.priorityLevel, b.flow.priorityLevel), cmp.Compare(a.flow.flowSchema, b.flow.flowSchema))
	})
	return out
}

// apfQueued is what one flow's requests waited during the burst.
type apfQueued struct {
	flow  apfFlow
	count int
	total time.Duration
}

func (q apfQueued) String() string {
	return fmt.Sprintf("%s (flow schema %s): %d requests, %s waiting in all, mean %s", q.flow.priorityLevel, q.flow.flowSchema, q.count, fmtDur(q.total), fmtDur(q.total/time.Duration(q.count)))
}

// parseApprovers parses --csr-reference: reference approvers,
// comma-separated, each at most once; empty for none.
func parseApprovers(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		switch {
		case f == "":
			continue
		case f != approverFloor && f != approverKCM:
			return nil, fmt.Errorf("unknown approver %q (want %s or %s)", f, approverFloor, approverKCM)
		case slices.Contains(out, f):
			return nil, fmt.Errorf("approver %q given twice", f)
		}
		out = append(out, f)
	}
	return out, nil
}
