package controllers_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/inventory"
	hostlist "github.com/openwmco/wmco/pkg/inventory"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Hosts listed in windows-instances join; bad entries get an Event each and
// do not hold the good ones back; removing an entry removes its node and
// cleans its host.
func TestConfigMapHostsJoinAndLeave(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 2, simagent.Options{})
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 4})

	entry := func(h *ctrltest.SimHost) string { return "username=Administrator\nport=" + strconv.Itoa(h.Host.Port()) }
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: wmcov1.InventoryConfigMapName, Namespace: ctrltest.Namespace},
		Data: map[string]string{
			hosts[0].IP: entry(hosts[0]),
			hosts[1].IP: entry(hosts[1]),
			"bad_host":  "username=Administrator",
			"10.99.0.1": "user=Administrator",
		},
	}
	start := time.Now()
	g.Expect(ctrltest.Client.Create(ctx, cm)).To(Succeed())
	defer func() { _ = ctrltest.Client.Delete(ctx, cm) }()
	for _, h := range hosts {
		node := ctrltest.WaitReady(t, hostlist.InstanceName(h.IP), 90*time.Second)
		g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceConfigMap))
		g.Expect(node.Spec.Taints).To(ContainElement(corev1.Taint{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}))
	}
	t.Logf("2 ConfigMap hosts Ready in %s", time.Since(start).Round(time.Millisecond))

	g.Eventually(func(g Gomega) {
		evs, err := ctrltest.Clientset.EventsV1().Events(ctrltest.Namespace).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		named := map[string]bool{}
		for _, e := range evs.Items {
			if e.Regarding.Name == wmcov1.InventoryConfigMapName && e.Reason == inventory.ReasonInvalidEntry {
				for _, key := range []string{"bad_host", "10.99.0.1"} {
					if containsWord(e.Note, key) {
						named[key] = true
					}
				}
			}
		}
		g.Expect(named).To(HaveLen(2), "one InvalidEntry Event per bad entry, naming it")
	}).WithTimeout(20 * time.Second).Should(Succeed())

	// Remove the first host from the inventory.
	g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
	delete(cm.Data, hosts[0].IP)
	g.Expect(ctrltest.Client.Update(ctx, cm)).To(Succeed())
	g.Eventually(func() bool {
		err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: hosts[0].Name}, &corev1.Node{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(60*time.Second).Should(BeTrue(), "the removed host's Node is deleted")
	g.Eventually(func() bool {
		err := ctrltest.Client.Get(ctx, client.ObjectKey{Name: hostlist.InstanceName(hosts[0].IP)}, &wmcov1.WindowsInstance{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(60 * time.Second).Should(BeTrue())
	ctrltest.ExpectHostClean(g, hosts[0])
	ctrltest.WaitReady(t, hostlist.InstanceName(hosts[1].IP), 10*time.Second)

	g.Expect(ctrltest.Client.Delete(ctx, cm)).To(Succeed())
	ctrltest.DeleteAndWait(t, hostlist.InstanceName(hosts[1].IP), 60*time.Second)
	ctrltest.ExpectHostClean(g, hosts[1])
}

// A Windows Machine with an address becomes a Ready Node; deleting the
// Machine cleans the host and deletes the Node.
func TestMachineBecomesNodeAndIsCleanedOnDelete(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 1, simagent.Options{})
	h := hosts[0]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2, MachineSSHPort: int32(h.Host.Port())})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "openshift-machine-api"}}
	if err := ctrltest.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	m := &machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{
		Name: "winworker-" + h.Name, Namespace: ns.Name,
		Labels: map[string]string{wmcov1.MachineOSIDLabel: "Windows"},
	}}
	g.Expect(ctrltest.Client.Create(ctx, m)).To(Succeed())
	m.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: h.IP}}
	g.Expect(ctrltest.Client.Status().Update(ctx, m)).To(Succeed())

	var wiName string
	g.Eventually(func(g Gomega) {
		var list wmcov1.WindowsInstanceList
		g.Expect(ctrltest.Client.List(ctx, &list, client.MatchingLabels{wmcov1.LabelSource: wmcov1.SourceMachine})).To(Succeed())
		found := false
		for _, wi := range list.Items {
			if wi.Annotations[wmcov1.AnnotationMachine] == ns.Name+"/"+m.Name {
				wiName, found = wi.Name, true
			}
		}
		g.Expect(found).To(BeTrue())
	}).WithTimeout(20 * time.Second).Should(Succeed())
	node := ctrltest.WaitReady(t, wiName, 90*time.Second)
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceMachine))

	g.Expect(ctrltest.Client.Delete(ctx, m)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: wiName}, &wmcov1.WindowsInstance{}))
	}).WithTimeout(60 * time.Second).Should(BeTrue())
	g.Expect(apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Name: node.Name}, &corev1.Node{}))).To(BeTrue(), "the Node is deleted")
	ctrltest.ExpectHostClean(g, h)
}

func containsWord(s, w string) bool { return strings.Contains(s, w) }
