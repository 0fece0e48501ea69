package controllers

import (
	"testing"

	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

func TestSuiteServesCRDs(t *testing.T) {
	g := NewWithT(t)
	mgr := startManager(t, func(ctrl.Manager) error { return nil })
	g.Expect(mgr).NotTo(BeNil())
	var list wmcov1.WindowsInstanceList
	g.Expect(k8sClient.List(t.Context(), &list)).To(Succeed())

}
