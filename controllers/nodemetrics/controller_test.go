package nodemetrics_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/nodemetrics"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// The tests share one local control plane: see ctrltest.
func TestMain(m *testing.M) { os.Exit(ctrltest.Run(m)) }

// endpoints maps node name to the endpoint the operator's EndpointSlices
// list for it, checking that each Node appears once.
func endpoints(g Gomega) map[string]discoveryv1.Endpoint {
	var list discoveryv1.EndpointSliceList
	g.Expect(ctrltest.Client.List(context.Background(), &list, client.InNamespace(ctrltest.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: nodemetrics.ServiceName})).To(Succeed())
	out := map[string]discoveryv1.Endpoint{}
	for _, es := range list.Items {
		g.Expect(es.Labels).To(HaveKeyWithValue(discoveryv1.LabelManagedBy, nodemetrics.ManagedBy))
		for _, ep := range es.Endpoints {
			g.Expect(ep.NodeName).NotTo(BeNil())
			g.Expect(out).NotTo(HaveKey(*ep.NodeName))
			out[*ep.NodeName] = ep
		}
	}
	return out
}

func service(g Gomega) *corev1.Service {
	svc := &corev1.Service{}
	g.Expect(ctrltest.Client.Get(context.Background(), client.ObjectKey{Namespace: ctrltest.Namespace, Name: nodemetrics.ServiceName}, svc)).To(Succeed())
	return svc
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

func expectEndpoint(g Gomega, ep discoveryv1.Endpoint, node *corev1.Node, ready bool) {
	g.Expect(ep.Addresses).To(Equal([]string{internalIP(node)}))
	g.Expect(*ep.Conditions.Ready).To(Equal(ready), node.Name)
	g.Expect(ep.TargetRef).NotTo(BeNil())
	g.Expect(ep.TargetRef.Kind).To(Equal("Node"))
	g.Expect(ep.TargetRef.UID).To(Equal(node.UID))
}

// The operator keeps a headless Service for windows_exporter whose
// EndpointSlices follow the Windows Nodes: a host that joins is listed at
// its InternalIP, a host that goes down stays listed as not ready, a host
// that leaves is no longer listed. The Service and slices are made again
// when deleted.
func TestEndpointSlicesTrackWindowsNodes(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	hosts := ctrltest.StartHosts(t, 2, simagent.Options{})
	a, b := hosts[0], hosts[1]
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	// With no Windows Node: the Service, no endpoint.
	g.Eventually(func(g Gomega) {
		svc := service(g)
		g.Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
		g.Expect(svc.Spec.Selector).To(BeEmpty())
		g.Expect(svc.Spec.Ports).To(HaveLen(1))
		g.Expect(svc.Spec.Ports[0].Name).To(Equal("metrics"))
		g.Expect(svc.Spec.Ports[0].Port).To(Equal(int32(9182)))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(endpoints(g)).To(BeEmpty())

	// A joins, then B.
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(a))).To(Succeed())
	nodeA := ctrltest.WaitReady(t, a.Name, 90*time.Second)
	g.Expect(internalIP(nodeA)).NotTo(BeEmpty())
	g.Eventually(func(g Gomega) {
		eps := endpoints(g)
		g.Expect(eps).To(HaveLen(1))
		g.Expect(eps).To(HaveKey(a.Name))
		expectEndpoint(g, eps[a.Name], nodeA, true)
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(ctrltest.Client.Create(ctx, ctrltest.InstanceFor(b))).To(Succeed())
	nodeB := ctrltest.WaitReady(t, b.Name, 90*time.Second)
	g.Eventually(func(g Gomega) {
		eps := endpoints(g)
		g.Expect(eps).To(HaveLen(2))
		expectEndpoint(g, eps[a.Name], nodeA, true)
		expectEndpoint(g, eps[b.Name], nodeB, true)
	}).WithTimeout(30 * time.Second).Should(Succeed())
	// The kubelets' status reports change nothing listed: no writes.
	versions := func(g Gomega) map[string]string {
		var list discoveryv1.EndpointSliceList
		g.Expect(ctrltest.Client.List(ctx, &list, client.InNamespace(ctrltest.Namespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: nodemetrics.ServiceName})).To(Succeed())
		out := map[string]string{"service": service(g).ResourceVersion}
		for _, es := range list.Items {
			out[es.Name] = es.ResourceVersion
		}
		return out
	}
	steady := versions(g)
	g.Consistently(versions).WithTimeout(5 * time.Second).Should(Equal(steady))

	// The slices belong to the Service: deleting it takes them (the
	// garbage collector) and the operator makes both again.
	old := service(g)
	g.Expect(ctrltest.Client.Delete(ctx, old)).To(Succeed())
	g.Eventually(func(g Gomega) {
		svc := service(g)
		g.Expect(svc.UID).NotTo(Equal(old.UID))
		var list discoveryv1.EndpointSliceList
		g.Expect(ctrltest.Client.List(ctx, &list, client.InNamespace(ctrltest.Namespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: nodemetrics.ServiceName})).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
		for _, es := range list.Items {
			g.Expect(es.OwnerReferences).To(HaveLen(1))
			g.Expect(es.OwnerReferences[0].UID).To(Equal(svc.UID))
		}
		g.Expect(endpoints(g)).To(HaveLen(2))
	}).WithTimeout(60 * time.Second).Should(Succeed())

	// B powers off: its kubelet's Lease lapses, the node lifecycle
	// controller marks the Node not Ready, and so does its endpoint.
	g.Expect(b.Host.Close()).To(Succeed())
	g.Eventually(func(g Gomega) {
		eps := endpoints(g)
		g.Expect(eps).To(HaveLen(2))
		expectEndpoint(g, eps[b.Name], nodeB, false)
		expectEndpoint(g, eps[a.Name], nodeA, true)
	}).WithTimeout(60 * time.Second).Should(Succeed())

	// A leaves (its Node is deleted): only B is listed; B's Node goes
	// too: nothing is listed.
	ctrltest.DeleteAndWait(t, a.Name, 90*time.Second)
	g.Eventually(func(g Gomega) {
		eps := endpoints(g)
		g.Expect(eps).To(HaveLen(1))
		g.Expect(eps).To(HaveKey(b.Name))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(ctrltest.Client.Delete(ctx, nodeB)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(endpoints(g)).To(BeEmpty()) }).WithTimeout(30 * time.Second).Should(Succeed())
}

// The controller does its work with exactly the generated RBAC (its
// Services and EndpointSlices through a Role in the operator's namespace)
// and the manager's Node cache limited as main limits it; Nodes the
// operator did not make are never listed.
func TestNodeMetricsWithGeneratedRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	user := "nodemetrics-operator"
	// The Service is created under these rights, not left from a test
	// before.
	g.Expect(client.IgnoreNotFound(ctrltest.Client.Delete(ctx, nodemetrics.ServiceFor(ctrltest.Namespace)))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKey{Namespace: ctrltest.Namespace, Name: nodemetrics.ServiceName}, &corev1.Service{}))
	}).WithTimeout(10 * time.Second).Should(BeTrue())
	ctrltest.StartManagerWithGeneratedRBAC(t, user, func(mgr ctrl.Manager) error {
		return (&nodemetrics.Reconciler{Client: mgr.GetClient(), Namespace: ctrltest.Namespace}).SetupWithManager(mgr)
	})

	mk := func(name string, labels map[string]string, ip string) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		g.Expect(ctrltest.Client.Create(ctx, n)).To(Succeed())
		t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), n) })
		// The node lifecycle controller writes the new Node too: retry on
		// a conflict.
		g.Eventually(func(g Gomega) {
			g.Expect(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(n), n)).To(Succeed())
			n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
			g.Expect(ctrltest.Client.Status().Update(ctx, n)).To(Succeed())
		}).WithTimeout(10 * time.Second).Should(Succeed())
		return n
	}
	win := mk("rbac-win", map[string]string{wmcov1.LabelInstance: "rbac-win", "kubernetes.io/os": "windows"}, "198.51.100.7")
	mk("rbac-linux", map[string]string{"kubernetes.io/os": "linux"}, "198.51.100.8")
	g.Eventually(func(g Gomega) {
		eps := endpoints(g)
		g.Expect(eps).To(HaveLen(1))
		g.Expect(eps).To(HaveKey(win.Name))
		g.Expect(eps[win.Name].Addresses).To(Equal([]string{"198.51.100.7"}))
		g.Expect(service(g).Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// An admin's edit of either label of a slice is undone: the
	// service-name label (Prometheus finds the targets by it) and the
	// managed-by label (which takes the slice out of the operator's
	// cache, so that its create meets AlreadyExists).
	var slices discoveryv1.EndpointSliceList
	g.Expect(ctrltest.Client.List(ctx, &slices, client.InNamespace(ctrltest.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: nodemetrics.ServiceName})).To(Succeed())
	g.Expect(slices.Items).To(HaveLen(1))
	key := client.ObjectKeyFromObject(&slices.Items[0])
	for _, label := range []string{discoveryv1.LabelServiceName, discoveryv1.LabelManagedBy} {
		es := &discoveryv1.EndpointSlice{}
		g.Expect(ctrltest.Client.Get(ctx, key, es)).To(Succeed())
		edited := es.DeepCopy()
		edited.Labels[label] = "edited-by-hand"
		g.Expect(ctrltest.Client.Patch(ctx, edited, client.MergeFrom(es))).To(Succeed())
		g.Eventually(func(g Gomega) {
			got := &discoveryv1.EndpointSlice{}
			g.Expect(ctrltest.Client.Get(ctx, key, got)).To(Succeed())
			g.Expect(got.Labels).To(HaveKeyWithValue(discoveryv1.LabelServiceName, nodemetrics.ServiceName), label)
			g.Expect(got.Labels).To(HaveKeyWithValue(discoveryv1.LabelManagedBy, nodemetrics.ManagedBy), label)
			g.Expect(endpoints(g)).To(HaveKey(win.Name), label)
		}).WithTimeout(30*time.Second).Should(Succeed(), "the %s label is restored", label)
	}

	g.Expect(ctrltest.Client.Delete(ctx, win)).To(Succeed())
	g.Eventually(func(g Gomega) { g.Expect(endpoints(g)).To(BeEmpty()) }).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(apierrors.IsNotFound(ctrltest.Client.Get(ctx, client.ObjectKeyFromObject(win), &corev1.Node{}))).To(BeTrue())
}
