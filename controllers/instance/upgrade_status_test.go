package instance_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers/core"
	"github.com/openwmco/wmco/pkg/payload"
	"github.com/openwmco/wmco/test/ctrltest"
	"github.com/openwmco/wmco/test/winsim"
)

// A payload transfer that fails during an upgrade (the host's disk fills
// up as the new kubelet is uploaded) shows in the instance's message,
// after the upgrade's step; with room on the disk again the upgrade goes
// on.
func TestUpgradeShowsAFailedPayloadTransfer(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h, base, next := joinedBeforeKubeletUpgrade(t, false)

	// Every status the instance goes through: the failure's is replaced
	// at once by the next reconcile's (its preflight finds the disk full).
	wc, err := client.NewWithWatch(ctrltest.Cluster.Config, client.Options{Scheme: ctrltest.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(ctx, &wmcov1.WindowsInstanceList{}, client.MatchingFields{"metadata.name": h.Name})
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	disk := h.Host.Disk()
	quota := disk.Quota()
	dir := strings.ToLower(payload.HostDir(next.Manifest.Version) + `\`)
	var once sync.Once
	defer h.Host.Observe(winsim.Observer{FileCreated: func(p string) {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(p, "/", `\`)), dir) {
			once.Do(disk.Fill)
		}
	}})()

	ctrltest.StartOperator(t, ctrltest.OperatorOptions{
		Payloads: payload.NewCatalog(base, next), ServerVersion: core.StaticVersion("v1.37.3"),
	})
	var seen string
	g.Eventually(func() bool {
		for {
			select {
			case e := <-w.ResultChan():
				wi, ok := e.Object.(*wmcov1.WindowsInstance)
				if e.Type == watch.Modified && ok && wi.Status.Phase == wmcov1.PhaseUpgrading &&
					strings.Contains(wi.Status.Message, "disk full writing") {
					seen = wi.Status.Message
					return true
				}
			default:
				return false
			}
		}
	}).WithTimeout(time.Minute).WithPolling(50*time.Millisecond).Should(BeTrue(), "the failed upload in the upgrading instance's message")
	t.Logf("message: %s", seen)
	g.Expect(seen).To(HavePrefix("applying payload " + next.Manifest.Version))

	disk.SetQuota(quota)
	// The failed preflight is checked again after 30 s; a change of the
	// instance's annotations brings it at once.
	g.Expect(ctrltest.UpdateInstance(ctx, h.Name, func(wi *wmcov1.WindowsInstance) {
		wi.Annotations = map[string]string{"test.wmco.io/poke": "disk freed"}
	})).To(Succeed())
	waitOnPayload(t, h.Name, next.Manifest.Version, "v1.37.3", 2*time.Minute)
	deleteAll(t, []*ctrltest.SimHost{h})
}
