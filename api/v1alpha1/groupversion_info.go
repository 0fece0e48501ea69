// Package v1alpha1 contains the wmco.io/v1alpha1 API: WindowsInstance, one
// object per Windows host, and WindowsNodeConfig, the cluster-wide settings
// for every Windows node.
//
// +kubebuilder:object:generate=true
// +groupName=wmco.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "wmco.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this API to a scheme. It is
	// apimachinery's, so importing the API needs no controller-runtime.
	SchemeBuilder = &schemeBuilder{}

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// schemeBuilder collects the API's types as the type files register them.
type schemeBuilder struct{ objects []runtime.Object }

// Register adds objects to the types AddToScheme installs.
func (b *schemeBuilder) Register(objects ...runtime.Object) {
	b.objects = append(b.objects, objects...)
}

// AddToScheme installs the API's types and the meta types of its group
// version into s.
func (b *schemeBuilder) AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, b.objects...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
