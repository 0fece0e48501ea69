package localcluster_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/openwmco/wmco/test/localcluster"
)

// reportedOld is a version hack/setup-envtest.sh links kube-apiserver as
// by default.
const reportedOld = "v1.36.9"

// A control plane started with Options.APIServerVersion reports that
// version; RestartAPIServer brings it up reporting another on the same
// address, with the objects, the clients made before, their watches and
// kube-controller-manager all working again.
func TestRestartAPIServerChangesReportedVersion(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	c, err := localcluster.Start(ctx, localcluster.Options{APIServerVersion: reportedOld})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = c.Stop() })
	g.Expect(c.APIServerVersion()).To(Equal(reportedOld))

	cs := clientset(t, c.Config)
	v, err := cs.Discovery().ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v.GitVersion).To(Equal(reportedOld))
	g.Expect(v.Minor).To(Equal("36"))

	before, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "before-restart"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	// An informer started before the restart must see objects created
	// after it: its watch ends with the old process and is re-established.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	cms := factory.Core().V1().ConfigMaps()
	inf := cms.Informer()
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	g.Expect(cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)).To(BeTrue())

	host := c.Host
	g.Expect(c.RestartAPIServer(ctx, "")).To(Succeed())
	g.Expect(c.Host).To(Equal(host))
	g.Expect(c.APIServerVersion()).To(BeEmpty())

	v, err = cs.Discovery().ServerVersion()
	g.Expect(err).NotTo(HaveOccurred(), "the client made before the restart works after it")
	g.Expect(v.GitVersion).To(Equal(localcluster.DefaultKubernetesVersion))

	got, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "before-restart", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.UID).To(Equal(before.UID))
	g.Expect(got.Data).To(Equal(before.Data))

	_, err = cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() error {
		_, err := cms.Lister().ConfigMaps("default").Get("after-restart")
		return err
	}).WithTimeout(60*time.Second).WithPolling(100*time.Millisecond).Should(Succeed(), "the informer's watch resumes")

	// kube-controller-manager kept running and reconnected: node IPAM
	// allocates a CIDR to a Node created after the restart.
	_, err = cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		n, err := cs.CoreV1().Nodes().Get(ctx, "after-restart", metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n.Spec.PodCIDR).NotTo(BeEmpty())
	}).WithTimeout(60 * time.Second).Should(Succeed())

	// A newer version than the build's works too.
	g.Expect(c.RestartAPIServer(ctx, "v1.38.0")).To(Succeed())
	v, err = cs.Discovery().ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v.GitVersion).To(Equal("v1.38.0"))
}

// A version no binary was linked for is refused before anything stops.
func TestRestartAPIServerWithoutBinaryLeavesServerRunning(t *testing.T) {
	g := NewWithT(t)
	err := cluster.RestartAPIServer(t.Context(), "v1.99.0")
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(And(ContainSubstring("kube-apiserver-as-v1.99.0"), ContainSubstring("make setup-envtest")))
	g.Expect(strings.Contains(err.Error(), "APISERVER_REPORTED_VERSIONS")).To(BeTrue())

	v, err := clientset(t, cluster.Config).Discovery().ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(v.GitVersion).To(Equal(localcluster.DefaultKubernetesVersion))
	g.Expect(cluster.APIServerVersion()).To(BeEmpty())
}
