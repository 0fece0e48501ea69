package wicd_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/nodeconfig"
	"github.com/openwmco/wmco/pkg/wicd"
	"github.com/openwmco/wmco/pkg/wicdapi"
	"github.com/openwmco/wmco/test/winsim"
)

func TestFolderSecured(t *testing.T) {
	for _, tc := range []struct {
		sddl string
		want bool
	}{
		{wicd.AgentFolderSDDL, true},
		// As GetNamedSecurityInfo reports it after SetNamedSecurityInfo.
		{"O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", true},
		{"O:BAD:AIP(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)", true},
		{"O:SYG:SYD:P(A;CIOI;FA;;;S-1-5-18)(A;OICI;0x1F01FF;;;S-1-5-32-544)", true},
		{"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)S:AI", true},
		// What a folder under C:\ inherits on Windows Server.
		{"O:BAD:AI(A;OICIID;FA;;;BA)(A;OICIID;FA;;;SY)(A;OICIID;0x1200a9;;;BU)(A;CIID;LC;;;BU)(A;CIID;DC;;;BU)(A;OICIIOID;GA;;;CO)", false},
		{"", false},
		{"O:BAD:(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", false},                        // not protected
		{"O:BUD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", false},                       // owned by Users
		{"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)", false}, // Users may read
		{"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(D;OICI;FA;;;BU)", false},       // not ours
		{"O:BAD:P(A;OICI;FA;;;SY)", false},                                       // no Administrators
		{"O:BAD:P(A;OICI;FA;;;BA)", false},                                       // no SYSTEM
		{"O:BAD:P(A;OI;FA;;;SY)(A;OICI;FA;;;BA)", false},                         // not passed to folders
		{"O:BAD:P(A;OICIIO;FA;;;SY)(A;OICI;FA;;;BA)", false},                     // not the folder itself
		{"O:BAD:P(A;OICINP;FA;;;SY)(A;OICI;FA;;;BA)", false},                     // one level only
		{"O:BAD:P(A;OICI;FR;;;SY)(A;OICI;FA;;;BA)", false},                       // SYSTEM may only read
		{"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)", false},                               // a file's: nothing inherited
		{"O:BAD:PX(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", false},
		{"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA", false},
		{"O:BAD:P", false},
		{"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", false}, // no owner read
	} {
		if got := wicd.FolderSecured(tc.sddl); got != tc.want {
			t.Errorf("FolderSecured(%q) = %v, want %v", tc.sddl, got, tc.want)
		}
	}
}

// FuzzFolderSecured: whatever descriptor a host reports, an accepted one
// is protected and grants SYSTEM and Administrators only.
func FuzzFolderSecured(f *testing.F) {
	f.Add(wicd.AgentFolderSDDL)
	f.Add("O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;WD)")
	f.Add("O:SYD:P(A;CIOI;0x1f01ff;;;S-1-5-18)(A;OICI;FA;;;BA)S:AI")
	f.Fuzz(func(t *testing.T, sddl string) {
		if !wicd.FolderSecured(sddl) {
			return
		}
		_, dacl, _ := strings.Cut(sddl, "D:")
		dacl, _, _ = strings.Cut(dacl, "S:")
		flags, _, _ := strings.Cut(dacl, "(")
		if !strings.Contains(flags, "P") {
			t.Fatalf("accepted without a protected DACL: %q", sddl)
		}
		for _, ace := range strings.Split(dacl, "(")[1:] {
			sid, _, _ := strings.Cut(ace[strings.LastIndex(ace, ";")+1:], ")")
			switch sid {
			case "SY", "BA", "S-1-5-18", "S-1-5-32-544":
			default:
				t.Fatalf("accepted a grant to %q: %q", sid, sddl)
			}
		}
	})
}

// A local user outside Administrators can plant files in C:\k and read
// what is there until the first apply; from then on the user can open,
// list, create or rename nothing in C:\k (the payload, the plans, the
// services' configuration) or in the kubelet's certificate folder, as
// on Windows once the agent has given them AgentFolderSDDL. An
// administrator's change to a folder's security is undone by the next
// apply.
func TestAppliedHostKeepsLocalUsersOutOfItsFolders(t *testing.T) {
	g := NewWithT(t)
	s := startSettingsHost(t)
	h := s.node.Host
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	g.Expect(err).NotTo(HaveOccurred())
	key, err := ssh.NewSignerFromKey(priv)
	g.Expect(err).NotTo(HaveOccurred())
	h.SetAdmin("deploy", false)
	h.AuthorizeKey("deploy", key.PublicKey())
	user := sftpAs(t, h, "deploy", key)
	put := func(p, data string) error {
		f, err := user.Create(p)
		if err != nil {
			return err
		}
		_, err = f.Write([]byte(data))
		return errors.Join(err, f.Close())
	}
	get := func(p string) (string, error) {
		f, err := user.Open(p)
		if err != nil {
			return "", err
		}
		defer func() { _ = f.Close() }()
		data, err := io.ReadAll(f)
		return string(data), err
	}
	sftpPath := func(p string) string { return "/" + strings.ReplaceAll(p, `\`, "/") }

	// Before: C:\k inherits C:\'s ACL.
	g.Expect(put(sftpPath(wicdapi.PayloadRoot+`\planted.dll`), "MZ")).To(Succeed(), "the simulated host lets users into C:\\k as Windows Server does")

	s.apply(g, s.inputs())
	for _, d := range wicd.SecuredFolders {
		g.Expect(h.Disk().Security(d)).To(Equal(wicd.AgentFolderSDDL), d)
	}

	denied := func(what string, err error) {
		t.Helper()
		g.Expect(err).To(MatchError(ContainSubstring("Access is denied")), what)
	}
	_, err = get(sftpPath(nodeconfig.KubeletClientCAPath))
	denied("read the kubelet's certificate folder", err)
	_, err = get(sftpPath(nodeconfig.KubeletConfigPath))
	denied("read the kubelet's configuration", err)
	_, err = user.ReadDir(sftpPath(wicdapi.InstallRoot))
	denied("list C:\\k", err)
	denied("plant a file in the payload", put(sftpPath(s.manifest.HostPath("version.dll")), "MZ"))
	denied("plant a file in the kubelet's certificate folder", put(sftpPath(wicdapi.KubeletPKIDir+`\kubelet-client-current.pem`), "x"))
	denied("create a payload folder", user.Mkdir(sftpPath(wicdapi.PayloadRoot+`\v9`)))
	denied("rename a payload file", user.Rename(sftpPath(wicdapi.PayloadRoot+`\planted.dll`), sftpPath(wicdapi.PayloadRoot+`\x.dll`)))
	g.Expect(put("/C:/Users/deploy/notes.txt", "mine")).To(Succeed(), "the user's own profile is untouched")

	// An administrator lets Users read C:\k: the next apply takes it back.
	g.Expect(h.Disk().SetSecurity(wicdapi.InstallRoot, "O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)")).To(Succeed())
	g.Expect(get(sftpPath(nodeconfig.KubeletConfigPath))).NotTo(BeEmpty(), "readable while Users may read")
	s.apply(g, s.inputs())
	g.Expect(h.Disk().Security(wicdapi.InstallRoot)).To(Equal(wicd.AgentFolderSDDL))
	_, err = get(sftpPath(nodeconfig.KubeletConfigPath))
	denied("read the kubelet's configuration again", err)
}

// sftpAs opens an SFTP session on h as user, authenticated with key.
func sftpAs(t *testing.T, h *winsim.Host, user string, key ssh.Signer) *sftp.Client {
	t.Helper()
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostKey()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", h.Address(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key)}, HostKeyCallback: ssh.FixedHostKey(hostKey),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	sc, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	return sc
}
