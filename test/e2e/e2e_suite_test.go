//go:build e2e

package e2e

import (
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// p is the provider every spec uses.
var p Provider

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "WMCO e2e suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	// The simulated cloud's and the clients' controller-runtime logs.
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter)))
	var err error
	p, err = newProvider(ctx, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	Expect(len(p.Hosts())).To(BeNumerically(">=", 2), "the suite needs at least two hosts")
	GinkgoWriter.Printf("Provider %s with hosts %v\n", p.Name(), p.Hosts())
}, NodeTimeout(10*time.Minute))

var _ = AfterSuite(func() {
	if p != nil {
		Expect(p.Stop()).To(Succeed())
	}
})
