package winsim_test

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/test/winsim"
)

func newSigner(t *testing.T) ssh.Signer {
	t.Helper()
	k, err := winsim.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Signer
}

// login dials the host as user with signer and reports whether the server
// let it in.
func login(s *sim, user string, signer ssh.Signer) error {
	cfg := s.config()
	cfg.User = user
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	c, err := ssh.Dial("tcp", s.Address(), cfg)
	if err == nil {
		_ = c.Close()
	}
	return err
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// sshd reads an administrator's keys from administrators_authorized_keys
// at every login, ignoring the user's own file, and skips lines that are
// not keys; an edit of the file takes effect at the next login.
func TestAdministratorKeysComeFromTheSharedFile(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	g.Expect(s.AuthorizedKeysPath(user)).To(Equal(winsim.AdministratorsAuthorizedKeysPath))
	data, err := s.Disk().ReadFile(winsim.AdministratorsAuthorizedKeysPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal(authorizedLine(s.signer.PublicKey())+"\r\n"), "AuthorizeKey writes the file")
	g.Expect(login(s, user, s.signer)).To(Succeed())

	// The admin's own authorized_keys is ignored.
	other := newSigner(t)
	g.Expect(s.Disk().WriteFile(winsim.UserAuthorizedKeysPath(user), []byte(authorizedLine(other.PublicKey())+"\n"))).To(Succeed())
	g.Expect(login(s, user, other)).NotTo(Succeed())

	// Invalid lines, comments and options: the valid keys around them
	// still work; editing the file out removes access at once.
	third := newSigner(t)
	file := "# keys of the ops team\r\n" +
		"ssh-ed25519 not-base64 broken\r\n" +
		"garbage line\r\n" +
		`from="127.0.0.0/8" ` + authorizedLine(third.PublicKey()) + " ops@example\r\n" +
		authorizedLine(s.signer.PublicKey()) + "\r\n"
	g.Expect(s.Disk().WriteFile(winsim.AdministratorsAuthorizedKeysPath, []byte(file))).To(Succeed())
	g.Expect(login(s, user, third)).To(Succeed())
	g.Expect(login(s, user, s.signer)).To(Succeed())
	g.Expect(s.AuthorizedKeys(user)).To(HaveLen(2))
	g.Expect(s.Disk().WriteFile(winsim.AdministratorsAuthorizedKeysPath, []byte(strings.Join(strings.Split(file, "\r\n")[:4], "\r\n")))).To(Succeed())
	g.Expect(login(s, user, s.signer)).NotTo(Succeed())
	g.Expect(login(s, user, third)).To(Succeed())

	// RevokeKeys keeps the comment and the broken lines, drops the keys.
	s.RevokeKeys(user)
	g.Expect(login(s, user, third)).NotTo(Succeed())
	data, err = s.Disk().ReadFile(winsim.AdministratorsAuthorizedKeysPath)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(Equal("# keys of the ops team\r\nssh-ed25519 not-base64 broken\r\ngarbage line\r\n"))
}

// A user outside Administrators logs in with the keys of its own profile.
func TestNonAdministratorKeysComeFromTheProfile(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	s.SetAdmin("deploy", false)
	g.Expect(s.IsAdmin("Deploy")).To(BeFalse())
	g.Expect(s.IsAdmin(user)).To(BeTrue(), "users are administrators by default")
	k := newSigner(t)
	g.Expect(login(s, "deploy", k)).NotTo(Succeed())
	s.AuthorizeKey("deploy", k.PublicKey())
	g.Expect(s.Disk().Stat(`C:\Users\deploy\.ssh\authorized_keys`)).NotTo(BeNil())
	g.Expect(login(s, "deploy", k)).To(Succeed())
	g.Expect(login(s, user, k)).NotTo(Succeed(), "the administrators' file does not list it")
	// The administrators' key does not open the user's account.
	g.Expect(login(s, "deploy", s.signer)).NotTo(Succeed())
}

// sshd refuses administrators_authorized_keys when someone else than
// SYSTEM and Administrators may write to it or owns it.
func TestAdministratorKeysFileWithBadPermissionsIsRefused(t *testing.T) {
	g := NewWithT(t)
	s := start(t, winsim.Options{})
	for _, tc := range []struct {
		sddl string
		ok   bool
	}{
		{"", true}, // inherits C:\ProgramData\ssh's
		{"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)", true},
		{"O:SYD:PAI(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;AU)", true},
		{"O:BAD:P(A;;0x1200a9;;;BU)(A;;FA;;;BA)", true},
		{"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FW;;;BU)", false},
		{"O:BAD:P(A;;FA;;;SY)(A;;0x12019f;;;AU)", false},
		{"O:S-1-5-21-1-2-3-1001D:P(A;;FA;;;SY)(A;;FA;;;BA)", false},
		{"O:BAD:(A;;FA;;;WD)", false},
		{"O:BAD:P", false},
	} {
		g.Expect(s.Disk().SetSecurity(winsim.AdministratorsAuthorizedKeysPath, tc.sddl)).To(Succeed())
		err := login(s, user, s.signer)
		if tc.ok {
			g.Expect(err).NotTo(HaveOccurred(), tc.sddl)
		} else {
			g.Expect(err).To(HaveOccurred(), tc.sddl)
		}
	}
	// The descriptor moves with the file on rename, as on NTFS.
	g.Expect(s.Disk().WriteFile(`C:\ProgramData\ssh\new`, []byte(authorizedLine(s.signer.PublicKey())))).To(Succeed())
	g.Expect(s.Disk().SetSecurity(`C:\ProgramData\ssh\new`, "O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)")).To(Succeed())
	g.Expect(s.Disk().Rename(`C:\ProgramData\ssh\new`, winsim.AdministratorsAuthorizedKeysPath, true)).To(Succeed())
	g.Expect(s.Disk().Security(winsim.AdministratorsAuthorizedKeysPath)).To(Equal("O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)"))
	g.Expect(login(s, user, s.signer)).To(Succeed())
}
