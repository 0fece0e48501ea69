package userdata

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/pkg/wicd"
)

var update = flag.Bool("update", false, "rewrite testdata/*.userdata from the current output")

// fixedKey is an ed25519 public key from a fixed seed, so that the golden
// files are stable.
func fixedKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	k, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rsaKeyLine is a 2048-bit RSA public key (its private half was thrown
// away).
const rsaKeyLine = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC66K53T2BwxHnolVIyn9hOkCQbGQ3ZYng93OLSUqZYnaBogUxXMG48D/o3AgUvvQ3COydvJhgISV8t9I5Oe282VwuF26rJ4e3w6TWkRP+T12usfIoch+k4lDVPXHc0GRM/J3nx+QwzT7rzGYEUz5/OgGsbgJJipz/qRgXIbcCpaEZvHGpoG07xTFqs7n49U6c9hDqODEXH97CMc/49aB0SWd6whjgdkUpUdVo9U+2ciL3pP41aOjAS2EnUX+7dNGRQ7kvoCx+b1UafGoNxQIm/gQ1q2G3Qsnz0s6MIpIbY5QXpDCxwRfgrsHCdURsUbfeb9LcwSe436SIwZ1eT6Xar"

func rsaKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(rsaKeyLine))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func profile(t testing.TB, typ configv1.PlatformType) platform.Profile {
	t.Helper()
	p, known := platform.Lookup(typ)
	if !known {
		t.Fatalf("no profile for %s", typ)
	}
	return p
}

// lines of the script inside the envelope (or the bare script).
func scriptLines(g Gomega, p platform.Profile, out []byte) []string {
	s := string(out)
	if p.UserDataTags {
		g.Expect(s).To(HavePrefix("<powershell>\n"))
		g.Expect(s).To(HaveSuffix("</powershell>\n<persist>true</persist>\n"))
		s = strings.TrimSuffix(strings.TrimPrefix(s, "<powershell>\n"), "</powershell>\n<persist>true</persist>\n")
	}
	g.Expect(s).To(HaveSuffix("\n"))
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestRenderPerPlatform(t *testing.T) {
	key := fixedKey(t)
	keyLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	for _, tc := range []struct {
		platform  configv1.PlatformType
		tags      bool
		ec2Launch bool
	}{
		{configv1.AWSPlatformType, true, true},
		{configv1.AzurePlatformType, true, false},
		{configv1.VSpherePlatformType, true, false},
		{configv1.NonePlatformType, true, false},
	} {
		t.Run(string(tc.platform), func(t *testing.T) {
			g := NewWithT(t)
			p := profile(t, tc.platform)
			out, err := Render(p, key)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(bytes.HasPrefix(out, []byte("<powershell>"))).To(Equal(tc.tags))
			lines := scriptLines(g, p, out)
			g.Expect(lines[0]).To(Equal(`$ErrorActionPreference = 'Stop'`))
			script := strings.Join(lines, "\n")
			g.Expect(strings.Count(script, keyLine)).To(Equal(1), "the key is written once")
			g.Expect(script).To(ContainSubstring(`-Value '` + keyLine + `'`))
			g.Expect(script).To(ContainSubstring(OpenSSHCapability))
			g.Expect(script).To(ContainSubstring(`-StartupType Automatic`))
			g.Expect(script).To(ContainSubstring(`'PubkeyAuthentication yes', 'PasswordAuthentication no'`))
			g.Expect(script).To(ContainSubstring(`SetSecurityDescriptorSddlForm('` + KeysDACL + `', 'Access')`))
			for _, port := range []int{22, 10250, 9182} {
				g.Expect(script).To(ContainSubstring("-LocalPort "+strconv.Itoa(port)+" "), "port %d", port)
			}
			g.Expect(script).To(ContainSubstring(`Get-LocalUser -Name 'capi'`))
			g.Expect(strings.Contains(script, "EC2Launch")).To(Equal(tc.ec2Launch))
			g.Expect(strings.Contains(script, "add-routes --persistent")).To(Equal(tc.ec2Launch))
			g.Expect(strings.Contains(script, "'"+EC2LaunchMinimumVersion+"'")).To(Equal(tc.ec2Launch))
			// The restart that makes key-only authentication effective
			// comes after the configuration is written.
			cfg, restart := indexOf(lines, "Set-Content -LiteralPath $config"), indexOf(lines, "Restart-Service -Name 'sshd'")
			g.Expect(cfg).To(BeNumerically(">=", 0))
			g.Expect(restart).To(BeNumerically(">", cfg))
		})
	}
}

func indexOf(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

// A platform without UserDataTags (GCP's startup script) gets the bare
// script: the same lines as the wrapped one.
func TestRenderBare(t *testing.T) {
	g := NewWithT(t)
	p := profile(t, configv1.NonePlatformType)
	wrapped, err := Render(p, fixedKey(t))
	g.Expect(err).NotTo(HaveOccurred())
	p.UserDataTags = false
	bare, err := Render(p, fixedKey(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(bare)).NotTo(ContainSubstring("<" + "powershell>"))
	g.Expect(string(bare)).NotTo(ContainSubstring("persist>"))
	g.Expect("<powershell>\n" + string(bare) + "</powershell>\n<persist>true</persist>\n").To(Equal(string(wrapped)))
}

func TestRenderDeterministic(t *testing.T) {
	g := NewWithT(t)
	key := rsaKey(t)
	for _, typ := range platform.Supported() {
		a, err := Render(profile(t, typ), key)
		g.Expect(err).NotTo(HaveOccurred())
		b, err := Render(profile(t, typ), key)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(a).To(Equal(b), "%s", typ)
	}
}

// The ACL the script sets is the DACL the agent keeps the file with.
func TestKeysDACLMatchesAgent(t *testing.T) {
	g := NewWithT(t)
	g.Expect(wicd.AdministratorsKeysSDDL).To(HaveSuffix(KeysDACL))
	g.Expect(KeyMarkerPath).To(HavePrefix(`C:\ProgramData\ssh\`))
}

// oddKey is an ssh.PublicKey whose type and wire form are chosen by the
// test, as a buggy or hostile implementation could.
type oddKey struct {
	typ  string
	blob []byte
}

func (k oddKey) Type() string                            { return k.typ }
func (k oddKey) Marshal() []byte                         { return k.blob }
func (k oddKey) Verify(_ []byte, _ *ssh.Signature) error { return errors.New("no") }

func TestRenderRefusesKeys(t *testing.T) {
	plain := fixedKey(t)
	for name, key := range map[string]ssh.PublicKey{
		"nil":                    nil,
		"quote in the type":      oddKey{typ: "ssh-ed25519' ; Remove-Item -Recurse C:\\ ; '", blob: plain.Marshal()},
		"newline in the type":    oddKey{typ: "ssh-ed25519\nStop-Computer", blob: plain.Marshal()},
		"space in the type":      oddKey{typ: "ssh-ed25519 x", blob: plain.Marshal()},
		"curly quote":            oddKey{typ: "ssh-ed25519\u2019", blob: plain.Marshal()},
		"empty type":             oddKey{typ: "", blob: plain.Marshal()},
		"blob of nothing":        oddKey{typ: "ssh-ed25519", blob: nil},
		"blob of garbage":        oddKey{typ: "ssh-ed25519", blob: []byte("not a key")},
		"type and blob disagree": oddKey{typ: "ssh-rsa", blob: plain.Marshal()},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			for _, typ := range platform.Supported() {
				out, err := Render(profile(t, typ), key)
				var ie *InvalidKeyError
				g.Expect(errors.As(err, &ie)).To(BeTrue(), "%s: %v", typ, err)
				g.Expect(out).To(BeNil())
			}
		})
	}
}

func TestAuthorizedKeyLine(t *testing.T) {
	g := NewWithT(t)
	for _, key := range []ssh.PublicKey{fixedKey(t), rsaKey(t)} {
		line, err := AuthorizedKeyLine(key)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(line + "\n").To(Equal(string(ssh.MarshalAuthorizedKey(key))))
	}
}

// TestGolden compares the userData of each platform with
// testdata/<platform>.userdata.
func TestGolden(t *testing.T) {
	for _, typ := range platform.Supported() {
		t.Run(string(typ), func(t *testing.T) {
			out, err := Render(profile(t, typ), fixedKey(t))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", strings.ToLower(string(typ))+".userdata")
			if *update {
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/userdata -run TestGolden -update to create it)", err)
			}
			NewWithT(t).Expect(string(out)).To(Equal(string(want)), "userData differs from %s (run with -update to accept)", path)
		})
	}
}

// FuzzRender: whatever an ssh.PublicKey says of itself, Render either
// refuses it or writes a script that differs from a plain key's only in
// the key line, which parses back to that key.
func FuzzRender(f *testing.F) {
	plain := fixedKey(f)
	f.Add(plain.Type(), plain.Marshal())
	f.Add("ssh-ed25519' ; evil ; '", plain.Marshal())
	f.Add("ssh-rsa", plain.Marshal())
	f.Add("ssh-ed25519\n", []byte{0, 0, 0, 1})
	p := profile(f, configv1.AWSPlatformType)
	ref, err := Render(p, plain)
	if err != nil {
		f.Fatal(err)
	}
	refLine, _ := AuthorizedKeyLine(plain)
	f.Fuzz(func(t *testing.T, typ string, blob []byte) {
		key := oddKey{typ: typ, blob: blob}
		out, err := Render(p, key)
		if err != nil {
			var ie *InvalidKeyError
			if !errors.As(err, &ie) || out != nil {
				t.Fatalf("err %v, out %d bytes", err, len(out))
			}
			return
		}
		line, err := AuthorizedKeyLine(key)
		if err != nil {
			t.Fatalf("Render took a key AuthorizedKeyLine refuses: %v", err)
		}
		if got := strings.Replace(string(out), line, refLine, 1); got != string(ref) {
			t.Fatalf("the key changed more than its line:\n%s", got)
		}
		parsed, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil || len(rest) != 0 || !bytes.Equal(parsed.Marshal(), blob) || parsed.Type() != typ {
			t.Fatalf("line %q does not parse back to the key: %v", line, err)
		}
	})
}
