package inventory

import (
	"strings"
	"testing"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/openwmco/wmco/pkg/hostaddr"
)

const edKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

func TestParseGoodEntries(t *testing.T) {
	g := NewWithT(t)
	entries, problems := Parse(map[string]string{
		"10.1.42.1":           "username=Administrator",
		" Win-2.Example.com ": "\r\n  username = admin \r\nport=2222\nnodeName=win-2\nhostKey=" + edKey + "\n\n", //nolint:gocritic // the whitespace is what is being tested
		"win-3.example.com.":  "username=CORP\\svc-wmco",
	})
	g.Expect(problems).To(BeEmpty())
	g.Expect(entries).To(Equal([]Entry{
		{Key: "10.1.42.1", Address: "10.1.42.1", Username: "Administrator"},
		{Key: " Win-2.Example.com ", Address: "win-2.example.com", Username: "admin", Port: 2222, NodeName: "win-2", HostKey: edKey},
		{Key: "win-3.example.com.", Address: "win-3.example.com", Username: `CORP\svc-wmco`},
	}))
}

func TestParseRejectsBadEntriesAndKeepsGoodOnes(t *testing.T) {
	cases := []struct {
		key, value string
		reason     string
		hasAddr    bool
	}{
		{"", "username=a", "host is empty", false},
		{"10.1.42", "username=a", "not a valid IPv4 address", false},
		{"10.1.42.256", "username=a", "not a valid IPv4 address", false},
		{"010.1.42.1", "username=a", "not a valid IPv4 address", false},
		{"0.0.0.0", "username=a", "address 0.0.0.0 is refused: it is the unspecified address", true},
		{"169.254.169.254", "username=a", "address 169.254.169.254 is refused: it is the cloud instance metadata address", true},
		{"224.0.0.1", "username=a", "multicast", true},
		{"255.255.255.255", "username=a", "broadcast", true},
		{"bad_host", "username=a", "neither an IP address nor a DNS name", false},
		{"-bad.example.com", "username=a", "neither an IP address nor a DNS name", false},
		{"10.0.0.1", "", "username is missing", true},
		{"10.0.0.2", "username=", "username is empty", true},
		{"10.0.0.3", "user=Administrator", `unknown key "user"`, true},
		{"10.0.0.4", "username=a\nusername=b", "username is given more than once", true},
		{"10.0.0.5", "Administrator", `line "Administrator" is not key=value`, true},
		{"10.0.0.6", "username=a b", "has spaces", true},
		{"10.0.0.7", "username=a&calc", "", false}, // legal in a Windows user name; it travels only in the SSH protocol, never a shell
		{"10.0.0.8", "username=a\nport=0", `port "0" is not a number from 1 to 65535`, true},
		{"10.0.0.9", "username=a\nport=70000", `port "70000"`, true},
		{"10.0.0.10", "username=a\nport=22x", `port "22x"`, true},
		{"10.0.0.11", "username=a\nnodeName=Win_1", `nodeName "Win_1"`, true},
		{"10.0.0.12", "username=a\nhostKey=ssh-dss AAAA", "hostKey is not", true},
		{"10.0.0.13", "username=a\nhostKey=ssh-ed25519 " + strings.Repeat("A", 9000), "hostKey is 9012 characters long; at most 8192", true},
		{"10.0.0.14", "username=" + strings.Repeat("a", 257), "is longer than 256 characters", true},
		{"10.0.0.15", "username=a\nnodeName=ip-10-0-1-2.ec2.internal", "", false}, // a DNS subdomain, as spec.nodeName allows
		{"10.0.0.16", "username=a\nnodeName=win..1", `nodeName "win..1" is not a lower-case RFC 1123 subdomain`, true},
		{"10.0.0.17", "username=a\nnodeName=win-1.", `nodeName "win-1."`, true},
		{"10.0.0.18", "username=a\nnodeName=.win-1", `nodeName ".win-1"`, true},
		{"10.0.0.19", "username=a\nnodeName=" + strings.Repeat("a.", 126) + "ab", "subdomain", true}, // 254 characters
		{"10.0.0.20", "username=a\nnodeName=" + strings.Repeat("a.", 125) + "abc", "", false},        // 253 characters
	}
	data := map[string]string{"10.9.9.9": "username=Administrator"}
	for _, c := range cases {
		data[c.key] = c.value
	}
	g := NewWithT(t)
	entries, problems := Parse(data)

	got := map[string]Problem{}
	for _, p := range problems {
		got[p.Key] = p
	}
	for _, c := range cases {
		if c.reason == "" {
			g.Expect(got).NotTo(HaveKey(c.key), c.key)
			continue
		}
		g.Expect(got).To(HaveKey(c.key), c.key)
		g.Expect(got[c.key].Reason).To(ContainSubstring(c.reason), c.key)
		g.Expect(got[c.key].Address != "").To(Equal(c.hasAddr), c.key)
	}
	var addrs []string
	for _, e := range entries {
		addrs = append(addrs, e.Address)
	}
	g.Expect(addrs).To(Equal([]string{"10.0.0.15", "10.0.0.20", "10.0.0.7", "10.9.9.9"}), "good entries still come through")
}

func TestParseReasonsQuoteABoundedPrefix(t *testing.T) {
	g := NewWithT(t)
	long := strings.Repeat("é", 32<<10) // 64 KiB, two bytes a rune
	for _, value := range []string{
		"username=" + long, "username=" + long + " x", "port=" + long, "nodeName=" + long, long + "=x", long, "username=a\n" + long,
	} {
		entries, problems := Parse(map[string]string{"10.0.0.1": value})
		g.Expect(entries).To(BeEmpty())
		g.Expect(problems).To(HaveLen(1))
		g.Expect(len(problems[0].Reason)).To(BeNumerically("<", 256), problems[0].Reason)
		g.Expect(problems[0].Reason).To(MatchRegexp(`\.\.\. \(6553[68] bytes\)`))
		g.Expect(utf8.ValidString(problems[0].Reason)).To(BeTrue())
	}
}

func TestParseRejectsEveryCopyOfADuplicateHost(t *testing.T) {
	g := NewWithT(t)
	entries, problems := Parse(map[string]string{
		"win-1.example.com":  "username=a",
		"WIN-1.example.com":  "username=b",
		"win-1.example.com.": "username=c",
		"10.0.0.1":           "username=a",
	})
	g.Expect(entries).To(HaveLen(1))
	g.Expect(entries[0].Address).To(Equal("10.0.0.1"))
	g.Expect(problems).To(HaveLen(3))
	for _, p := range problems {
		g.Expect(p.Address).To(Equal("win-1.example.com"))
		g.Expect(p.Reason).To(ContainSubstring("listed more than once"))
	}
}

func TestInstanceName(t *testing.T) {
	g := NewWithT(t)
	g.Expect(InstanceName("fd00::42")).To(Equal("fd00--42"))
	long := strings.Repeat("a", 60) + ".example.com"
	name := InstanceName(long)
	g.Expect(len(name)).To(BeNumerically("<=", 63))
	g.Expect(name).To(MatchRegexp(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`))
	g.Expect(InstanceName(strings.Repeat("a", 60)+".example.org")).NotTo(Equal(name), "distinct long names stay distinct")
}

func FuzzParse(f *testing.F) {
	f.Add("10.1.42.2", "username=a\nnodeName=ip-10-0-1-2.ec2.internal")
	f.Add("10.1.42.1", "username=Administrator\nport=22")
	f.Add("Win.example.com.", "username=a\nnodeName=x\nhostKey="+edKey)
	f.Add("::1", "port=1")
	f.Fuzz(func(t *testing.T, key, value string) {
		entries, problems := Parse(map[string]string{key: value})
		if len(entries)+len(problems) != 1 {
			t.Fatalf("one key gave %d entries and %d problems", len(entries), len(problems))
		}
		for _, e := range entries {
			again, err := hostaddr.Normalize(e.Address)
			if err != nil || again != e.Address {
				t.Fatalf("address %q is not stable: %q, %v", e.Address, again, err)
			}
			if e.Username == "" || strings.ContainsAny(e.Username, " \t\n\"") {
				t.Fatalf("accepted username %q", e.Username)
			}
			if e.Port < 0 {
				t.Fatalf("negative port %d", e.Port)
			}
			if e.NodeName != "" && len(validation.IsDNS1123Subdomain(e.NodeName)) > 0 {
				t.Fatalf("accepted nodeName %q, which is no RFC 1123 subdomain", e.NodeName)
			}
		}
		for _, p := range problems {
			if p.Reason == "" {
				t.Fatal("problem without a reason")
			}
			if len(p.Reason) > 1024 {
				t.Fatalf("reason of %d bytes quotes unbounded input", len(p.Reason))
			}
		}
	})
}
