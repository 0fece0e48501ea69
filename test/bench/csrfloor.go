package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certificatesclient "k8s.io/client-go/kubernetes/typed/certificates/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// csrFloorArg, as the first argument, makes the benchmark's binary the
// floor approver (runCSRFloor) instead of the benchmark.
const csrFloorArg = "csr-floor-approver"

// floorWorkers is how many approvals the floor approver has in flight,
// as many as the operator's approver workers.
const floorWorkers = 256

// runCSRFloor approves every pending CSR it sees, as the identity of
// kubeconfig, and nothing else: no rule, no read, one approval write per
// CSR. It is the floor of the CSR phase, what this machine's control
// plane gives an approver that costs nothing but its approvals, measured
// in the same burst as the operator. It watches CSRs with an informer
// and approves from a work queue with floorWorkers workers, in protobuf
// and uncompressed and without a client-side rate limit, as the operator
// talks to the API server (csrChildClient). It writes "synced" once it
// has listed, and runs until in closes.
func runCSRFloor(kubeconfig string, in io.Reader, out io.Writer) error {
	cs, err := csrChildClient(csrFloorArg, kubeconfig)
	if err != nil {
		return err
	}
	queue := workqueue.NewTyped[string]()
	defer queue.ShutDown()
	store, informer := csrInformer(cs, nil, cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if c, ok := o.(*certificatesv1.CertificateSigningRequest); ok && len(c.Status.Conditions) == 0 {
				queue.Add(c.Name)
			}
		},
	})
	ctx, err := runUntilClosed(in, informer)
	if err != nil {
		return err
	}
	csrs := cs.CertificatesV1().CertificateSigningRequests()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range floorWorkers {
		wg.Go(func() {
			for {
				name, shutdown := queue.Get()
				if shutdown {
					return
				}
				if err := approveFloor(ctx, csrs, store, name); err != nil && ctx.Err() == nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
				queue.Done(name)
			}
		})
	}
	w := bufio.NewWriter(out)
	if _, err := w.WriteString(lineSynced + "\n"); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return firstErr
}

// approveFloor writes the approval of the CSR the store holds as name.
func approveFloor(ctx context.Context, csrs certificatesclient.CertificateSigningRequestInterface, store cache.Store, name string) error {
	o, ok, err := store.GetByKey(name)
	if err != nil || !ok {
		return err
	}
	c := o.(*certificatesv1.CertificateSigningRequest).DeepCopy()
	c.Status.Conditions = append(c.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "BenchmarkFloor", Message: "approved unchecked by the benchmark's floor approver", LastUpdateTime: metav1.Now(),
	})
	if _, err := csrs.UpdateApproval(ctx, c.Name, c, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("approve %s: %w", name, err)
	}
	return nil
}

// csrFloor is the benchmark's side of the floor approver's process.
type csrFloor struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// startCSRFloor starts the floor approver on kubeconfig and waits until
// it has listed the CSRs.
func startCSRFloor(ctx context.Context, kubeconfig string) (*csrFloor, error) {
	cmd, stdin, stdout, err := startCSRChild(csrFloorArg, kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("start the floor approver: %w", err)
	}
	f := &csrFloor{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	synced := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && sc.Text() == lineSynced
		synced <- ok
		_, _ = io.Copy(io.Discard, stdout)
		f.done <- f.cmd.Wait()
	}()
	select {
	case ok := <-synced:
		if ok {
			return f, nil
		}
		_ = f.stop()
		return nil, errors.New("the floor approver ended before it listed the CSRs")
	case <-time.After(30 * time.Second):
		_ = f.stop()
		return nil, errors.New("the floor approver did not list the CSRs within 30s")
	case <-ctx.Done():
		_ = f.stop()
		return nil, ctx.Err()
	}
}

// PID is the floor approver's process ID.
func (f *csrFloor) PID() int { return f.cmd.Process.Pid }

// stop ends the floor approver and waits for it; its error says whether
// an approval failed.
func (f *csrFloor) stop() error {
	_ = f.stdin.Close()
	select {
	case err := <-f.done:
		return err
	case <-time.After(10 * time.Second):
		_ = f.cmd.Process.Kill()
		return <-f.done
	}
}
