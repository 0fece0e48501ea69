package controllers

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
	"github.com/openwmco/wmco/pkg/inventory"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// Hosts listed in windows-instances join; bad entries get an Event each and
// do not hold the good ones back; removing an entry removes its node and
// cleans its host.
func TestConfigMapHostsJoinAndLeave(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := startHosts(t, 2, simagent.Options{})
	startOperator(t, operatorOptions{maxParallel: 4})

	entry := func(h *simHost) string { return "username=Administrator\nport=" + strconv.Itoa(h.Host.Port()) }
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: wmcov1.InventoryConfigMapName, Namespace: testNamespace},
		Data: map[string]string{
			hosts[0].ip: entry(hosts[0]),
			hosts[1].ip: entry(hosts[1]),
			"bad_host":  "username=Administrator",
			"10.99.0.1": "user=Administrator",
		},
	}
	start := time.Now()
	g.Expect(k8sClient.Create(ctx, cm)).To(Succeed())
	defer func() { _ = k8sClient.Delete(ctx, cm) }()
	for _, h := range hosts {
		node := waitReady(t, inventory.InstanceName(h.ip), 90*time.Second)
		g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceConfigMap))
		g.Expect(node.Spec.Taints).To(ContainElement(corev1.Taint{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}))
	}
	t.Logf("2 ConfigMap hosts Ready in %s", time.Since(start).Round(time.Millisecond))

	g.Eventually(func(g Gomega) {
		evs, err := clientset.EventsV1().Events(testNamespace).List(ctx, metav1.ListOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		named := map[string]bool{}
		for _, e := range evs.Items {
			if e.Regarding.Name == wmcov1.InventoryConfigMapName && e.Reason == ReasonInvalidEntry {
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
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
	delete(cm.Data, hosts[0].ip)
	g.Expect(k8sClient.Update(ctx, cm)).To(Succeed())
	g.Eventually(func() bool {
		err := k8sClient.Get(ctx, client.ObjectKey{Name: hosts[0].name}, &corev1.Node{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(60*time.Second).Should(BeTrue(), "the removed host's Node is deleted")
	g.Eventually(func() bool {
		err := k8sClient.Get(ctx, client.ObjectKey{Name: inventory.InstanceName(hosts[0].ip)}, &wmcov1.WindowsInstance{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(60 * time.Second).Should(BeTrue())
	expectHostClean(g, hosts[0])
	waitReady(t, inventory.InstanceName(hosts[1].ip), 10*time.Second)

	g.Expect(k8sClient.Delete(ctx, cm)).To(Succeed())
	deleteAndWait(t, inventory.InstanceName(hosts[1].ip), 60*time.Second)
	expectHostClean(g, hosts[1])
}

// A Windows Machine with an address becomes a Ready Node; deleting the
// Machine cleans the host and deletes the Node.
func TestMachineBecomesNodeAndIsCleanedOnDelete(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := startHosts(t, 1, simagent.Options{})
	h := hosts[0]
	startOperator(t, operatorOptions{maxParallel: 2, machineSSHPort: int32(h.Host.Port())})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "openshift-machine-api"}}
	if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	m := &machinev1beta1.Machine{ObjectMeta: metav1.ObjectMeta{
		Name: "winworker-" + h.name, Namespace: ns.Name,
		Labels: map[string]string{wmcov1.MachineOSIDLabel: "Windows"},
	}}
	g.Expect(k8sClient.Create(ctx, m)).To(Succeed())
	m.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: h.ip}}
	g.Expect(k8sClient.Status().Update(ctx, m)).To(Succeed())

	var wiName string
	g.Eventually(func(g Gomega) {
		var list wmcov1.WindowsInstanceList
		g.Expect(k8sClient.List(ctx, &list, client.MatchingLabels{wmcov1.LabelSource: wmcov1.SourceMachine})).To(Succeed())
		found := false
		for _, wi := range list.Items {
			if wi.Annotations[wmcov1.AnnotationMachine] == ns.Name+"/"+m.Name {
				wiName, found = wi.Name, true
			}
		}
		g.Expect(found).To(BeTrue())
	}).WithTimeout(20 * time.Second).Should(Succeed())
	node := waitReady(t, wiName, 90*time.Second)
	g.Expect(node.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceMachine))

	g.Expect(k8sClient.Delete(ctx, m)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: wiName}, &wmcov1.WindowsInstance{}))
	}).WithTimeout(60 * time.Second).Should(BeTrue())
	g.Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKey{Name: node.Name}, &corev1.Node{}))).To(BeTrue(), "the Node is deleted")
	expectHostClean(g, h)
}

func containsWord(s, w string) bool { return strings.Contains(s, w) }
