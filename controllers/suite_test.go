package controllers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/openwmco/wmco/test/localcluster"
)

// The controller tests share one real control plane (etcd, kube-apiserver,
// kube-controller-manager) with the CRDs installed. Each test starts the
// controllers it needs in a manager of its own and uses object names no
// other test uses.

const testNamespace = "wmco-system"

var (
	testCluster *localcluster.Cluster
	testScheme  *runtime.Scheme
	// k8sClient reads straight from the API server (no cache).
	k8sClient client.Client
	clientset *kubernetes.Clientset
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx := context.Background()
	c, err := localcluster.Start(ctx, localcluster.Options{NodeMonitorGracePeriod: 5 * time.Second, NodeMonitorPeriod: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start local control plane:", err)
		return 1
	}
	defer func() { _ = c.Stop() }()
	testCluster = c
	if err := localcluster.InstallCRDs(ctx, c.Config, "config/crd/bases", "test/testdata/crds"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if testScheme, err = NewScheme(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if k8sClient, err = client.New(c.Config, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}
	if err := k8sClient.Create(ctx, ns); err != nil {
		fmt.Fprintln(os.Stderr, "create namespace:", err)
		return 1
	}
	return m.Run()
}

// startManager runs a manager with the controllers setup adds until the
// test ends.
func startManager(t *testing.T, setup func(mgr ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	return startManagerAs(t, testCluster.Config, setup)
}

// startManagerAs is startManager authenticated with cfg.
func startManagerAs(t *testing.T, cfg *rest.Config, setup func(mgr ctrl.Manager) error) ctrl.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 zap.New(zap.UseDevMode(true), zap.WriteTo(testLogWriter{t})),
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
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return mgr
}

// grantGeneratedRBAC gives user exactly what config/rbac/role.yaml grants
// the operator, as a deployment binds it: a ClusterRole and Roles (named
// name) with bindings. Roles of the operator's namespace go to namespace;
// Roles of namespaces the cluster lacks are skipped.
func grantGeneratedRBAC(t *testing.T, name, user, namespace string) {
	t.Helper()
	ctx := t.Context()
	data, err := os.ReadFile("../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	var objs []client.Object
	kinds := map[string]bool{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.Role // a ClusterRole has the same fields
		if err := sigsyaml.UnmarshalStrict(doc, &role); err != nil {
			t.Fatal(err)
		}
		kinds[role.Kind+"/"+role.Namespace] = true
		switch role.Kind {
		case "ClusterRole":
			objs = append(objs,
				&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: role.Rules},
				&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}})
		case "Role":
			ns := role.Namespace
			if ns == testNamespace {
				ns = namespace
			}
			if err := k8sClient.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
				continue
			}
			objs = append(objs,
				&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Rules: role.Rules},
				&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Subjects: subjects,
					RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}})
		}
	}
	if !kinds["ClusterRole/"] || !kinds["Role/"+testNamespace] {
		t.Fatalf("config/rbac/role.yaml: want a ClusterRole and a Role in %s, got %v", testNamespace, kinds)
	}
	for _, o := range objs {
		if err := k8sClient.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), o) })
	}
}

// testLogWriter sends the manager's log to the test's log, shown on failure
// or with -v.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
