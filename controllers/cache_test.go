package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/controllers"
)

// The cache keeps what the controllers read of a Node (labels, taints,
// conditions, addresses, the kubelet's version) and drops managed fields,
// the last-applied annotation and the status fields nobody reads.
func TestCacheTransform(t *testing.T) {
	g := NewWithT(t)
	meta := metav1.ObjectMeta{
		Name:          "win-1",
		Labels:        map[string]string{wmcov1.LabelInstance: "win-1"},
		Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: "{}", "keep": "me"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
	}
	node := &corev1.Node{
		ObjectMeta: meta,
		Spec:       corev1.NodeSpec{Taints: []corev1.Taint{{Key: "os", Value: "Windows", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Conditions:   []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Addresses:    []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.0.2.1"}},
			NodeInfo:     corev1.NodeSystemInfo{KubeletVersion: "v1.37.2"},
			Images:       []corev1.ContainerImage{{Names: []string{"pause"}, SizeBytes: 1}},
			Capacity:     corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			VolumesInUse: []corev1.UniqueVolumeName{"v"},
		},
	}
	out, err := controllers.CacheTransform(node)
	g.Expect(err).NotTo(HaveOccurred())
	n := out.(*corev1.Node)
	g.Expect(n.ManagedFields).To(BeNil())
	g.Expect(n.Annotations).To(Equal(map[string]string{"keep": "me"}))
	g.Expect(n.Labels).To(HaveKeyWithValue(wmcov1.LabelInstance, "win-1"))
	g.Expect(n.Spec.Taints).To(HaveLen(1))
	g.Expect(n.Status.Conditions).To(HaveLen(1))
	g.Expect(n.Status.Addresses).To(HaveLen(1))
	g.Expect(n.Status.NodeInfo.KubeletVersion).To(Equal("v1.37.2"))
	g.Expect(n.Status.Images).To(BeNil())
	g.Expect(n.Status.Capacity).To(BeNil())
	g.Expect(n.Status.VolumesInUse).To(BeNil())

	// Other objects lose only the managed fields and the annotation.
	wi := &wmcov1.WindowsInstance{ObjectMeta: *meta.DeepCopy(), Spec: wmcov1.WindowsInstanceSpec{Address: "192.0.2.1"}}
	out, err = controllers.CacheTransform(wi)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out.(*wmcov1.WindowsInstance).ManagedFields).To(BeNil())
	g.Expect(out.(*wmcov1.WindowsInstance).Annotations).To(Equal(map[string]string{"keep": "me"}))
	g.Expect(out.(*wmcov1.WindowsInstance).Spec.Address).To(Equal("192.0.2.1"))

	// A tombstone passes unchanged.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "win-1", Obj: node}
	out, err = controllers.CacheTransform(tomb)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal(tomb))
}
