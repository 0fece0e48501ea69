package simagent_test

import (
	"context"
	"encoding/json"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/remote"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
	"github.com/openwmco/wmco/test/winsim/simagent"
)

// newKey returns a fresh private key in PEM, its public key and its
// authorized_keys line.
func newKey(t *testing.T) (remote.PrivateKey, ssh.PublicKey, string) {
	t.Helper()
	k, err := winsim.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PEM, k.PublicKey(), k.AuthorizedKey()
}

func dial(ctx context.Context, h *winsim.Host, user string, key remote.PrivateKey) (remote.Session, error) {
	return (&remote.SSHDialer{}).Dial(ctx, remote.Target{
		Address: h.IP(), Port: h.Port(), Username: user, PrivateKey: key, HostKey: h.HostKey(),
	})
}

// startAgentHost starts a host with the agent installed and no key
// authorized.
func startAgentHost(t *testing.T) *winsim.Host {
	t.Helper()
	g := NewWithT(t)
	h, err := winsim.Start(context.Background(), winsim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	_, err = simagent.Install(h, simagent.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(h.Disk().WriteFile(wicdapi.AgentPath, simagent.AgentImage("v1"))).To(Succeed())
	return h
}

// changeKeys uploads change and runs `wicd authorized-keys` as the
// operator does; it returns the exit status and stdout.
func changeKeys(ctx context.Context, g Gomega, s remote.Session, change wicdapi.AuthorizedKeysChange) (int, []byte) {
	data, err := json.Marshal(change)
	g.Expect(err).NotTo(HaveOccurred())
	upload(ctx, g, s, wicdapi.AuthorizedKeysChangePath, data)
	res, err := s.Run(ctx, []string{wicdapi.AgentPath, wicdapi.AuthorizedKeysArg, "--change", wicdapi.AuthorizedKeysChangePath})
	g.Expect(err).NotTo(HaveOccurred())
	return res.ExitCode, res.Stdout
}

// An administrator's session rotates its key in the file sshd reads for
// administrators: the new key logs in, the old one no longer does, the
// admin's own line stays, and the file gets the permissions sshd requires.
func TestAuthorizedKeysRotatesAnAdministratorsKey(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := startAgentHost(t)

	oldPriv, oldPub, oldLine := newKey(t)
	newPriv, _, newLine := newKey(t)
	_, adminPub, _ := newKey(t)
	h.AuthorizeKey("Administrator", adminPub) // the admin's own key
	h.AuthorizeKey("Administrator", oldPub)
	g.Expect(h.Disk().Security(wicdapi.AdministratorsAuthorizedKeysPath)).To(BeEmpty(), "inherited to begin with")

	sess, err := dial(ctx, h, "Administrator", oldPriv)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess.Close() }()
	code, out := changeKeys(ctx, g, sess, wicdapi.AuthorizedKeysChange{Add: []string{newLine}})
	g.Expect(code).To(BeZero(), string(out))
	var res wicdapi.AuthorizedKeysResult
	g.Expect(json.Unmarshal(out, &res)).To(Succeed())
	g.Expect(res.File).To(Equal(wicdapi.AdministratorsAuthorizedKeysPath))
	g.Expect(res.Changed).To(BeTrue())
	g.Expect(res.Added).To(HaveLen(1))
	g.Expect(res.Added[0]).To(HavePrefix("SHA256:"))
	g.Expect(h.Disk().Security(wicdapi.AdministratorsAuthorizedKeysPath)).To(Equal(wicd.AdministratorsKeysSDDL))

	newSess, err := dial(ctx, h, "Administrator", newPriv)
	g.Expect(err).NotTo(HaveOccurred(), "the new key logs in")
	defer func() { _ = newSess.Close() }()
	code, out = changeKeys(ctx, g, newSess, wicdapi.AuthorizedKeysChange{Remove: []string{oldLine}})
	g.Expect(code).To(BeZero(), string(out))
	_, err = dial(ctx, h, "Administrator", oldPriv)
	var auth *remote.AuthError
	g.Expect(err).To(BeAssignableToTypeOf(auth), "the old key is refused")
	g.Expect(h.AuthorizedKeys("Administrator")).To(HaveLen(2), "the admin's key and the new one")

	// Again: nothing changes.
	code, out = changeKeys(ctx, g, newSess, wicdapi.AuthorizedKeysChange{Add: []string{newLine}, Remove: []string{oldLine}})
	g.Expect(code).To(BeZero(), string(out))
	g.Expect(json.Unmarshal(out, &res)).To(Succeed())
	g.Expect(res.Changed).To(BeFalse())

	// No temporary file is left beside it.
	infos, err := h.Disk().List(`C:\ProgramData\ssh`)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(infos).To(HaveLen(1))

	// A change that is not a key is refused with a code, the file kept.
	before, _ := h.Disk().ReadFile(wicdapi.AdministratorsAuthorizedKeysPath)
	code, out = changeKeys(ctx, g, newSess, wicdapi.AuthorizedKeysChange{Add: []string{"ssh-rsa AAAA"}})
	g.Expect(code).To(Equal(1))
	var eo wicdapi.ErrorOutput
	g.Expect(json.Unmarshal(out, &eo)).To(Succeed())
	g.Expect(eo.Error.Code).To(Equal(wicdapi.CodeInvalidKeys))
	after, _ := h.Disk().ReadFile(wicdapi.AdministratorsAuthorizedKeysPath)
	g.Expect(after).To(Equal(before))
}

// A user outside Administrators edits the authorized_keys of its own
// profile, whose permissions are left alone.
func TestAuthorizedKeysOfAUserOutsideAdministrators(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	h := startAgentHost(t)
	h.SetAdmin("deploy", false)
	priv, pub, _ := newKey(t)
	newPriv, _, newLine := newKey(t)
	h.AuthorizeKey("deploy", pub)

	sess, err := dial(ctx, h, "deploy", priv)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = sess.Close() }()
	code, out := changeKeys(ctx, g, sess, wicdapi.AuthorizedKeysChange{Add: []string{newLine}})
	g.Expect(code).To(BeZero(), string(out))
	var res wicdapi.AuthorizedKeysResult
	g.Expect(json.Unmarshal(out, &res)).To(Succeed())
	g.Expect(res.File).To(Equal(`C:\Users\deploy\.ssh\authorized_keys`))
	g.Expect(h.Disk().Security(res.File)).To(BeEmpty())
	s2, err := dial(ctx, h, "deploy", newPriv)
	g.Expect(err).NotTo(HaveOccurred())
	_ = s2.Close()
	_, err = h.Disk().Stat(wicdapi.AdministratorsAuthorizedKeysPath)
	g.Expect(err).To(HaveOccurred(), "the administrators' file is not touched")
}
