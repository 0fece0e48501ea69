package winsim_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/test/winsim"
)

// A new computer name takes effect only when the host boots again, as on
// Windows; setting the name in effect cancels a pending one.
func TestSetHostnameTakesEffectAtBoot(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{Hostname: "WIN-X"})

	g.Expect(s.PendingHostname()).To(BeEmpty())
	g.Expect(s.SetHostname("vm.abc")).To(MatchError(winsim.ErrInvalidComputerName))
	g.Expect(s.SetHostname("12345")).To(MatchError(winsim.ErrInvalidComputerName), "not only digits")
	g.Expect(s.SetHostname("vm-abc12")).To(Succeed())
	g.Expect(s.PendingHostname()).To(Equal("vm-abc12"))
	g.Expect(s.Facts().Hostname).To(Equal("WIN-X"), "the name in effect stays until the next boot")

	// Setting the name in effect cancels the pending one.
	g.Expect(s.SetHostname("win-x")).To(Succeed())
	g.Expect(s.PendingHostname()).To(BeEmpty())
	g.Expect(s.Reboot(t.Context(), 10*time.Millisecond)).To(Succeed())
	g.Expect(s.WaitUp(t.Context())).To(Succeed())
	g.Expect(s.Facts().Hostname).To(Equal("WIN-X"))

	g.Expect(s.SetHostname("vm-abc12")).To(Succeed())
	g.Expect(s.Reboot(t.Context(), 10*time.Millisecond)).To(Succeed())
	g.Expect(s.Facts().Hostname).To(Equal("WIN-X"), "down is not booted yet")
	g.Expect(s.WaitUp(t.Context())).To(Succeed())
	g.Expect(s.Facts().Hostname).To(Equal("vm-abc12"))
	g.Expect(s.PendingHostname()).To(BeEmpty())
	g.Expect(s.Stats().Boots).To(BeEquivalentTo(2))
}

// A host whose image has no Administrator (Azure's) lets in only its own
// accounts, whatever keys the administrators' file lists.
func TestAccountsOption(t *testing.T) {
	g := NewWithT(t)
	h, err := winsim.Start(t.Context(), winsim.Options{Accounts: []string{"capi"}})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = h.Close() })
	s := &sim{Host: h, signer: newSigner(t)}
	// capi is an administrator: its key goes to the file all
	// administrators share.
	h.AuthorizeKey("capi", s.signer.PublicKey())
	g.Expect(h.AuthorizedKeysPath("capi")).To(Equal(winsim.AdministratorsAuthorizedKeysPath))

	g.Expect(login(s, "capi", s.signer)).To(Succeed())
	g.Expect(login(s, "CAPI", s.signer)).To(Succeed(), "account names are case-insensitive")
	g.Expect(login(s, "Administrator", s.signer)).NotTo(Succeed(), "no such account, though the shared file lists the key")

	h.AddAccount("Administrator")
	g.Expect(login(s, "Administrator", s.signer)).To(Succeed())

	// The default is Administrator alone.
	d, err := winsim.Start(t.Context(), winsim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = d.Close() })
	ds := &sim{Host: d, signer: newSigner(t)}
	d.SetAdmin("capi", true) // creates capi and puts its key in the shared file
	d.AuthorizeKey("capi", ds.signer.PublicKey())
	g.Expect(login(ds, "Administrator", ds.signer)).To(Succeed())
}
