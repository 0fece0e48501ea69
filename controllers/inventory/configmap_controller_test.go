package inventory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/controllers/inventory"
	hostlist "github.com/openwmco/wmco/pkg/inventory"
	"github.com/openwmco/wmco/test/ctrltest"
)

// The ConfigMap tests each use a namespace of their own as the operator's
// namespace (so their ConfigMaps and Events stay apart) and host addresses
// no other test uses (WindowsInstances are cluster-scoped).

const (
	inventoryTimeout = 30 * time.Second
	inventoryPoll    = 100 * time.Millisecond
	// A syntactically valid host key for the inventory's hostKey field.
	inventoryHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHtestkeytestkeytestkeytestkeytestkeytest"
)

// inventoryNamespace creates a namespace for one test and deletes it when
// the test ends.
func inventoryNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "inventory-"}}
	if err := ctrltest.Client.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// inventoryStartConfigMapController runs the ConfigMap controller with
// namespace as the operator's namespace.
func inventoryStartConfigMapController(t *testing.T, namespace string) {
	t.Helper()
	ctrltest.StartManager(t, func(mgr ctrl.Manager) error {
		return (&inventory.ConfigMapReconciler{
			Client:   mgr.GetClient(),
			Config:   core.Config{Namespace: namespace},
			Recorder: mgr.GetEventRecorder("wmco-inventory"),
		}).SetupWithManager(mgr)
	})
}

// inventoryConfigMap creates the windows-instances ConfigMap in namespace
// and deletes it when the test ends.
func inventoryConfigMap(t *testing.T, namespace string, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: wmcov1.InventoryConfigMapName},
		Data:       data,
	}
	if err := ctrltest.Client.Create(t.Context(), cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctrltest.Client.Delete(context.Background(), cm) })
	return cm
}

// inventorySetData replaces the ConfigMap's data.
func inventorySetData(g *WithT, cm *corev1.ConfigMap, data map[string]string) {
	g.Eventually(func() error {
		if err := ctrltest.Client.Get(context.Background(), client.ObjectKeyFromObject(cm), cm); err != nil {
			return err
		}
		cm.Data = data
		return ctrltest.Client.Update(context.Background(), cm)
	}).WithTimeout(inventoryTimeout).Should(Succeed())
}

// inventoryDeleteInstancesAtEnd deletes the named WindowsInstances when the
// test ends, whoever created them.
func inventoryDeleteInstancesAtEnd(t *testing.T, names ...string) {
	t.Cleanup(func() {
		for _, name := range names {
			wi := &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: name}}
			_ = ctrltest.Client.Delete(context.Background(), wi)
		}
	})
}

// inventoryInstance gets a WindowsInstance straight from the API server.
func inventoryInstance(name string) (*wmcov1.WindowsInstance, error) {
	wi := &wmcov1.WindowsInstance{}
	err := ctrltest.Client.Get(context.Background(), client.ObjectKey{Name: name}, wi)
	return wi, err
}

// inventoryGone succeeds once the WindowsInstance name no longer exists.
func inventoryGone(name string) func() error {
	return func() error {
		_, err := inventoryInstance(name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			return fmt.Errorf("WindowsInstance %s still exists", name)
		}
		return err
	}
}

// inventoryEvents lists the Events of reason on the windows-instances
// ConfigMap in namespace, read from the API.
func inventoryEvents(g Gomega, namespace, reason string) []corev1.Event {
	list, err := ctrltest.Clientset.CoreV1().Events(namespace).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{
			"involvedObject.kind": "ConfigMap",
			"involvedObject.name": wmcov1.InventoryConfigMapName,
			"reason":              reason,
		}.String(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	return list.Items
}

// inventoryEventsFor keeps the Events whose message is about key.
func inventoryEventsFor(evs []corev1.Event, key string) []corev1.Event {
	var out []corev1.Event
	for _, ev := range evs {
		if strings.HasPrefix(ev.Message, `Entry "`+key+`" `) || strings.Contains(ev.Message, `entry "`+key+`"`) {
			out = append(out, ev)
		}
	}
	return out
}

func TestConfigMapCreatesUpdatesAndDeletesInstances(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryDeleteInstancesAtEnd(t, "10.77.1.1", "win-a.inventory.test")
	inventoryStartConfigMapController(t, ns)

	cm := inventoryConfigMap(t, ns, map[string]string{
		"10.77.1.1":            "username=Administrator",
		"win-a.inventory.test": "username=core\nport=2222\nnodeName=win-a\nhostKey=" + inventoryHostKey,
	})

	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance("10.77.1.1")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceConfigMap))
		g.Expect(wi.Spec).To(Equal(wmcov1.WindowsInstanceSpec{
			Address:  "10.77.1.1",
			Port:     wmcov1.DefaultSSHPort,
			Username: "Administrator",
			CredentialsSecretRef: wmcov1.SecretKeyReference{
				Name: wmcov1.DefaultCredentialsSecretName,
				Key:  wmcov1.DefaultCredentialsSecretKey,
			},
		}))

		wi, err = inventoryInstance("win-a.inventory.test")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Labels).To(HaveKeyWithValue(wmcov1.LabelSource, wmcov1.SourceConfigMap))
		g.Expect(wi.Spec.Address).To(Equal("win-a.inventory.test"))
		g.Expect(wi.Spec.Port).To(Equal(int32(2222)))
		g.Expect(wi.Spec.Username).To(Equal("core"))
		g.Expect(wi.Spec.NodeName).To(Equal("win-a"))
		g.Expect(wi.Spec.HostKey).To(Equal(inventoryHostKey))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// Status and the fields the inventory does not own survive its updates.
	wi, err := inventoryInstance("10.77.1.1")
	g.Expect(err).NotTo(HaveOccurred())
	uid := wi.UID
	wi.Status.Phase = wmcov1.PhaseConnecting
	wi.Status.Message = "set by the test"
	g.Expect(ctrltest.Client.Status().Update(t.Context(), wi)).To(Succeed())
	g.Expect(ctrltest.Client.Patch(t.Context(), wi, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"paused":true}}`)))).To(Succeed())

	inventorySetData(g, cm, map[string]string{
		"10.77.1.1":            "username=core\nport=2200",
		"win-a.inventory.test": "username=core\nport=2222\nnodeName=win-a\nhostKey=" + inventoryHostKey,
	})
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance("10.77.1.1")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.UID).To(Equal(uid))
		g.Expect(wi.Spec.Username).To(Equal("core"))
		g.Expect(wi.Spec.Port).To(Equal(int32(2200)))
		g.Expect(wi.Spec.Paused).To(BeTrue())
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseConnecting))
		g.Expect(wi.Status.Message).To(Equal("set by the test"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// Dropping the optional fields returns them to their defaults.
	inventorySetData(g, cm, map[string]string{
		"10.77.1.1":            "username=core\nport=2200",
		"win-a.inventory.test": "username=core",
	})
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance("win-a.inventory.test")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Spec.Port).To(Equal(int32(wmcov1.DefaultSSHPort)))
		g.Expect(wi.Spec.NodeName).To(BeEmpty())
		g.Expect(wi.Spec.HostKey).To(BeEmpty())
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// Removing an entry deletes its instance and only that one.
	inventorySetData(g, cm, map[string]string{"win-a.inventory.test": "username=core"})
	g.Eventually(inventoryGone("10.77.1.1")).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	_, err = inventoryInstance("win-a.inventory.test")
	g.Expect(err).NotTo(HaveOccurred())

	// An instance deleted by hand is put back.
	g.Expect(ctrltest.Client.Delete(t.Context(), &wmcov1.WindowsInstance{ObjectMeta: metav1.ObjectMeta{Name: "win-a.inventory.test"}})).To(Succeed())
	g.Eventually(func() error {
		_, err := inventoryInstance("win-a.inventory.test")
		return err
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
}

func TestConfigMapInvalidEntriesAreReportedAndGoodOnesApplied(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryDeleteInstancesAtEnd(t, "10.77.2.1", "win-good.inventory.test")
	inventoryStartConfigMapController(t, ns)

	inventoryConfigMap(t, ns, map[string]string{
		"10.77.2.1":               "username=Administrator",
		"win-good.inventory.test": "username=Administrator",
		"10.77.2.300":             "username=Administrator",
		"10.77.2.2":               "port=22",
		"10.77.2.3":               "username=",
		"10.77.2.4":               "username=Administrator\ncolour=blue",
		"win-dup.inventory.test":  "username=Administrator",
		"WIN-DUP.inventory.test":  "username=Administrator",
	})
	bad := map[string]string{
		"10.77.2.300":            "not a valid IPv4 address",
		"10.77.2.2":              "username is missing",
		"10.77.2.3":              "username is empty",
		"10.77.2.4":              `unknown key "colour"`,
		"win-dup.inventory.test": "listed more than once",
		"WIN-DUP.inventory.test": "listed more than once",
	}

	g.Eventually(func(g Gomega) {
		for _, name := range []string{"10.77.2.1", "win-good.inventory.test"} {
			_, err := inventoryInstance(name)
			g.Expect(err).NotTo(HaveOccurred(), name)
		}
		evs := inventoryEvents(g, ns, inventory.ReasonInvalidEntry)
		for key, reason := range bad {
			got := inventoryEventsFor(evs, key)
			g.Expect(got).To(HaveLen(1), "Events about %q", key)
			g.Expect(got[0].Type).To(Equal(corev1.EventTypeWarning))
			g.Expect(got[0].Message).To(ContainSubstring(reason))
		}
		g.Expect(evs).To(HaveLen(len(bad)))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// The Events are emitted in the reconcile that applied the good entries.
	for _, name := range []string{"10.77.2.2", "10.77.2.3", "10.77.2.4", "win-dup.inventory.test"} {
		_, err := inventoryInstance(name)
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance %s: %v", name, err)
	}
}

func TestConfigMapEntryTurningInvalidKeepsItsInstance(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryDeleteInstancesAtEnd(t, "10.77.3.1")
	inventoryStartConfigMapController(t, ns)

	cm := inventoryConfigMap(t, ns, map[string]string{"10.77.3.1": "username=Administrator"})
	var uid string
	g.Eventually(func() error {
		wi, err := inventoryInstance("10.77.3.1")
		uid = string(wi.UID)
		return err
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	inventorySetData(g, cm, map[string]string{"10.77.3.1": "username=Administrator\ncolour=blue"})
	g.Eventually(func(g Gomega) {
		g.Expect(inventoryEventsFor(inventoryEvents(g, ns, inventory.ReasonInvalidEntry), "10.77.3.1")).To(HaveLen(1))
		kept := inventoryEventsFor(inventoryEvents(g, ns, inventory.ReasonInstanceKept), "10.77.3.1")
		g.Expect(kept).To(HaveLen(1))
		g.Expect(kept[0].Type).To(Equal(corev1.EventTypeWarning))
		g.Expect(kept[0].Message).To(ContainSubstring("not deprovisioned"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	// The Event is emitted where the instance would have been deleted.
	wi, err := inventoryInstance("10.77.3.1")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(wi.UID)).To(Equal(uid))
	g.Expect(wi.DeletionTimestamp).To(BeNil())

	// Fixed, the entry applies to the same instance; removed, it goes.
	inventorySetData(g, cm, map[string]string{"10.77.3.1": "username=core"})
	g.Eventually(func(g Gomega) {
		wi, err := inventoryInstance("10.77.3.1")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(string(wi.UID)).To(Equal(uid))
		g.Expect(wi.Spec.Username).To(Equal("core"))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	inventorySetData(g, cm, map[string]string{})
	g.Eventually(inventoryGone("10.77.3.1")).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
}

func TestConfigMapLeavesUserInstancesAlone(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryDeleteInstancesAtEnd(t, "10.77.4.1", "inventory-user-host", "10.77.4.2", "10.77.4.3")

	// Created by a user: one under the name the inventory would use, one
	// under another name for a host the inventory also lists.
	sameName := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "10.77.4.1"},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "10.77.4.1", Username: "alice"},
	}
	sameHost := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "inventory-user-host"},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "10.77.4.2", Username: "alice"},
	}
	g.Expect(ctrltest.Client.Create(t.Context(), sameName)).To(Succeed())
	g.Expect(ctrltest.Client.Create(t.Context(), sameHost)).To(Succeed())
	inventoryStartConfigMapController(t, ns)

	cm := inventoryConfigMap(t, ns, map[string]string{
		"10.77.4.1": "username=Administrator",
		"10.77.4.2": "username=Administrator",
		"10.77.4.3": "username=Administrator",
	})
	g.Eventually(func(g Gomega) {
		_, err := inventoryInstance("10.77.4.3")
		g.Expect(err).NotTo(HaveOccurred())
		evs := inventoryEvents(g, ns, inventory.ReasonHostConflict)
		for _, key := range []string{"10.77.4.1", "10.77.4.2"} {
			got := inventoryEventsFor(evs, key)
			g.Expect(got).To(HaveLen(1), "HostConflict Events about %q", key)
			g.Expect(got[0].Type).To(Equal(corev1.EventTypeWarning))
		}
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	for _, want := range []*wmcov1.WindowsInstance{sameName, sameHost} {
		got, err := inventoryInstance(want.Name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.ResourceVersion).To(Equal(want.ResourceVersion), "WindowsInstance %s was changed", want.Name)
		g.Expect(got.Labels).NotTo(HaveKey(wmcov1.LabelSource))
	}
	_, err := inventoryInstance("10.77.4.2")
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance 10.77.4.2: %v", err)

	// Deleting the ConfigMap deletes what it created and nothing else.
	g.Expect(ctrltest.Client.Delete(t.Context(), cm)).To(Succeed())
	g.Eventually(inventoryGone("10.77.4.3")).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	for _, want := range []*wmcov1.WindowsInstance{sameName, sameHost} {
		got, err := inventoryInstance(want.Name)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(got.DeletionTimestamp).To(BeNil())
	}
}

func TestConfigMapDeletedOrMissingEmptiesTheInventory(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryDeleteInstancesAtEnd(t, "10.77.5.1", "10.77.5.2", "10.77.5.9")

	// Left over from an earlier inventory while the operator was down.
	stale := &wmcov1.WindowsInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "10.77.5.9", Labels: map[string]string{wmcov1.LabelSource: wmcov1.SourceConfigMap}},
		Spec:       wmcov1.WindowsInstanceSpec{Address: "10.77.5.9", Username: "Administrator"},
	}
	g.Expect(ctrltest.Client.Create(t.Context(), stale)).To(Succeed())
	inventoryStartConfigMapController(t, ns)
	g.Eventually(inventoryGone("10.77.5.9")).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	cm := inventoryConfigMap(t, ns, map[string]string{
		"10.77.5.1": "username=Administrator",
		"10.77.5.2": "username=Administrator",
	})
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"10.77.5.1", "10.77.5.2"} {
			_, err := inventoryInstance(name)
			g.Expect(err).NotTo(HaveOccurred(), name)
		}
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	g.Expect(ctrltest.Client.Delete(t.Context(), cm)).To(Succeed())
	for _, name := range []string{"10.77.5.1", "10.77.5.2"} {
		g.Eventually(inventoryGone(name)).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	}
}

func TestConfigMapReconcilerSetupNeedsItsDependencies(t *testing.T) {
	ctrltest.StartManager(t, func(mgr ctrl.Manager) error {
		g := NewWithT(t)
		rec := mgr.GetEventRecorder("wmco-inventory")
		for _, r := range []*inventory.ConfigMapReconciler{
			{Config: core.Config{Namespace: "ns"}, Recorder: rec},
			{Client: mgr.GetClient(), Config: core.Config{Namespace: "ns"}},
			{Client: mgr.GetClient(), Recorder: rec},
		} {
			g.Expect(r.SetupWithManager(mgr)).NotTo(Succeed())
		}
		return nil
	})
}

// The inventory controllers run as a user holding only the generated
// config/rbac/role.yaml (its Role bound in the test's namespace): the
// ConfigMap is listed and watched by name, Events are written with the
// events.k8s.io API, Machines are watched cluster-wide.
func TestConfigMapAndMachineControllersRunWithTheGeneratedRBAC(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	user := "inventory-rbac-" + ns
	ctrltest.GrantGeneratedRBAC(t, user, user, ns)
	cfg, err := ctrltest.Cluster.UserConfig(user)
	g.Expect(err).NotTo(HaveOccurred())
	inventoryDeleteInstancesAtEnd(t, "10.77.6.1")
	ctrltest.StartManagerAs(t, cfg, func(mgr ctrl.Manager) error {
		if err := (&inventory.ConfigMapReconciler{
			Client:   mgr.GetClient(),
			Config:   core.Config{Namespace: ns},
			Recorder: mgr.GetEventRecorder("wmco-inventory"),
		}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&inventory.MachineReconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("wmco-machine-controller"), Port: 2222,
			AccessTimeout: time.Second,
		}).SetupWithManager(mgr)
	})

	// Another ConfigMap of the namespace stays out of reach.
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "not-the-inventory"}}
	g.Expect(ctrltest.Client.Create(t.Context(), other)).To(Succeed())
	restricted, err := client.New(cfg, client.Options{Scheme: ctrltest.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	err = restricted.Get(t.Context(), client.ObjectKeyFromObject(other), &corev1.ConfigMap{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "get another ConfigMap: %v", err)

	inventoryConfigMap(t, ns, map[string]string{
		"10.77.6.1": "username=Administrator",
		"10.77.6.2": "user=Administrator",
	})
	m := inventoryMachine(t, ns, "rbac", inventoryWindowsLabels(), inventoryInternalIP("10.78.6.1"))
	g.Eventually(func(g Gomega) {
		_, err := inventoryInstance("10.77.6.1")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(inventoryEventsFor(inventoryEvents(g, ns, inventory.ReasonInvalidEntry), "10.77.6.2")).To(HaveLen(1))
		wi, err := inventoryInstance(inventory.MachineInstanceName(ns, m.Name))
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(wi.Spec.Port).To(Equal(int32(2222)))
		// The hook, a condition (status) and an Event on the Machine.
		got := &machinev1beta1.Machine{}
		g.Expect(ctrltest.Client.Get(t.Context(), client.ObjectKeyFromObject(m), got)).To(Succeed())
		g.Expect(got.Spec.LifecycleHooks.PreDrain).To(ContainElement(inventory.MachineDeconfigureHook))
		g.Expect(got.Status.Conditions).To(ContainElement(HaveField("Type", inventory.MachineConditionAccessible)))
		g.Expect(inventoryMachineEvents(g, ns, m.Name, inventory.EventMachineNotAccessible)).To(HaveLen(1))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
}

// Hosts the operator never connects to are invalid entries: each gets an
// InvalidEntry Event naming it and saying why, and no WindowsInstance, so
// nothing ever dials it; the good entry beside them is applied. (IPv6
// hosts such as fe80::1 cannot be ConfigMap keys at all: the API server
// refuses the colons.)
func TestConfigMapRefusesAddressesTheOperatorNeverConnectsTo(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	refused := map[string]string{
		"169.254.169.254": "address 169.254.169.254 is refused: it is the cloud instance metadata address",
		"169.254.7.7":     "address 169.254.7.7 is refused: it is a link-local address (169.254.0.0/16)",
		"224.0.0.1":       "address 224.0.0.1 is refused: it is a multicast address (224.0.0.0/4)",
		"0.0.0.0":         "address 0.0.0.0 is refused: it is the unspecified address",
		"255.255.255.255": "address 255.255.255.255 is refused: it is the IPv4 broadcast address",
	}
	names := []string{"10.77.7.1"}
	for key := range refused {
		names = append(names, key)
	}
	inventoryDeleteInstancesAtEnd(t, names...)
	inventoryStartConfigMapController(t, ns)

	err := ctrltest.Client.Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ipv6-keys"},
		Data:       map[string]string{"fe80::1": "username=Administrator"},
	})
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "a ConfigMap key with colons: %v", err)

	data := map[string]string{"10.77.7.1": "username=Administrator"}
	for key := range refused {
		data[key] = "username=Administrator"
	}
	inventoryConfigMap(t, ns, data)

	g.Eventually(func(g Gomega) {
		_, err := inventoryInstance("10.77.7.1")
		g.Expect(err).NotTo(HaveOccurred())
		evs := inventoryEvents(g, ns, inventory.ReasonInvalidEntry)
		for key, reason := range refused {
			got := inventoryEventsFor(evs, key)
			g.Expect(got).To(HaveLen(1), "Events about %q", key)
			g.Expect(got[0].Type).To(Equal(corev1.EventTypeWarning))
			g.Expect(got[0].Message).To(HavePrefix(`Entry "` + key + `" is invalid and ignored: ` + reason))
		}
		g.Expect(evs).To(HaveLen(len(refused)))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())

	// The Events are emitted in the reconcile that applied the good entry:
	// by now no instance of a refused host exists.
	for key := range refused {
		_, err := inventoryInstance(hostlist.InstanceName(key))
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance for %s: %v", key, err)
	}
}

// A value of 64 KiB makes one InvalidEntry Event, which names the entry
// and quotes a bounded prefix of the value: an Event whose note passes the
// API server's 1,024 characters would be rejected and the user would see
// nothing. The good entries are applied.
func TestConfigMapHugeValueMakesOneEvent(t *testing.T) {
	g := NewWithT(t)
	ns := inventoryNamespace(t)
	inventoryDeleteInstancesAtEnd(t, "10.77.8.1", "10.77.8.2", "10.77.8.3")
	inventoryStartConfigMapController(t, ns)

	huge := "username=" + strings.Repeat("x", 64<<10)
	inventoryConfigMap(t, ns, map[string]string{
		"10.77.8.1": "username=Administrator",
		"10.77.8.2": huge,
		"10.77.8.3": "username=core",
	})
	g.Eventually(func(g Gomega) {
		for _, name := range []string{"10.77.8.1", "10.77.8.3"} {
			_, err := inventoryInstance(name)
			g.Expect(err).NotTo(HaveOccurred(), name)
		}
		evs := inventoryEvents(g, ns, inventory.ReasonInvalidEntry)
		g.Expect(evs).To(HaveLen(1))
		g.Expect(inventoryEventsFor(evs, "10.77.8.2")).To(HaveLen(1))
		g.Expect(evs[0].Type).To(Equal(corev1.EventTypeWarning))
		g.Expect(evs[0].Message).To(ContainSubstring(`username "xxxx`))
		g.Expect(evs[0].Message).To(ContainSubstring("(65536 bytes) is longer than 256 characters"))
		g.Expect(len(evs[0].Message)).To(BeNumerically("<=", core.MaxEventNoteBytes))
	}).WithTimeout(inventoryTimeout).WithPolling(inventoryPoll).Should(Succeed())
	_, err := inventoryInstance("10.77.8.2")
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "WindowsInstance 10.77.8.2: %v", err)
}
