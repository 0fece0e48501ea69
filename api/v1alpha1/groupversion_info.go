// Package v1alpha1 contains the wmco.io/v1alpha1 API: WindowsInstance, one
// object per Windows host, and WindowsNodeConfig, the cluster-wide settings
// for every Windows node.
//
// +kubebuilder:object:generate=true
// +groupName=wmco.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "wmco.io", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this API to a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this API to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
