package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/test/ctrltest"
)

func TestSuiteServesCRDs(t *testing.T) {
	g := NewWithT(t)
	mgr := ctrltest.StartManager(t, func(ctrl.Manager) error { return nil })
	g.Expect(mgr).NotTo(BeNil())
	var list wmcov1.WindowsInstanceList
	g.Expect(ctrltest.Client.List(t.Context(), &list)).To(Succeed())

}
