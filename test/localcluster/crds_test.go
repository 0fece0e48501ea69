package localcluster_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openwmco/wmco/test/localcluster"
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
		var est *apiextensionsv1.CustomResourceDefinitionCondition
		for i := range crd.Status.Conditions {
			if crd.Status.Conditions[i].Type == apiextensionsv1.Established {
				est = &crd.Status.Conditions[i]
			}
		}
		g.Expect(est).NotTo(BeNil(), crd.Name)
		g.Expect(est.Status).To(Equal(apiextensionsv1.ConditionTrue), crd.Name)
		g.Expect(time.Since(est.LastTransitionTime.Time)).To(BeNumerically(">=", 2*time.Second), crd.Name)
	}
}
