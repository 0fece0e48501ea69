/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package localenv_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
)

// A host the operator joined (inventory ConfigMap, SSH, the real plan,
// TLS bootstrap with the CSRs the operator approved) answers the node log
// query through the real API server: GET
// /api/v1/nodes/<node>/proxy/logs/?query=kubelet returns the kubelet's
// log as kube-log-runner writes it under C:\var\log\kubelet\ on the host,
// the API server reaching the kubelet's port with its kubelet client
// certificate.
func TestNodeLogQueryOnAnOperatorJoinedHost(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := localenv.Start(ctx, localenv.Options{Hosts: 1, KubeletProxy: true, Log: testLog{t}})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = env.Stop() }()
	defer func() {
		if t.Failed() {
			t.Logf("operator log (last lines):\n%s", proc.TailFile(env.OperatorLog, 60))
		}
	}()
	g.Expect(env.SetInventory(ctx, env.Hosts...)).To(Succeed())
	h := env.Hosts[0]
	g.Eventually(func(g Gomega) {
		var wi wmcov1.WindowsInstance
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: h.IP}, &wi)).To(Succeed())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), wi.Status.Message)
	}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())

	var wi wmcov1.WindowsInstance
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: h.IP}, &wi)).To(Succeed())
	node := wi.Status.NodeName
	g.Expect(node).NotTo(BeEmpty())

	onHost, err := h.Host.Disk().ReadFile(nodeconfig.LogPath(nodeconfig.ServiceKubelet))
	g.Expect(err).NotTo(HaveOccurred(), "kube-log-runner writes the kubelet's log")
	g.Expect(string(onHost)).To(ContainSubstring("Started kubelet.exe (service kubelet)"))

	raw := func(uri string) (string, error) {
		b, err := env.Clientset.CoreV1().RESTClient().Get().RequestURI(uri).DoRaw(ctx)
		return string(b), err
	}
	g.Eventually(func() (string, error) {
		return raw("/api/v1/nodes/" + node + "/proxy/logs/?query=kubelet")
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Equal(string(onHost)))

	out, err := raw("/api/v1/nodes/" + node + "/proxy/logs/")
	g.Expect(err).NotTo(HaveOccurred())
	for _, svc := range []string{nodeconfig.ServiceKubelet, nodeconfig.ServiceContainerd, "wicd"} {
		g.Expect(out).To(ContainSubstring(`<a href="`+svc+`/">`), "the listing of C:\\var\\log names the folder of %s", svc)
	}
}
