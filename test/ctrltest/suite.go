// Package ctrltest is the harness of the controller tests: one real local
// control plane per test binary (etcd, kube-apiserver,
// kube-controller-manager) with the CRDs installed (the operator's and
// OpenShift's Machine, MachineSet and Infrastructure), managers that run the
// controllers a test needs, and simulated Windows hosts. Each test uses
// object names no other test uses.
package ctrltest

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/openshiftcrds"
)

// Namespace is the operator's namespace in the tests.
const Namespace = "wmco-system"

var (
	// Cluster is the control plane of the test binary.
	Cluster *localcluster.Cluster
	// Scheme holds the operator's types.
	Scheme *runtime.Scheme
	// Client reads straight from the API server (no cache), as admin.
	Client client.Client
	// Clientset is a typed client, as admin.
	Clientset *kubernetes.Clientset
)

// Run starts the control plane, runs the tests and stops it; a package's
// TestMain calls os.Exit(ctrltest.Run(m)). A binary that only fuzzes runs
// without one (see fuzzOnly): fuzz targets here must be pure functions.
func Run(m *testing.M) int {
	if fuzzOnly() {
		return m.Run()
	}
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{NodeMonitorGracePeriod: 5 * time.Second, NodeMonitorPeriod: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local control plane:", err)
		return 1
	}
	defer func() { _ = c.Stop() }()
	Cluster = c
	if err := localcluster.InstallCRDs(ctx, c.Config, "config/crd/bases"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// OpenShift's Machine, MachineSet and Infrastructure CRDs, as the
	// pinned github.com/openshift/api module ships them.
	if err := openshiftcrds.Install(ctx, c.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// A test's first custom resource is created at once, not held 2 s
	// (localcluster.AwaitCRDsSettled).
	if err := localcluster.AwaitCRDsSettled(ctx, c.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if Scheme, err = core.NewScheme(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if Client, err = client.New(c.Config, client.Options{Scheme: Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if Clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if err := Client.Create(ctx, ns); err != nil {
		fmt.Fprintln(os.Stderr, "create namespace:", err)
		return 1
	}
	return m.Run()
}

// fuzzOnly says whether this test binary runs no test but only fuzzing: a
// fuzzing worker process, or the coordinator of `go test -run='^$' -fuzz=X`
// (what hack/fuzz.sh runs). Every worker runs TestMain too; starting a
// control plane in each took longer than CI's 5 s of fuzzing, which then
// failed with "context deadline exceeded" before any input ran.
func fuzzOnly() bool {
	if !flag.Parsed() {
		flag.Parse()
	}
	value := func(name string) string {
		if f := flag.Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	return value("test.fuzzworker") == "true" || (value("test.fuzz") != "" && value("test.run") == "^$")
}

// StartManager runs a manager with the controllers setup adds until the
// test ends.
func StartManager(t *testing.T, setup func(mgr ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	return StartManagerAs(t, Cluster.Config, setup)
}

// StartManagerAs is StartManager authenticated with cfg.
func StartManagerAs(t *testing.T, cfg *rest.Config, setup func(mgr ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	mgr, _ := startManager(t, cfg, setup)
	return mgr
}

// StartStoppableManager is StartManager that the test may also stop early
// (as an operator that exits): stop cancels the manager and waits for it.
func StartStoppableManager(t *testing.T, setup func(mgr ctrl.Manager) error) (ctrl.Manager, func()) {
	t.Helper()
	return startManager(t, Cluster.Config, setup)
}

// StartManagerWithCache is StartManagerAs with the manager's cache
// limited as the operator's main limits it.
func StartManagerWithCache(t *testing.T, cfg *rest.Config, c cache.Options, setup func(mgr ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	mgr, _ := startManagerWith(t, cfg, c, setup)
	return mgr
}

// StartManagerWithGeneratedRBAC runs a manager with the controllers setup
// adds, authenticated as user holding exactly the generated RBAC
// (GrantGeneratedRBAC), with the Node cache limited to the operator's
// Nodes as the operator's main limits it.
func StartManagerWithGeneratedRBAC(t *testing.T, user string, setup func(mgr ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	GrantGeneratedRBAC(t, user, user, Namespace)
	cfg, err := Cluster.UserConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := labels.NewRequirement(wmcov1.LabelInstance, selection.Exists, nil)
	if err != nil {
		t.Fatal(err)
	}
	return StartManagerWithCache(t, cfg, cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Node{}: {Label: labels.NewSelector().Add(*ours)},
	}}, setup)
}

func startManager(t *testing.T, cfg *rest.Config, setup func(mgr ctrl.Manager) error) (ctrl.Manager, func()) {
	t.Helper()
	return startManagerWith(t, cfg, cache.Options{}, setup)
}

func startManagerWith(t *testing.T, cfg *rest.Config, c cache.Options, setup func(mgr ctrl.Manager) error) (ctrl.Manager, func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Cache:                  c,
		Scheme:                 Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 zap.New(zap.UseDevMode(true), zap.WriteTo(LogWriter{t})),
		// Every test has its own manager with the same controller names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := setup(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	}()
	stop := sync.OnceFunc(func() {
		cancel()
		wg.Wait()
	})
	t.Cleanup(stop)
	return mgr, stop
}

// GrantGeneratedRBAC gives user exactly what config/rbac/role.yaml grants
// the operator, as a deployment binds it: a ClusterRole and Roles (named
// name) with bindings. Roles of the operator's namespace go to namespace;
// Roles of namespaces the cluster lacks are skipped.
func GrantGeneratedRBAC(t *testing.T, name, user, namespace string) {
	t.Helper()
	ctx := t.Context()
	objs, err := localenv.GeneratedRBAC(name, namespace, []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" {
			if err := Client.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
				continue
			}
		}
		if err := Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = Client.Delete(context.Background(), o) })
	}
}

// LogWriter sends a manager's log to the test's log, shown on failure or
// with -v.
type LogWriter struct{ T *testing.T }

func (w LogWriter) Write(p []byte) (int, error) {
	w.T.Helper()
	// A goroutine of a stopped manager (an Event broadcaster, say) may
	// still log after its test has completed, and t.Log panics then: such
	// late lines are dropped.
	defer func() { _ = recover() }()
	w.T.Log(string(p))
	return len(p), nil
}
