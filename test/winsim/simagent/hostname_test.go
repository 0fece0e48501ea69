package simagent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/remote"
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

	// The reboot puts the name in effect.
	// The reboot may reset the connection before the exit status arrives,
	// as the operator allows (its reboot phase).
	r, err := sess.Run(ctx, []string{"shutdown.exe", "/r", "/t", "5"})
	if !errors.Is(err, remote.ErrConnectionLost) {
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(r.ExitCode).To(BeZero())
	}
	g.Eventually(h.Stats).WithTimeout(10 * time.Second).Should(HaveField("Boots", BeEquivalentTo(1)))
	g.Expect(h.WaitUp(ctx)).To(Succeed())
	sess2, err := dial(ctx, h, "Administrator", priv)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess2.Close() }()
	facts = wicdapi.Facts{}
	g.Expect(runJSON(ctx, g, sess2, &facts, "facts")).To(BeZero())
	g.Expect(facts.Hostname).To(Equal("vm-abc12"))
	g.Expect(facts.PendingHostname).To(BeEmpty())
	res = wicdapi.SetHostnameResult{}
	g.Expect(runJSON(ctx, g, sess2, &res, wicdapi.SetHostnameArg, "--name=vm-abc12")).To(BeZero())
	g.Expect(res).To(Equal(wicdapi.SetHostnameResult{Hostname: "vm-abc12"}), "nothing left to do")
}
