/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package localenv_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
	"github.com/openwmco/wmco/test/testpayload"
	"github.com/openwmco/wmco/test/upgradewatch"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// The control plane is upgraded from v1.36 to v1.37 while six hosts run
// the v1.36 payload (three from the windows-instances ConfigMap, three
// created directly): the operator process notices the API server's new
// version on its own and rolls every host to the v1.37 payload, at most
// maxUnavailable (2) at once. Mid-rollout the operator is killed with
// SIGKILL and started again; the bound holds throughout, because the
// slots are recorded in the instances' status.
func TestControlPlaneUpgradeRollsHostsAcrossOperatorKill(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	dir, older, newer := twoPayloads(t)
	kubelets := testpayload.KubeletBinaries(older, newer)

	env, err := localenv.Start(ctx, localenv.Options{
		Hosts: 6, PayloadDir: dir, Log: testLog{t}, APIServerVersion: "v1.36.9",
		Host:         simagent.Options{KubeletBinaries: kubelets},
		OperatorArgs: []string{"--version-poll-interval=1s"},
	})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = env.Stop() }()
	defer func() {
		if t.Failed() {
			t.Logf("operator log (last lines):\n%s", proc.TailFile(env.OperatorLog, 60))
			t.Logf("operator exited: %v", env.OperatorExited())
			var list wmcov1.WindowsInstanceList
			if env.Client.List(context.Background(), &list) == nil {
				for _, wi := range list.Items {
					t.Logf("instance %s: phase %s payload %s kubelet %s upgrade %+v: %s", wi.Name, wi.Status.Phase, wi.Status.PayloadVersion, wi.Status.KubeletVersion, wi.Status.Upgrade, wi.Status.Message)
				}
			}
			if nodes, err := env.Clientset.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{}); err == nil {
				for _, n := range nodes.Items {
					t.Logf("node %s: kubelet %s unschedulable %v conditions %v", n.Name, n.Status.NodeInfo.KubeletVersion, n.Spec.Unschedulable, n.Status.Conditions)
				}
			}
		}
	}()
	g.Expect(env.Client.Create(ctx, &wmcov1.WindowsNodeConfig{
		ObjectMeta: metav1.ObjectMeta{Name: wmcov1.WindowsNodeConfigName},
		Spec:       wmcov1.WindowsNodeConfigSpec{MaxUnavailable: ptrTo(intstr.FromInt32(2))},
	})).To(Succeed())
	g.Expect(env.SetInventory(ctx, env.Hosts[:3]...)).To(Succeed())
	for _, h := range env.Hosts[3:] {
		g.Expect(env.Client.Create(ctx, &wmcov1.WindowsInstance{
			ObjectMeta: metav1.ObjectMeta{Name: h.Name},
			Spec:       wmcov1.WindowsInstanceSpec{Address: h.IP, Port: int32(h.Port), Username: "Administrator"},
		})).To(Succeed())
	}
	waitAll := func(version, kube string, timeout time.Duration) {
		g.Eventually(func(g Gomega) {
			var list wmcov1.WindowsInstanceList
			g.Expect(env.Client.List(ctx, &list)).To(Succeed())
			g.Expect(list.Items).To(HaveLen(6))
			for _, wi := range list.Items {
				g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "%s: %s", wi.Name, wi.Status.Message)
				g.Expect(wi.Status.PayloadVersion).To(Equal(version), wi.Name)
				g.Expect(wi.Status.KubeletVersion).To(Equal(kube), wi.Name)
			}
		}).WithContext(ctx).WithTimeout(timeout).WithPolling(500 * time.Millisecond).Should(Succeed())
	}
	waitAll(older.Version, "v1.36.9", 3*time.Minute)

	t.Log("Restarting kube-apiserver as v1.37.2 (its own version)")
	g.Expect(env.Cluster.RestartAPIServer(ctx, "")).To(Succeed())
	// A watch starts with the current state of every instance.
	upgrades := upgradewatch.Start(ctx, env.Client.(client.WithWatch), env.Clientset)
	defer upgrades.Stop()
	// Hosts follow the control plane without an operator restart.
	upgraded := func(g Gomega) int {
		var list wmcov1.WindowsInstanceList
		g.Expect(env.Client.List(ctx, &list)).To(Succeed())
		n := 0
		for _, wi := range list.Items {
			if wi.Status.PayloadVersion == newer.Version && wi.Status.Upgrade == nil {
				n++
			}
		}
		return n
	}
	g.Eventually(upgraded).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(100 * time.Millisecond).
		Should(And(BeNumerically(">=", 1), BeNumerically("<", 6)))
	pid := env.OperatorPID()
	env.KillOperator()
	t.Logf("Killed the operator (PID %d) with SIGKILL after %d of 6 hosts upgraded", pid, upgraded(g))
	g.Expect(env.RestartOperator(ctx)).To(Succeed())
	waitAll(newer.Version, "v1.37.2", 4*time.Minute)
	p := upgrades.Result().Peak
	t.Logf("peak of hosts upgrading at once: %d (maxUnavailable 2)", p)
	g.Expect(p).To(And(BeNumerically(">=", 1), BeNumerically("<=", 2)))

	var list wmcov1.WindowsInstanceList
	g.Expect(env.Client.List(ctx, &list)).To(Succeed())
	for _, wi := range list.Items {
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionUpgrading)
		g.Expect(c).NotTo(BeNil(), wi.Name)
		g.Expect(c.Reason).To(Equal(instance.ReasonUpgradeSucceeded), wi.Name)
	}
	var cfg wmcov1.WindowsNodeConfig
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, &cfg)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Name: wmcov1.WindowsNodeConfigName}, &cfg)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(cfg.Status.Conditions, "Upgradeable")).To(BeTrue())
	}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
}

func ptrTo[T any](v T) *T { return &v }

// twoPayloads writes payloads for Kubernetes v1.36.9 and v1.37.2 (a new
// kubelet and kube-proxy) into a directory of payloads, as the operator's
// --payload-dir.
func twoPayloads(t *testing.T) (dir string, older, newer *payload.Manifest) {
	t.Helper()
	dir = t.TempDir()
	older, err := testpayload.Write(filepath.Join(dir, "v1.36.9"), testpayload.Options{Version: "v1.36.9-test", KubernetesVersion: "v1.36.9"})
	if err != nil {
		t.Fatal(err)
	}
	newer, err = testpayload.Derive(filepath.Join(dir, "v1.36.9"), filepath.Join(dir, "v1.37.2"), testpayload.DeriveOptions{
		Change: []string{payload.KubeletPath, payload.KubeProxyPath}, KubernetesVersion: "v1.37.2",
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir, older, newer
}
