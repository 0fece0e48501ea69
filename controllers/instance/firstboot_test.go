package instance_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/instance"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// machineInstanceFor is the instance of a simulated host as the Machine
// inventory labels it (no Machine named: the inventory leaves it alone).
func machineInstanceFor(h *ctrltest.SimHost) *wmcov1.WindowsInstance {
	wi := ctrltest.InstanceFor(h)
	wi.Labels = map[string]string{wmcov1.LabelSource: wmcov1.SourceMachine}
	return wi
}

// A Machine's host that refuses the key before the operator ever reached
// it may still be in its first boot (sshd runs before the key is
// written): KeyNotAuthorizedYet, not terminal, retried with backoff, and
// the host joins once the key is there, with no change to the Secret or
// the spec. The same refusal from a host reached before, or from a host
// an admin listed, stays terminal (TestWrongKeyIsTerminalUntilTheSecretChanges).
func TestMachineHostRefusingTheKeyAtFirstBootIsRetried(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	h.Host.RevokeKeys("Administrator")
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	g.Expect(ctrltest.Client.Create(ctx, machineInstanceFor(h))).To(Succeed())
	g.Eventually(func(g Gomega) {
		wi := getInstance(g, h.Name)
		c := meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionReachable)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(instance.ReasonKeyNotAuthorizedYet))
		g.Expect(c.Message).To(And(ContainSubstring("first boot authorises the key from the windows-user-data Secret"), ContainSubstring("retried")))
		g.Expect(meta.FindStatusCondition(wi.Status.Conditions, wmcov1.ConditionStalled)).To(BeNil(), "not terminal")
		g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseConnecting))
	}).WithTimeout(30 * time.Second).Should(Succeed())

	// The first boot writes the key: the next retry gets in.
	h.Host.AuthorizeKey("Administrator", ctrltest.Signer.PublicKey())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	wi := getInstance(g, h.Name)
	g.Expect(wi.Status.AuthorizedKeyFingerprint).To(Equal(ssh.FingerprintSHA256(ctrltest.Signer.PublicKey())))
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}

// A Machine booted from the userData of a key rotated away meanwhile
// accepts only that earlier key. While the key history keeps it, the
// operator logs in with it and rotates the host to the Secret's key, as
// any host rotated in place: the host joins, accepts the new key only,
// and the earlier key leaves the history once nobody needs it.
func TestMachineBootedWithAnEarlierKeyIsRotated(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := ctrltest.StartHosts(t, 1, simagent.Options{})[0]
	earlier, current := newSSHKey(t), newSSHKey(t)
	earlierFP := ssh.FingerprintSHA256(earlier.Signer.PublicKey())
	ref := keySecret(t, "firstboot-key-"+h.Name, current)
	// The earlier key, kept from the logins made with it.
	dataKey := instance.HistoryDataKey(earlierFP)
	history := client.ObjectKey{Namespace: ctrltest.Namespace, Name: instance.KeyHistorySecretName}
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sec := &corev1.Secret{}
		err := ctrltest.Client.Get(ctx, history, sec)
		if apierrors.IsNotFound(err) {
			return ctrltest.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: history.Namespace, Name: history.Name},
				Data: map[string][]byte{dataKey: earlier.PEM}})
		}
		if err != nil {
			return err
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[dataKey] = earlier.PEM
		return ctrltest.Client.Update(ctx, sec)
	})).To(Succeed())
	t.Cleanup(func() {
		_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			sec := &corev1.Secret{}
			if err := ctrltest.Client.Get(context.Background(), history, sec); err != nil {
				return client.IgnoreNotFound(err)
			}
			delete(sec.Data, dataKey)
			return ctrltest.Client.Update(context.Background(), sec)
		})
	})
	h.Host.RevokeKeys("Administrator")
	h.Host.AuthorizeKey("Administrator", earlier.Signer.PublicKey())
	ctrltest.StartOperator(t, ctrltest.OperatorOptions{MaxParallel: 2})

	wi := machineInstanceFor(h)
	wi.Spec.CredentialsSecretRef = ref
	g.Expect(ctrltest.Client.Create(ctx, wi)).To(Succeed())
	ctrltest.WaitReady(t, h.Name, 90*time.Second)
	wi = getInstance(g, h.Name)
	g.Expect(wi.Status.AuthorizedKeyFingerprint).To(Equal(ssh.FingerprintSHA256(current.Signer.PublicKey())))
	g.Expect(instanceEvents(g, h.Name)).To(ContainElement(HavePrefix(instance.EventKeyRotated + ": ")))
	g.Expect(login(ctx, h, current)).To(Succeed())
	g.Expect(login(ctx, h, earlier)).NotTo(Succeed(), "the earlier key was removed from the host")
	sec := &corev1.Secret{}
	g.Expect(ctrltest.Client.Get(ctx, history, sec)).To(Succeed())
	g.Expect(sec.Data).NotTo(HaveKey(dataKey), "no instance needs the earlier key any more")
	ctrltest.DeleteAndWait(t, h.Name, 60*time.Second)
}
