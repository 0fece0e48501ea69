package simagent_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// `wicd set-hostname` over SSH sets the name for the next boot; facts
// report it pending until `shutdown /r` has rebooted the host, and only
// an administrator may rename it.
func TestSetHostnameOverSSH(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h, err := winsim.Start(context.Background(), winsim.Options{Hostname: "WIN-X"})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	_, err = simagent.Install(h, simagent.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Disk().WriteFile(wicdapi.AgentPath, simagent.AgentImage("v1"))).To(Succeed())
	priv, pub, _ := newKey(t)
	h.AuthorizeKey("Administrator", pub)
	sess, err := dial(ctx, h, "Administrator", priv)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess.Close() }()

	var res wicdapi.SetHostnameResult
	g.Expect(runJSON(ctx, g, sess, &res, wicdapi.SetHostnameArg, "--name=vm-abc12")).To(BeZero())
	g.Expect(res).To(Equal(wicdapi.SetHostnameResult{Hostname: "WIN-X", Pending: "vm-abc12", Changed: true, RebootRequired: true}))
	var facts wicdapi.Facts
	g.Expect(runJSON(ctx, g, sess, &facts, "facts")).To(BeZero())
	g.Expect(facts.Hostname).To(Equal("WIN-X"))
	g.Expect(facts.PendingHostname).To(Equal("vm-abc12"))

	// Again: nothing to set, still a reboot to go.
	res = wicdapi.SetHostnameResult{}
	g.Expect(runJSON(ctx, g, sess, &res, wicdapi.SetHostnameArg, "--name=vm-abc12")).To(BeZero())
	g.Expect(res).To(Equal(wicdapi.SetHostnameResult{Hostname: "WIN-X", Pending: "vm-abc12", RebootRequired: true}))

	// Names that are no lower-case label of at most 15 characters are a
	// usage error (exit status 2), and nothing changes.
	for _, bad := range []string{"--name=VM-ABC12", "--name=vm_abc", "--name=vm-abcdefghijk12", "--name="} {
		var eo wicdapi.ErrorOutput
		g.Expect(runJSON(ctx, g, sess, &eo, wicdapi.SetHostnameArg, bad)).To(Equal(2), bad)
		g.Expect(eo.Error.Code).To(Equal(wicdapi.CodeUsage), bad)
	}
	g.Expect(h.PendingHostname()).To(Equal("vm-abc12"))

	// A user outside Administrators may not rename the computer.
	h.SetAdmin("deploy", false)
	dpriv, dpub, _ := newKey(t)
	h.AuthorizeKey("deploy", dpub)
	dsess, err := dial(ctx, h, "deploy", dpriv)
	g.Expect(err).NotTo(HaveOccurred())
	we := agentError(ctx, g, dsess, wicdapi.SetHostnameArg, "--name=other")
	g.Expect(we.Code).To(Equal(wicdapi.CodeInternal))
	g.Expect(we.Message).To(ContainSubstring(winsim.ErrAccessDenied.Error()))
	_ = dsess.Close()
	g.Expect(h.PendingHostname()).To(Equal("vm-abc12"))

	// The reboot puts the name in effect. shutdown returns at once and
	// the host runs its old boot, under the old name, until /t's 5 s
	// have passed.
	bootBefore := facts.BootTime
	r, err := sess.Run(ctx, []string{"shutdown.exe", "/r", "/t", "5"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.ExitCode).To(BeZero(), string(r.Stderr))
	facts = wicdapi.Facts{}
	g.Expect(runJSON(ctx, g, sess, &facts, "facts")).To(BeZero())
	g.Expect(facts.Hostname).To(Equal("WIN-X"))
	g.Expect(facts.PendingHostname).To(Equal("vm-abc12"))
	g.Expect(facts.BootTime).To(Equal(bootBefore), "the same boot")
	g.Eventually(h.Stats).WithTimeout(30 * time.Second).Should(HaveField("Boots", BeEquivalentTo(1)))
	g.Expect(h.WaitUp(ctx)).To(Succeed())
	sess2, err := dial(ctx, h, "Administrator", priv)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess2.Close() }()
	facts = wicdapi.Facts{}
	g.Expect(runJSON(ctx, g, sess2, &facts, "facts")).To(BeZero())
	g.Expect(facts.Hostname).To(Equal("vm-abc12"))
	g.Expect(facts.PendingHostname).To(BeEmpty())
	g.Expect(facts.BootTime).NotTo(Equal(bootBefore), "a new boot")
	res = wicdapi.SetHostnameResult{}
	g.Expect(runJSON(ctx, g, sess2, &res, wicdapi.SetHostnameArg, "--name=vm-abc12")).To(BeZero())
	g.Expect(res).To(Equal(wicdapi.SetHostnameResult{Hostname: "vm-abc12"}), "nothing left to do")
}

// shutdown.exe as on Windows: /r /t N returns at once and the host runs
// on, answering, until N seconds have passed; a second /r meanwhile fails
// (1190), /a cancels the reboot (1116 when there is none), a bad /t is
// refused (87), and so is a user outside Administrators (5). The boot time
// in facts changes with the reboot only.
func TestShutdownTimer(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := startAgentHost(t)
	priv, pub, _ := newKey(t)
	h.AuthorizeKey("Administrator", pub)
	sess, err := dial(ctx, h, "Administrator", priv)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess.Close() }()
	shutdown := func(args ...string) (int, string) {
		r, err := sess.Run(ctx, append([]string{"shutdown.exe"}, args...))
		g.Expect(err).NotTo(HaveOccurred())
		return r.ExitCode, string(r.Stderr)
	}
	var before wicdapi.Facts
	g.Expect(runJSON(ctx, g, sess, &before, "facts")).To(BeZero())
	boot, err := time.Parse(time.RFC3339Nano, before.BootTime)
	g.Expect(err).NotTo(HaveOccurred(), before.BootTime)
	g.Expect(boot).To(BeTemporally("~", h.Facts().BootTime, time.Microsecond))

	code, _ := shutdown("/r", "/t", "600")
	g.Expect(code).To(BeZero())
	var during wicdapi.Facts
	g.Expect(runJSON(ctx, g, sess, &during, "facts")).To(BeZero(), "the host answers while the timer runs")
	g.Expect(during.BootTime).To(Equal(before.BootTime))
	code, stderr := shutdown("/r", "/t", "5")
	g.Expect(code).To(Equal(1190))
	g.Expect(stderr).To(ContainSubstring("already been scheduled"))
	code, _ = shutdown("/a")
	g.Expect(code).To(BeZero())
	code, stderr = shutdown("/a")
	g.Expect(code).To(Equal(1116))
	g.Expect(stderr).To(ContainSubstring("no shutdown was in progress"))
	for _, bad := range [][]string{{"/r", "/t", "x"}, {"/r", "/t", "-1"}, {"/r", "/t"}, {"/r", "/t", "315360001"}} {
		code, _ = shutdown(bad...)
		g.Expect(code).To(Equal(87), "%v", bad)
	}
	h.SetAdmin("deploy", false)
	dpriv, dpub, _ := newKey(t)
	h.AuthorizeKey("deploy", dpub)
	dsess, err := dial(ctx, h, "deploy", dpriv)
	g.Expect(err).NotTo(HaveOccurred())
	r, err := dsess.Run(ctx, []string{"shutdown.exe", "/r", "/t", "0"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.ExitCode).To(Equal(5), "only administrators may shut down")
	_ = dsess.Close()
	g.Expect(h.Stats().Boots).To(BeZero(), "cancelled, refused: no reboot")
	g.Expect(h.State()).To(Equal(winsim.StateUp))

	code, _ = shutdown("/r", "/t", "1")
	g.Expect(code).To(BeZero())
	g.Eventually(h.Stats).WithTimeout(30 * time.Second).Should(HaveField("Boots", BeEquivalentTo(1)))
	g.Expect(h.WaitUp(ctx)).To(Succeed())
	sess2, err := dial(ctx, h, "Administrator", priv)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess2.Close() }()
	var after wicdapi.Facts
	g.Expect(runJSON(ctx, g, sess2, &after, "facts")).To(BeZero())
	g.Expect(after.BootTime).NotTo(Equal(before.BootTime), "a new boot")
	// The reboot is done: nothing is left scheduled.
	r, err = sess2.Run(ctx, []string{"shutdown.exe", "/a"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(r.ExitCode).To(Equal(1116))
}
