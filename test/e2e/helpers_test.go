//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/openwmco/wmco/test/ctrltest"

	. "github.com/onsi/gomega"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/pkg/hostaddr"
	"github.com/openwmco/wmco/pkg/inventory"
)

// poll is how often Eventually looks again.
const poll = 500 * time.Millisecond

// csrReasonApproved is the reason of the Approved condition the operator
// puts on the CSRs it approves.
const csrReasonApproved = "WMCOApproved"

// inventoryName is the WindowsInstance the ConfigMap inventory creates for
// a host.
func inventoryName(h Host) string {
	addr, err := hostaddr.Normalize(h.Address)
	Expect(err).NotTo(HaveOccurred())
	return inventory.InstanceName(addr)
}

// directName is the WindowsInstance the suite creates itself for a host.
func directName(h Host) string {
	name := "e2e-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(h.Address))
	return strings.TrimRight(name[:min(len(name), 63)], "-")
}

// inventoryValue is a host's value in the windows-instances ConfigMap,
// with extra key=value lines.
func inventoryValue(h Host, extra ...string) string {
	lines := append([]string{"username=" + p.Username(), "port=" + strconv.Itoa(h.Port)}, extra...)
	return strings.Join(lines, "\n")
}

// setInventoryEntry writes one key of the windows-instances ConfigMap
// (value "" removes it), creating the ConfigMap when missing. Other keys,
// which may be hosts the suite does not own, are left alone.
func setInventoryEntry(ctx context.Context, key, value string) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm := &corev1.ConfigMap{}
		err := p.Client().Get(ctx, client.ObjectKey{Namespace: p.Namespace(), Name: wmcov1.InventoryConfigMapName}, cm)
		if apierrors.IsNotFound(err) {
			if value == "" {
				return nil
			}
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace(), Name: wmcov1.InventoryConfigMapName},
				Data:       map[string]string{key: value},
			}
			return p.Client().Create(ctx, cm)
		}
		if err != nil {
			return err
		}
		if value == "" {
			if _, ok := cm.Data[key]; !ok {
				return nil
			}
			delete(cm.Data, key)
		} else {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[key] = value
		}
		return p.Client().Update(ctx, cm)
	})
	Expect(err).NotTo(HaveOccurred(), "write %s of ConfigMap %s", key, wmcov1.InventoryConfigMapName)
}

// getInstance reads a WindowsInstance.
func getInstance(ctx context.Context, name string) (*wmcov1.WindowsInstance, error) {
	wi := &wmcov1.WindowsInstance{}
	return wi, p.Client().Get(ctx, client.ObjectKey{Name: name}, wi)
}

// waitInstanceReady waits until the instance is Ready and its Node is
// Ready, and returns the Node.
func waitInstanceReady(ctx context.Context, name string) *corev1.Node {
	node := &corev1.Node{}
	Eventually(ctx, func(g Gomega) {
		wi, err := getInstance(ctx, name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "WindowsInstance %s: phase %s: %s", name, wi.Status.Phase, wi.Status.Message)
		g.Expect(meta.IsStatusConditionTrue(wi.Status.Conditions, wmcov1.ConditionReady)).To(BeTrue())
		g.Expect(wi.Status.NodeName).NotTo(BeEmpty())
		g.Expect(p.Client().Get(ctx, client.ObjectKey{Name: wi.Status.NodeName}, node)).To(Succeed())
		g.Expect(nodeReady(node)).To(BeTrue(), "Node %s is not Ready", node.Name)
	}).WithTimeout(p.Timeouts().Join).WithPolling(poll).Should(Succeed())
	return node
}

// waitInstanceGone waits until the instance no longer exists.
func waitInstanceGone(ctx context.Context, name string) {
	Eventually(ctx, func(g Gomega) {
		wi, err := getInstance(ctx, name)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance %s still exists (phase %s: %s; err %v)", name, wi.Status.Phase, wi.Status.Message, err)
	}).WithTimeout(p.Timeouts().Remove).WithPolling(poll).Should(Succeed())
}

// expectNodeGone checks that the Node does not exist.
func expectNodeGone(ctx context.Context, name string) {
	err := p.Client().Get(ctx, client.ObjectKey{Name: name}, &corev1.Node{})
	Expect(apierrors.IsNotFound(err)).To(BeTrue(), "Node %s still exists (err %v)", name, err)
}

// waitHostClean waits until nothing the operator installs is left on the
// host.
func waitHostClean(ctx context.Context, h Host) {
	Eventually(ctx, func(g Gomega) { p.ExpectClean(g, h) }).
		WithTimeout(p.Timeouts().Remove).WithPolling(poll).Should(Succeed())
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// expectWindowsNode checks the labels and taint the operator and the
// kubelet put on a Windows Node of instance wi.
func expectWindowsNode(node *corev1.Node, instance string) {
	Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelOSID, "Windows"))
	Expect(node.Labels).To(HaveKey(wmcov1.LabelWorkerRole))
	Expect(node.Labels).To(HaveKeyWithValue(corev1.LabelOSStable, "windows"))
	Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, instance))
	Expect(node.Spec.Taints).To(ContainElement(And(
		HaveField("Key", "os"), HaveField("Value", "Windows"), HaveField("Effect", corev1.TaintEffectNoSchedule),
	)), "taints of Node %s", node.Name)
}

// expectKubeletCSRsApproved checks that the node's kubelet had a client
// certificate request and that every request naming the node (by
// requester or by subject) was approved by the operator.
func expectKubeletCSRsApproved(ctx context.Context, nodeName string) {
	Eventually(ctx, func(g Gomega) {
		list, err := p.Clientset().CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		var client int
		var names []string
		for _, csr := range list.Items {
			ours, err := ctrltest.CSRNamesNode(&csr, nodeName)
			g.Expect(err).NotTo(HaveOccurred())
			if !ours {
				continue
			}
			names = append(names, csr.Name)
			if csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName {
				client++
			}
			g.Expect(approvedReason(&csr)).To(Equal(csrReasonApproved), "CSR %s (%s) of Node %s", csr.Name, csr.Spec.SignerName, nodeName)
		}
		g.Expect(client).To(BeNumerically(">=", 1), "no kubelet client CSR of Node %s among %v", nodeName, names)
	}).WithTimeout(time.Minute).WithPolling(poll).Should(Succeed())
}

// approvedReason is the reason of the CSR's Approved condition, or a note
// saying how it was decided otherwise.
func approvedReason(csr *certificatesv1.CertificateSigningRequest) string {
	for _, c := range csr.Status.Conditions {
		switch {
		case c.Type == certificatesv1.CertificateApproved && c.Status == corev1.ConditionTrue:
			return c.Reason
		case c.Type == certificatesv1.CertificateDenied:
			return fmt.Sprintf("denied (%s: %s)", c.Reason, c.Message)
		}
	}
	return "pending"
}

// metricValue finds one series, e.g. `wmco_instances{phase="Ready"}`, in
// Prometheus text format.
func metricValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return v, err == nil
	}
	return 0, false
}
