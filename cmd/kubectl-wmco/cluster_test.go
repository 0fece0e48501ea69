/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/test/kubeletemu"
	"github.com/openwmco/wmco/test/localcluster"
)

var (
	clusterOnce sync.Once
	cluster     *localcluster.Cluster
	clusterErr  error
)

// TestMain stops the control plane the cluster tests started.
func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		_ = cluster.Stop()
	}
	os.Exit(code)
}

// localCluster is the package's control plane, started by the first test
// that needs it, with the CRDs and the kubelet proxy (node logs).
func localCluster(t *testing.T) *localcluster.Cluster {
	t.Helper()
	clusterOnce.Do(func() {
		ctx := context.Background()
		cluster, clusterErr = localcluster.Start(ctx, localcluster.Options{KubeletProxy: true})
		if clusterErr == nil {
			clusterErr = localcluster.InstallCRDs(ctx, cluster.Config, "config/crd/bases")
		}
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return cluster
}

// `kubectl wmco status` lists the instances, sorted, with the last
// problem of those that are not Ready; the kubeconfig comes from
// --kubeconfig or $KUBECONFIG.
func TestStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := localCluster(t)
	scheme := runtime.NewScheme()
	g.Expect(wmcov1.AddToScheme(scheme)).To(Succeed())
	cl, err := client.New(c.Config, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	var o, e bytes.Buffer
	g.Expect(run(ctx, []string{"status", "--kubeconfig", c.KubeconfigPath}, &o, &e)).To(Equal(exitOK), e.String())
	g.Expect(o.String()).To(Equal("No WindowsInstances.\n"))

	for _, wi := range []struct {
		name, address string
		status        wmcov1.WindowsInstanceStatus
	}{
		{"win-b", "10.0.0.12", wmcov1.WindowsInstanceStatus{Phase: wmcov1.PhasePreflight,
			Message: "LowDiskSpace: free space on C: is 2.0 GiB,\nat least 10.0 GiB is needed"}},
		{"win-a", "10.0.0.11", wmcov1.WindowsInstanceStatus{Phase: wmcov1.PhaseReady, NodeName: "win-a", PayloadVersion: "v1.37.2-1",
			Message: "ignored while Ready"}},
		{"win-c", "10.0.0.13", wmcov1.WindowsInstanceStatus{Phase: wmcov1.PhaseConnecting, Conditions: []metav1.Condition{
			{Type: "Reachable", Status: metav1.ConditionFalse, Reason: "Unreachable", Message: "host 10.0.0.13:22 unreachable", LastTransitionTime: metav1.Now()}}}},
	} {
		obj := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: wi.name},
			Spec: wmcov1.WindowsInstanceSpec{Address: wi.address, Username: "Administrator"}}
		g.Expect(cl.Create(ctx, obj)).To(Succeed())
		obj.Status = wi.status
		g.Expect(cl.Status().Update(ctx, obj)).To(Succeed())
		t.Cleanup(func() { _ = cl.Delete(context.Background(), obj) })
	}
	o.Reset()
	t.Setenv("KUBECONFIG", c.KubeconfigPath)
	g.Expect(run(ctx, []string{"status"}, &o, &e)).To(Equal(exitOK), e.String())
	t.Logf("kubectl wmco status:\n%s", o.String())
	g.Expect(o.String()).To(Equal(
		"NAME   ADDRESS    NODE   PHASE       VERSION    PROBLEM\n" +
			"win-a  10.0.0.11  win-a  Ready       v1.37.2-1  -\n" +
			"win-b  10.0.0.12  -      Preflight   -          LowDiskSpace: free space on C: is 2.0 GiB, at least 10.0 GiB is needed\n" +
			"win-c  10.0.0.13  -      Connecting  -          Reachable: host 10.0.0.13:22 unreachable\n"))

	// A kubeconfig that does not exist is a failure, not a usage error.
	g.Expect(run(ctx, []string{"status", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, &o, &e)).To(Equal(exitFailed))
}

// `kubectl wmco logs <node> <service>` prints the service's log from the
// node, through the API server's node proxy and the kubelet's log query.
func TestLogs(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c := localCluster(t)
	disk := kubeletemu.NewMemDisk()
	kubelet := "I1201 18:00:00.000001    4312 server.go:1] Started kubelet\r\n"
	proxy := "I1201 18:00:02.000001    5120 server.go:2] kube-proxy running\r\n"
	g.Expect(disk.WriteFile(`C:\var\log\kubelet\kubelet.log`, []byte(kubelet))).To(Succeed())
	g.Expect(disk.WriteFile(`C:\var\log\kube-proxy\kube-proxy.log`, []byte(proxy))).To(Succeed())
	kubeletemu.StartNode(t, c.Config, kubeletemu.NodeOptions{Hostname: "WMCO-LOGS", Address: "192.0.2.20", Disk: disk})

	logs := func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		code := run(ctx, append([]string{"logs", "--kubeconfig", c.KubeconfigPath}, args...), &o, &e)
		return code, o.String(), e.String()
	}
	// The Node's first status names the kubelet's port.
	g.Eventually(func() string {
		_, out, _ := logs("wmco-logs", "kubelet")
		return out
	}).WithTimeout(30 * time.Second).Should(Equal(kubelet))
	code, out, _ := logs("wmco-logs", "kube-proxy", "kubelet")
	g.Expect(code).To(Equal(exitOK))
	g.Expect(out).To(Equal(proxy + kubelet))
	code, out, _ = logs("wmco-logs", "containerd")
	g.Expect(code).To(Equal(exitOK))
	g.Expect(out).To(Equal("\nlog not found for containerd\n"))

	code, _, errOut := logs("no-such-node", "kubelet")
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(errOut).To(ContainSubstring(`nodes "no-such-node" not found`))
}
