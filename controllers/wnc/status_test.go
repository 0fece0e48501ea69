package wnc

import (
	"errors"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
)

func TestSetStatus(t *testing.T) {
	g := NewWithT(t)
	cfg := &wmcov1.WindowsNodeConfig{ObjectMeta: metav1.ObjectMeta{Name: "cluster", Generation: 3}}
	setStatus(cfg, errors.New("config.network.dnsServer: \"x\" is not an IP address"))
	g.Expect(cfg.Status.ObservedGeneration).To(Equal(int64(3)))
	ready := meta.FindStatusCondition(cfg.Status.Conditions, wmcov1.ConditionReady)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Reason).To(Equal(ReasonInvalid))
	g.Expect(ready.Message).To(ContainSubstring("dnsServer"))
	g.Expect(meta.IsStatusConditionTrue(cfg.Status.Conditions, wmcov1.ConditionStalled)).To(BeTrue())

	cfg.Generation = 4
	setStatus(cfg, nil)
	g.Expect(cfg.Status.ObservedGeneration).To(Equal(int64(4)))
	g.Expect(meta.IsStatusConditionTrue(cfg.Status.Conditions, wmcov1.ConditionReady)).To(BeTrue())
	g.Expect(meta.FindStatusCondition(cfg.Status.Conditions, wmcov1.ConditionStalled)).To(BeNil())
}
