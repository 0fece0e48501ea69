package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// csrObserverArg, as the first argument, makes the benchmark's binary
// the CSR bursts' observer (runCSRObserver) instead of the benchmark.
const csrObserverArg = "csr-observer"

// The observer's output: one line per sighting, "<kind> <name> <unix
// nanoseconds>", a line "synced" once it has listed, and a line "watch"
// each time it starts a watch (the first and each resumption).
const (
	sightSeen     = "seen"
	sightApproved = "approved"
	sightDenied   = "denied"
	lineSynced    = "synced"
	lineWatch     = "watch"
)

// runCSRObserver watches CSRs with an informer, as the admin of
// kubeconfig, and writes to out when each CSR is first seen and first
// seen approved or denied. It runs until its standard input closes.
//
// It is a process of its own so that the benchmark's burst (a thousand
// goroutines creating CSRs, each over its own TLS connection) does not
// hold up the goroutine reading the watch: a watcher that falls behind
// is closed by the API server, after stalling every other watcher of
// CSRs (the approver's too) for up to its dispatch budget. Its watch
// asks for protobuf, as the approver's and kube-controller-manager's
// do, so the API server encodes each event once for all three. The
// informer's reflector resumes a closed watch from the last event at
// once; the RetryWatcher used before waited a second, which counted in
// the latency of every CSR decided meanwhile.
func runCSRObserver(kubeconfig string, in io.Reader, out io.Writer) error {
	cs, err := csrChildClient(csrObserverArg, kubeconfig)
	if err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		w        = bufio.NewWriter(out)
		reported = map[string]bool{} // kind + " " + name
		writeErr error
	)
	emit := func(line string) {
		if writeErr != nil {
			return
		}
		if _, writeErr = w.WriteString(line + "\n"); writeErr == nil {
			writeErr = w.Flush()
		}
	}
	report := func(kind, name string, at time.Time) {
		if k := kind + " " + name; !reported[k] {
			reported[k] = true
			emit(fmt.Sprintf("%s %s %d", kind, name, at.UnixNano()))
		}
	}
	observe := func(o any) {
		now := time.Now()
		c, ok := o.(*certificatesv1.CertificateSigningRequest)
		if !ok {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		report(sightSeen, c.Name, now)
		for _, cond := range c.Status.Conditions {
			switch cond.Type {
			case certificatesv1.CertificateApproved:
				report(sightApproved, c.Name, now)
			case certificatesv1.CertificateDenied:
				report(sightDenied, c.Name, now)
			}
		}
	}
	_, informer := csrInformer(cs, func() {
		mu.Lock()
		emit(lineWatch)
		mu.Unlock()
	}, cache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, o any) { observe(o) },
	})
	ctx, err := runUntilClosed(in, informer)
	if err != nil {
		return err
	}
	mu.Lock()
	emit(lineSynced)
	mu.Unlock()
	<-ctx.Done()
	mu.Lock()
	defer mu.Unlock()
	return writeErr
}

// csrObserver is the benchmark's side of the observer process.
type csrObserver struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	n     int

	mu                     sync.Mutex
	seen, approved, denied map[string]time.Time
	watches                int
	err                    error
	synced, allDone, ended chan struct{}
}

// startCSRObserver starts the observer process on kubeconfig and waits
// until it has listed the CSRs. allDone closes once n CSRs are seen
// approved or denied.
func startCSRObserver(ctx context.Context, kubeconfig string, n int) (*csrObserver, error) {
	o := &csrObserver{
		n:    n,
		seen: map[string]time.Time{}, approved: map[string]time.Time{}, denied: map[string]time.Time{},
		synced: make(chan struct{}), allDone: make(chan struct{}), ended: make(chan struct{}),
	}
	cmd, stdin, stdout, err := startCSRChild(csrObserverArg, kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("start the CSR observer: %w", err)
	}
	o.cmd, o.stdin = cmd, stdin
	go o.read(stdout)
	select {
	case <-o.synced:
		return o, nil
	case <-o.ended:
		_ = o.stop()
		return nil, fmt.Errorf("the CSR observer ended before it listed the CSRs: %w", o.failure())
	case <-time.After(30 * time.Second):
		_ = o.stop()
		return nil, errors.New("the CSR observer did not list the CSRs within 30s")
	case <-ctx.Done():
		_ = o.stop()
		return nil, ctx.Err()
	}
}

func (o *csrObserver) read(r io.Reader) {
	defer close(o.ended)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		o.mu.Lock()
		err := o.line(sc.Text())
		if err != nil && o.err == nil {
			o.err = err
		}
		o.mu.Unlock()
	}
	o.mu.Lock()
	if err := sc.Err(); err != nil && o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
}

// line takes one line of the observer's output; o.mu is held.
func (o *csrObserver) line(s string) error {
	switch s {
	case lineSynced:
		close(o.synced)
		return nil
	case lineWatch:
		o.watches++
		return nil
	}
	f := strings.Fields(s)
	if len(f) != 3 {
		return fmt.Errorf("CSR observer: unexpected line %q", s)
	}
	ns, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return fmt.Errorf("CSR observer: line %q: %w", s, err)
	}
	at := time.Unix(0, ns)
	switch f[0] {
	case sightSeen:
		o.seen[f[1]] = at
	case sightApproved:
		o.approved[f[1]] = at
	case sightDenied:
		o.denied[f[1]] = at
	default:
		return fmt.Errorf("CSR observer: unexpected line %q", s)
	}
	if len(o.approved)+len(o.denied) == o.n {
		select {
		case <-o.allDone:
		default:
			close(o.allDone)
		}
	}
	return nil
}

// stop ends the observer process and waits for it.
func (o *csrObserver) stop() error {
	_ = o.stdin.Close()
	select {
	case <-o.ended:
	case <-time.After(10 * time.Second):
		_ = o.cmd.Process.Kill()
	}
	return o.cmd.Wait()
}

// resumed is how many times the observer's watch was started again.
func (o *csrObserver) resumed() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return max(0, o.watches-1)
}

// failure is what ended the observer's output early, if anything was
// wrong with it; its own error went to the benchmark's standard error.
func (o *csrObserver) failure() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	return errors.New("its output closed")
}

// The CSR phase's child processes (the observer, the floor approver) are
// the benchmark's binary started with their argument and a kubeconfig.
// Each watches CSRs with an informer in protobuf and uncompressed, as the
// operator and kube-controller-manager do (the API server encodes each
// event once for them all, and would gzip every event of a watch that
// asked for it, CPU taken from what is measured), and runs until its
// standard input closes.

// startCSRChild starts the benchmark's binary as the child arg on
// kubeconfig, its standard error the benchmark's.
func startCSRChild(arg, kubeconfig string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	cmd := exec.Command(self, arg, kubeconfig)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, stdin, stdout, nil
}

// csrChildClient is the client of the child arg: protobuf, uncompressed,
// named arg in the API server's audit log (--count-requests).
func csrChildClient(arg, kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = arg + "/bench"
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.DisableCompression = true
	// No client-side rate limit: the floor approver writes an approval
	// per CSR, as fast as the operator (whose limit a burst never
	// reaches); the observer only lists and watches.
	cfg.QPS, cfg.Burst = -1, 0
	return kubernetes.NewForConfig(cfg)
}

// csrInformer is an informer of every CSR calling h, and onWatch each
// time it starts a watch (the first and each resumption).
func csrInformer(cs kubernetes.Interface, onWatch func(), h cache.ResourceEventHandler) (cache.Store, cache.Controller) {
	csrs := cs.CertificatesV1().CertificateSigningRequests()
	return cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return csrs.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				if onWatch != nil {
					onWatch()
				}
				return csrs.Watch(ctx, o)
			},
		},
		ObjectType: &certificatesv1.CertificateSigningRequest{},
		Handler:    h,
	})
}

// runUntilClosed runs informer until in closes, which ends the returned
// context, and returns once it has listed.
func runUntilClosed(in io.Reader, informer cache.Controller) (context.Context, error) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		_, _ = io.Copy(io.Discard, in)
		cancel()
	}()
	go informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		cancel()
		return nil, errors.New("the CSR informer did not sync")
	}
	return ctx, nil
}
