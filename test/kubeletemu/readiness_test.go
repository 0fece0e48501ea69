package kubeletemu_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/openwmco/wmco/test/kubeletemu"
	"github.com/openwmco/wmco/test/localcluster"
)

// A kubelet that started without a CNI configuration reports its Node
// Ready as soon as one appears, as the kubelet's start-up status loop
// (fastStatusUpdateOnce) does, not at its next Lease renewal or status
// report: both are an hour away here.
func TestNodeReadyOnceTheNetworkIsConfigured(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c, err := localcluster.Start(ctx, localcluster.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Stop() })
	cs, err := kubernetes.NewForConfig(c.Config)
	g.Expect(err).NotTo(HaveOccurred())

	disk := kubeletemu.NewMemDisk()
	node := kubeletemu.StartNode(t, c.Config, kubeletemu.NodeOptions{Hostname: "READY-1", Address: "192.0.2.11", Disk: disk,
		StatusInterval: time.Hour, LeaseDuration: 4 * time.Hour})
	ready := func() (corev1.ConditionStatus, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status, nil
			}
		}
		return "", nil
	}
	g.Expect(ready()).To(Equal(corev1.ConditionFalse), "no CNI configuration yet")

	g.Expect(disk.WriteFile(`C:\k\cni\config\cni.conf`, []byte(`{"cniVersion":"0.2.0","name":"x","type":"win-overlay"}`))).To(Succeed())
	g.Eventually(ready).WithTimeout(30 * time.Second).Should(Equal(corev1.ConditionTrue))
}
