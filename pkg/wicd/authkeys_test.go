package wicd

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

func testKey(t testing.TB, comment string) (line, fingerprint string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	if comment != "" {
		line += " " + comment
	}
	return line, ssh.FingerprintSHA256(k)
}

func mustKeys(t *testing.T, lines ...string) []parsedKey {
	t.Helper()
	var out []parsedKey
	for _, l := range lines {
		k, ok := parseKeyLine(l)
		if !ok {
			t.Fatalf("not a key: %q", l)
		}
		out = append(out, k)
	}
	return out
}

func TestEditAuthorizedKeys(t *testing.T) {
	a, fa := testKey(t, "old@wmco")
	b, fb := testKey(t, "new@wmco")
	admin, _ := testKey(t, "admin@corp")
	// The same key as a, with options and another comment.
	aBare := strings.Join(strings.Fields(a)[:2], " ")
	cases := []struct {
		name         string
		old          string
		add, remove  []string
		want         string
		added, moved []string
	}{
		{"empty file, add", "", []string{b}, nil, b + "\r\n", []string{fb}, nil},
		{"add keeps every other line", "# ops\n" + admin + "\nnot a key\n", []string{b}, nil,
			"# ops\r\n" + admin + "\r\nnot a key\r\n" + b + "\r\n", []string{fb}, nil},
		{"add what is there changes nothing", admin + "\r\n" + b + "\r\n", []string{b}, nil, admin + "\r\n" + b + "\r\n", nil, nil},
		{"rotate: add new, remove old", admin + "\r\n" + a + "\r\n", []string{b}, []string{a},
			admin + "\r\n" + b + "\r\n", []string{fb}, []string{fa}},
		{"remove matches the key, not the text", `from="10.0.0.0/8" ` + aBare + " other-comment\r\n" + a + "\r\n" + admin, nil, []string{aBare},
			admin + "\r\n", nil, []string{fa}},
		{"remove what is not there changes nothing", admin + "\r\n", nil, []string{a}, admin + "\r\n", nil, nil},
		{"removing the last line leaves an empty file", a + "\r\n", nil, []string{a}, "", nil, []string{fa}},
		{"duplicates in the change count once", "", []string{b, b}, nil, b + "\r\n", []string{fb}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			data, res := editAuthorizedKeys([]byte(tc.old), mustKeys(t, tc.add...), mustKeys(t, tc.remove...))
			g.Expect(string(data)).To(Equal(tc.want))
			g.Expect(res.Added).To(Equal(tc.added))
			g.Expect(res.Removed).To(Equal(tc.moved))
			g.Expect(res.Changed).To(Equal(len(tc.added)+len(tc.moved) > 0))
			// Applying the same change again changes nothing.
			again, res2 := editAuthorizedKeys(data, mustKeys(t, tc.add...), mustKeys(t, tc.remove...))
			g.Expect(string(again)).To(Equal(tc.want))
			g.Expect(res2.Changed).To(BeFalse())
		})
	}
}

func TestParseChange(t *testing.T) {
	a, _ := testKey(t, "")
	b, _ := testKey(t, "")
	for _, tc := range []struct {
		name    string
		change  wicdapi.AuthorizedKeysChange
		wantErr string
	}{
		{"add and remove", wicdapi.AuthorizedKeysChange{Add: []string{a}, Remove: []string{b}}, ""},
		{"empty", wicdapi.AuthorizedKeysChange{}, ""},
		{"garbage", wicdapi.AuthorizedKeysChange{Add: []string{"ssh-ed25519 AAAA"}}, "is not an OpenSSH public key line"},
		{"two keys in one line", wicdapi.AuthorizedKeysChange{Add: []string{a + "\n" + b}}, "is not an OpenSSH public key line"},
		{"a comment", wicdapi.AuthorizedKeysChange{Remove: []string{"# " + a}}, "is not an OpenSSH public key line"},
		{"both", wicdapi.AuthorizedKeysChange{Add: []string{a}, Remove: []string{a + " other"}}, "both to add and to remove"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			_, _, err := parseChange(&tc.change)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			g.Expect(err.(*wicdapi.Error).Code).To(Equal(wicdapi.CodeInvalidKeys)) //nolint:errorlint // parseChange returns the type itself
		})
	}
}

func TestAuthorizedKeysFile(t *testing.T) {
	g := NewWithT(t)
	g.Expect(authorizedKeysFile(Account{Name: "Administrator", Admin: true, Profile: `C:\Users\Administrator`})).
		To(Equal(wicdapi.AdministratorsAuthorizedKeysPath))
	g.Expect(authorizedKeysFile(Account{Name: "deploy", Profile: `C:\Users\deploy\`})).To(Equal(`C:\Users\deploy\.ssh\authorized_keys`))
	_, err := authorizedKeysFile(Account{Name: "deploy"})
	g.Expect(err).To(MatchError(ContainSubstring("no usable profile directory")))
}

// FuzzEditAuthorizedKeys: any file content is edited without panicking,
// the removed key is gone afterwards, the added one is there, and every
// line that holds neither survives.
func FuzzEditAuthorizedKeys(f *testing.F) {
	a, _ := testKey(f, "a")
	b, _ := testKey(f, "b")
	f.Add("# comment\r\n" + a + "\r\ngarbage\r\n")
	f.Add("")
	f.Add("\n\n\r\n" + b)
	f.Add(`command="x" ` + a)
	f.Fuzz(func(t *testing.T, old string) {
		add, remove := mustKeys(t, b), mustKeys(t, a)
		data, _ := editAuthorizedKeys([]byte(old), add, remove)
		var kept int
		for _, l := range strings.Split(string(data), "\r\n") {
			k, ok := parseKeyLine(l)
			if ok && k.blob == remove[0].blob {
				t.Fatalf("removed key still there: %q", data)
			}
			if ok && k.blob == add[0].blob {
				kept++
			}
		}
		if kept == 0 {
			t.Fatalf("added key missing: %q", data)
		}
		for _, l := range strings.Split(old, "\n") {
			l = strings.TrimRight(l, "\r")
			if k, ok := parseKeyLine(l); (ok && (k.blob == remove[0].blob || k.blob == add[0].blob)) || l == "" {
				continue
			}
			if !strings.Contains(string(data), l) {
				t.Fatalf("line %q lost: %q", l, data)
			}
		}
	})
}
