package core

import (
	configv1 "github.com/openshift/api/config/v1"
	machinev1beta1 "github.com/openshift/api/machine/v1beta1"
	operatorv1 "github.com/openshift/api/operator/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

// NewScheme returns the types the operator reads and writes: core
// Kubernetes, wmco.io, OpenShift Machines and OpenShift's cluster
// configuration (config.openshift.io, and operator.openshift.io for the
// Cluster Network Operator's Network).
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		wmcov1.AddToScheme,
		machinev1beta1.Install,
		configv1.Install,
		operatorv1.Install,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}
