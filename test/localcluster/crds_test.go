package localcluster_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openwmco/wmco/test/localcluster"
	"github.com/openwmco/wmco/test/openshiftcrds"
)

// After AwaitCRDsSettled, every CRD installed just before has been
// Established for the 2 s during which kube-apiserver holds creates of its
// objects: the condition the API server checks, on the times it stores.
func TestAwaitCRDsSettledOutlastsTheCreateHold(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(localcluster.InstallCRDs(ctx, cluster.Config, "config/crd/bases")).To(Succeed())
	g.Expect(localcluster.AwaitCRDsSettled(ctx, cluster.Config)).To(Succeed())

	cs, err := apiextensionsclient.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	list, err := cs.ApiextensionsV1().CustomResourceDefinitions().List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(list.Items).NotTo(BeEmpty())
	for _, crd := range list.Items {
		est := apihelpers.FindCRDCondition(&crd, apiextensionsv1.Established)
		g.Expect(est).NotTo(BeNil(), crd.Name)
		g.Expect(est.Status).To(Equal(apiextensionsv1.ConditionTrue), crd.Name)
		g.Expect(time.Since(est.LastTransitionTime.Time)).To(BeNumerically(">=", 2*time.Second), crd.Name)
	}
}

// A CRD file named twice, as openshiftcrds' Files and ClusterConfigFiles
// both name the Infrastructure CRD, installs: the second mention is not
// an update racing the API server's first writes of the new CRD's status
// (which failed a CI run with a conflict).
func TestInstallCRDFilesNamedTwice(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	infra, err := openshiftcrds.Path(openshiftcrds.Infrastructure)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(localcluster.InstallCRDFiles(ctx, cluster.Config, infra, infra)).To(Succeed())
	cs, err := apiextensionsclient.NewForConfig(cluster.Config)
	g.Expect(err).NotTo(HaveOccurred())
	crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "infrastructures.config.openshift.io", metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(crd.Generation).To(Equal(int64(1)))
}
