/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package localenv_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	wmcov1 "github.com/openwmco/wmco/api/v1alpha1"
	"github.com/openwmco/wmco/test/localenv"
	"github.com/openwmco/wmco/test/proc"
)

// The operator is killed with SIGKILL while it configures two hosts, and
// nobody restarts it by hand: the environment's supervisor does, as a
// Deployment would, and both hosts end Ready with every payload file
// intact (its sha256 the manifest's).
func TestSupervisorRestartsTheOperatorKilledMidConfigure(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	env, err := localenv.Start(ctx, localenv.Options{Hosts: 2, Log: testLog{t}})
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = env.Stop() }()
	defer func() {
		if t.Failed() {
			t.Logf("operator log (last lines):\n%s", proc.TailFile(env.OperatorLog, 40))
		}
	}()

	g.Expect(env.SetInventory(ctx, env.Hosts...)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var list wmcov1.WindowsInstanceList
		g.Expect(env.Client.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).NotTo(BeEmpty())
		g.Expect(list.Items).To(ContainElement(HaveField("Status.Phase", BeElementOf(
			wmcov1.PhasePreflight, wmcov1.PhaseProvisioning, wmcov1.PhaseConfiguring, wmcov1.PhaseWaitingForNode))))
	}).WithContext(ctx).WithTimeout(2 * time.Minute).WithPolling(20 * time.Millisecond).Should(Succeed())
	pid := env.OperatorPID()
	env.KillOperator()
	t.Logf("killed the operator (PID %d) mid-configure", pid)
	var phases []wmcov1.InstancePhase
	{
		var list wmcov1.WindowsInstanceList
		g.Expect(env.Client.List(ctx, &list)).To(Succeed())
		for _, wi := range list.Items {
			phases = append(phases, wi.Status.Phase)
		}
	}
	t.Logf("phases when killed: %v", phases)

	g.Eventually(env.OperatorRestarts).WithContext(ctx).WithTimeout(time.Minute).Should(Equal(1))
	g.Expect(env.OperatorExited()).To(BeFalse(), "a killed operator is not down for good")
	g.Eventually(env.OperatorPID).WithContext(ctx).WithTimeout(time.Minute).Should(And(Not(BeZero()), Not(Equal(pid))))
	g.Eventually(func(g Gomega) {
		var list wmcov1.WindowsInstanceList
		g.Expect(env.Client.List(ctx, &list)).To(Succeed())
		g.Expect(list.Items).To(HaveLen(2))
		for _, wi := range list.Items {
			g.Expect(wi.Status.Phase).To(Equal(wmcov1.PhaseReady), "%s: %s", wi.Name, wi.Status.Message)
		}
	}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	for _, h := range env.Hosts {
		for _, f := range env.Payload.Files {
			data, err := h.Host.Disk().ReadFile(env.Payload.HostPath(f.Path))
			g.Expect(err).NotTo(HaveOccurred(), "%s: %s", h.Name, f.Path)
			sum := sha256.Sum256(data)
			g.Expect(hex.EncodeToString(sum[:])).To(Equal(f.SHA256), "%s: %s", h.Name, f.Path)
		}
	}
	g.Expect(env.OperatorRestarts()).To(Equal(1))
	// Each start kept its own log, the first start's first.
	logs := env.OperatorLogs()
	g.Expect(logs).To(HaveLen(2))
	g.Expect(logs[1]).To(Equal(env.OperatorLog))
	for _, l := range logs {
		g.Expect(l).To(BeAnExistingFile())
	}
}
