package winsim_test

import (
	"io"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/test/winsim"
)

// A file whose own security descriptor grants SYSTEM and Administrators
// only (what the agent gives private keys and kubeconfigs) cannot be
// opened by a user outside Administrators, as on Windows; administrators
// read it, and every user reads a file that inherits its folder's.
func TestRestrictedFileIsReadByAdministratorsOnly(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	const secret, public = `C:\k\windows_exporter\tls.key`, `C:\k\windows_exporter\tls.crt`
	g.Expect(s.Disk().MkdirAll(`C:\k\windows_exporter`)).To(Succeed())
	g.Expect(s.Disk().WriteFile(secret, []byte("key"))).To(Succeed())
	g.Expect(s.Disk().WriteFile(public, []byte("cert"))).To(Succeed())
	g.Expect(s.Disk().SetSecurity(secret, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)")).To(Succeed())

	s.SetAdmin("deploy", false)
	k := newSigner(t)
	s.AuthorizeKey("deploy", k.PublicKey())
	read := func(u string, signer ssh.Signer, p string) (string, error) {
		cfg := s.config()
		cfg.User, cfg.Auth = u, []ssh.AuthMethod{ssh.PublicKeys(signer)}
		c, err := ssh.Dial("tcp", s.Address(), cfg)
		if err != nil {
			return "", err
		}
		defer func() { _ = c.Close() }()
		sc, err := sftp.NewClient(c)
		if err != nil {
			return "", err
		}
		defer func() { _ = sc.Close() }()
		f, err := sc.Open(p)
		if err != nil {
			return "", err
		}
		defer func() { _ = f.Close() }()
		data, err := io.ReadAll(f)
		return string(data), err
	}
	toSFTP := func(p string) string { return "/C:/k/windows_exporter/" + p }

	_, err := read("deploy", k, toSFTP("tls.key"))
	g.Expect(err).To(HaveOccurred(), "a user outside Administrators")
	g.Expect(read("deploy", k, toSFTP("tls.crt"))).To(Equal("cert"))
	g.Expect(read(user, s.signer, toSFTP("tls.key"))).To(Equal("key"))

	// Protected, but granting Users too: readable.
	g.Expect(s.Disk().SetSecurity(secret, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)")).To(Succeed())
	g.Expect(read("deploy", k, toSFTP("tls.key"))).To(Equal("key"))
}
