package userdata_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientevents "k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	userdatactl "github.com/openwmco/wmco/controllers/userdata"
	"github.com/openwmco/wmco/pkg/userdata"
	"github.com/openwmco/wmco/test/ctrltest"
)

// operatorReconciler is a Reconciler (AWS) that the test calls itself,
// as user holding only the generated RBAC, reading without a cache, with
// a recorder that keeps what it is told.
func operatorReconciler(t *testing.T, user string) (*userdatactl.Reconciler, *clientevents.FakeRecorder) {
	t.Helper()
	ctrltest.GrantGeneratedRBAC(t, user, user, ctrltest.Namespace)
	cfg, err := ctrltest.Cluster.UserConfig(user)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: ctrltest.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	rec := clientevents.NewFakeRecorder(10)
	return &userdatactl.Reconciler{
		Client: c, Recorder: rec, Namespace: ctrltest.Namespace, Platform: configv1.AWSPlatformType, Resync: time.Hour,
	}, rec
}

// The resync writes the Secret blind, again and again. A write of the
// content the Secret holds is a no-op in the API server: the
// resourceVersion and managed fields stay, so watchers of the Secret (the
// Machine API) hear nothing, and the operator reports nothing. A write
// that changes it (a hand edit undone) is reported; the first write of a
// process, which cannot tell, is not.
func TestUnchangedUserDataRewriteIsANoOp(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ensureNamespace(t, userdata.MachineAPINamespace)
	keyPEM, _ := newKey(t)
	createKey(t, keyPEM)
	r, rec := operatorReconciler(t, "userdata-noop")
	reconcileOnce := func() {
		t.Helper()
		res, err := r.Reconcile(ctx, ctrl.Request{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(res).To(Equal(ctrl.Result{RequeueAfter: time.Hour}))
	}
	updated := ContainSubstring(corev1.EventTypeNormal + " " + userdatactl.EventUserDataUpdated)
	machineAPI := ContainSubstring(userdata.MachineAPINamespace + "/" + userdata.SecretName)

	reconcileOnce()
	g.Expect(received(rec)).To(ContainElement(SatisfyAll(updated, machineAPI)), "the create is reported")
	created := userDataSecret(g, userdata.MachineAPINamespace)
	for range 3 {
		reconcileOnce()
		g.Expect(received(rec)).To(BeEmpty(), "an unchanged write is not reported")
	}
	s := userDataSecret(g, userdata.MachineAPINamespace)
	g.Expect(s.ResourceVersion).To(Equal(created.ResourceVersion))
	g.Expect(s.ManagedFields).To(Equal(created.ManagedFields))

	s.Data[userdata.SecretKey] = []byte("edited")
	g.Expect(ctrltest.Client.Update(ctx, s)).To(Succeed())
	reconcileOnce()
	g.Expect(received(rec)).To(ConsistOf(SatisfyAll(updated, machineAPI)), "the edit undone is reported")
	g.Expect(userDataSecret(g, userdata.MachineAPINamespace).Data).To(Equal(created.Data))

	fresh, freshRec := operatorReconciler(t, "userdata-noop-restarted")
	_, err := fresh.Reconcile(ctx, ctrl.Request{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(received(freshRec)).To(BeEmpty(), "a restarted operator's first write is not reported")
}

// received empties rec's Events (recorded synchronously) and returns
// them.
func received(rec *clientevents.FakeRecorder) []string {
	var out []string
	for {
		select {
		case ev := <-rec.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// A windows-user-data Secret of another type (a type cannot change) is
// not replaced: a Warning Event on the key Secret says so, and once an
// admin deletes that Secret the operator creates its own at the next
// resync.
func TestUserDataSecretOfAnotherTypeIsReported(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ensureNamespace(t, userdata.MachineAPINamespace)
	keyPEM, _ := newKey(t)
	createKey(t, keyPEM)
	wrong := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: userdata.MachineAPINamespace, Name: userdata.SecretName},
		Type:       "example.com/not-userdata",
		Data:       map[string][]byte{"other": []byte("x")},
	}
	g.Expect(ctrltest.Client.Create(ctx, wrong)).To(Succeed())
	startController(t, "userdata-wrongtype", time.Second)

	g.Eventually(func(g Gomega) {
		evs := events(g, userdatactl.EventUserDataRejected)
		g.Expect(evs).NotTo(BeEmpty())
		g.Expect(evs[0].Type).To(Equal(corev1.EventTypeWarning))
		g.Expect(evs[0].Message).To(ContainSubstring(userdata.MachineAPINamespace + "/" + userdata.SecretName))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	s := userDataSecret(g, userdata.MachineAPINamespace)
	g.Expect(s.Type).To(Equal(wrong.Type))
	g.Expect(s.Data).To(Equal(wrong.Data))

	g.Expect(ctrltest.Client.Delete(ctx, wrong)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := userDataSecret(g, userdata.MachineAPINamespace)
		g.Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
		g.Expect(s.Data).To(HaveKey(userdata.SecretKey))
	}).WithTimeout(30 * time.Second).Should(Succeed())
}

// A reconcile that meets a windows-user-data Secret it cannot replace
// (of another type, or immutable) reports it and ends without an error,
// so it is not retried with backoff but at the resync; the Secret stays as
// it is until deleted.
func TestUserDataSecretThatCannotBeReplacedWaitsForTheResync(t *testing.T) {
	ensureNamespace(t, userdata.MachineAPINamespace)
	keyPEM, _ := newKey(t)
	createKey(t, keyPEM)
	r, rec := operatorReconciler(t, "userdata-unreplaceable")
	for name, s := range map[string]*corev1.Secret{
		"another type": {Type: corev1.SecretTypeBasicAuth, Data: map[string][]byte{corev1.BasicAuthUsernameKey: []byte("x")}},
		"immutable":    {Data: map[string][]byte{userdata.SecretKey: []byte("frozen")}, Immutable: ptr.To(true)},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			s.Namespace, s.Name = userdata.MachineAPINamespace, userdata.SecretName
			g.Expect(ctrltest.Client.Create(ctx, s)).To(Succeed())
			t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), s) })
			res, err := r.Reconcile(ctx, ctrl.Request{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res).To(Equal(ctrl.Result{RequeueAfter: time.Hour}))
			g.Expect(received(rec)).To(ContainElement(SatisfyAll(
				ContainSubstring(corev1.EventTypeWarning+" "+userdatactl.EventUserDataRejected),
				ContainSubstring(userdata.MachineAPINamespace+"/"+userdata.SecretName))))
			got := userDataSecret(g, userdata.MachineAPINamespace)
			g.Expect(got.Type).To(Equal(s.Type))
			g.Expect(got.Data).To(Equal(s.Data), "kept as it is")
		})
	}
}
