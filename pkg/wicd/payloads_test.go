package wicd

import (
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

func TestPayloadRefs(t *testing.T) {
	cases := []struct {
		name string
		svc  wicdapi.Service
		want []payloadRef
	}{
		{"none", wicdapi.Service{Binary: `C:\k\wicd.exe`, Args: []string{"run"}}, nil},
		{"binary", wicdapi.Service{Binary: `C:\k\payload\v1\containerd.exe`}, []payloadRef{{"v1", "containerd.exe"}}},
		{"wrapped program and flag values", wicdapi.Service{
			Binary: `C:\k\payload\v1\kube-log-runner.exe`,
			Args:   []string{`-log-file=C:\k\log\kubelet.log`, `c:/K/PAYLOAD/v1/kubelet.exe`, `--cni-bin-dir="C:\k\payload\v1\cni\"`},
		}, []payloadRef{{"v1", "kube-log-runner.exe"}, {"v1", "kubelet.exe"}, {"v1", "cni"}}},
		{"repeats once, case-insensitively", wicdapi.Service{
			Binary: `C:\k\payload\v1\a.exe`, Args: []string{`C:\K\Payload\V1\A.EXE`},
		}, []payloadRef{{"v1", "a.exe"}}},
		{"two in one argument", wicdapi.Service{Args: []string{`--paths=C:\k\payload\v1\a,C:\k\payload\v2\b`}},
			[]payloadRef{{"v1", "a"}, {"v2", "b"}}},
		{"the folder itself", wicdapi.Service{Args: []string{`--dir=C:\k\payload\v1`}}, []payloadRef{{"v1", ""}}},
		{"the root alone names nothing", wicdapi.Service{Args: []string{`C:\k\payload\`}}, nil},
		{"a sibling of the root", wicdapi.Service{Args: []string{`C:\k\payloads\v1\a.exe`}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(payloadRefs(tc.svc)).To(Equal(tc.want))
		})
	}
}

func TestRepointCandidate(t *testing.T) {
	installed := wicdapi.Service{
		Name: "kubelet", Binary: `C:\k\payload\v1\kube-log-runner.exe`,
		Args: []string{`-log-file=C:\k\log\kubelet.log`, `C:\k\payload\v1\kubelet.exe`, "--v=2"},
	}
	moved := func(mutate func(*wicdapi.Service)) wicdapi.Service {
		s := installed
		s.Args = append([]string(nil), installed.Args...)
		s.Binary = strings.ReplaceAll(s.Binary, `\v1\`, `\v2\`)
		for i := range s.Args {
			s.Args[i] = strings.ReplaceAll(s.Args[i], `\v1\`, `\v2\`)
		}
		mutate(&s)
		return s
	}
	cases := []struct {
		name      string
		installed wicdapi.Service
		desired   wicdapi.Service
		version   string
		wantOld   string
		wantRels  []string
	}{
		{"only the folder moved", installed, moved(func(*wicdapi.Service) {}), "v2", "v1", []string{"kube-log-runner.exe", "kubelet.exe"}},
		{"folder case differs", installed, moved(func(s *wicdapi.Service) {
			s.Binary = strings.ReplaceAll(s.Binary, `C:\k\payload\v2`, `c:\K\PAYLOAD\v2`)
		}), "v2", "v1", []string{"kube-log-runner.exe", "kubelet.exe"}},
		{"an argument changed too", installed, moved(func(s *wicdapi.Service) { s.Args[2] = "--v=4" }), "v2", "", nil},
		{"a file name changed", installed, moved(func(s *wicdapi.Service) { s.Args[1] = `C:\k\payload\v2\kubelet2.exe` }), "v2", "", nil},
		{"the display name changed", installed, moved(func(s *wicdapi.Service) { s.DisplayName = "Kubelet" }), "v2", "", nil},
		{"moved to another version than the plan's", installed, moved(func(*wicdapi.Service) {}), "v3", "", nil},
		{"same version", installed, installed, "v1", "", nil},
		{"no payload paths", wicdapi.Service{Name: "wicd", Binary: `C:\k\wicd.exe`}, wicdapi.Service{Name: "wicd", Binary: `C:\k\wicd.exe`, Args: []string{"run"}}, "v2", "", nil},
		{"a path that leaves the folder", wicdapi.Service{Name: "x", Binary: `C:\k\payload\v1\x.exe`, Args: []string{`C:\k\payload\v1\..\..\y`}},
			wicdapi.Service{Name: "x", Binary: `C:\k\payload\v2\x.exe`, Args: []string{`C:\k\payload\v2\..\..\y`}}, "v2", "", nil},
		{"installed names two versions", wicdapi.Service{Name: "x", Binary: `C:\k\payload\v1\x.exe`, Args: []string{`C:\k\payload\v0\y`}},
			wicdapi.Service{Name: "x", Binary: `C:\k\payload\v2\x.exe`, Args: []string{`C:\k\payload\v2\y`}}, "v2", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			old, rels, ok := repointCandidate(tc.installed, tc.desired, tc.version)
			g.Expect(ok).To(Equal(tc.wantOld != ""))
			g.Expect(old).To(Equal(tc.wantOld))
			g.Expect(rels).To(Equal(tc.wantRels))
		})
	}
}

func TestReplaceFold(t *testing.T) {
	g := NewWithT(t)
	g.Expect(replaceFold(`C:\K\Payload\V1\x;c:/k/payload/v1/y`, `C:\k\payload\v1\`, `C:\k\payload\v2\`)).
		To(Equal(`C:\k\payload\v2\x;C:\k\payload\v2\y`))
	g.Expect(replaceFold("abc", "x", "y")).To(Equal("abc"))
}

func TestValidateStagePlan(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	ok := wicdapi.StageCopy{From: `C:\k\payload\v1\kubelet.exe`, To: `C:\k\payload\v2\kubelet.exe`, SHA256: sum}
	cases := []struct {
		name    string
		copies  []wicdapi.StageCopy
		wantErr string
	}{
		{"empty", nil, ""},
		{"valid", []wicdapi.StageCopy{ok, {From: ok.From, To: `C:\k\payload\v2\cni\host-local.exe`, SHA256: sum}}, ""},
		{"the agent as the source", []wicdapi.StageCopy{{From: `c:\K\WICD.exe`, To: `C:\k\payload\v2\wicd.exe`, SHA256: sum}}, ""},
		{"the staged agent as the source", []wicdapi.StageCopy{{From: wicdapi.AgentStagingPath, To: ok.To, SHA256: sum}}, "payload version's folder"},
		{"target outside the payload", []wicdapi.StageCopy{{From: ok.From, To: `C:\Windows\System32\x.dll`, SHA256: sum}}, "payload version's folder"},
		{"source outside the payload", []wicdapi.StageCopy{{From: `C:\k\bootstrap-kubeconfig`, To: ok.To, SHA256: sum}}, "payload version's folder"},
		{"target is a version folder", []wicdapi.StageCopy{{From: ok.From, To: `C:\k\payload\v2`, SHA256: sum}}, "payload version's folder"},
		{"target escapes", []wicdapi.StageCopy{{From: ok.From, To: `C:\k\payload\v2\..\..\wicd.exe`, SHA256: sum}}, "payload version's folder"},
		{"a sibling of the root", []wicdapi.StageCopy{{From: ok.From, To: `C:\k\payloads\v2\x`, SHA256: sum}}, "payload version's folder"},
		{"onto itself", []wicdapi.StageCopy{{From: ok.From, To: `c:/K/payload/V1/kubelet.exe`, SHA256: sum}}, "onto itself"},
		{"upper-case hash", []wicdapi.StageCopy{{From: ok.From, To: ok.To, SHA256: strings.ToUpper(sum)}}, "lower-case hex"},
		{"short hash", []wicdapi.StageCopy{{From: ok.From, To: ok.To, SHA256: "ab"}}, "lower-case hex"},
		{"twice", []wicdapi.StageCopy{ok, {From: `C:\k\payload\v0\kubelet.exe`, To: `C:\K\PAYLOAD\v2\KUBELET.EXE`, SHA256: sum}}, "listed twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			err := validateStagePlan(&wicdapi.StagePlan{Copies: tc.copies})
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			}
		})
	}
}

func FuzzDecodeStagePlan(f *testing.F) {
	f.Add([]byte(`{"copies":[{"from":"C:\\k\\payload\\v1\\a.exe","to":"C:\\k\\payload\\v2\\a.exe","sha256":"` + strings.Repeat("0", 64) + `"}]}`))
	f.Add([]byte(`{"copies":[{"from":"C:\\k\\payload\\v1\\a","to":"C:\\k\\payload\\..\\a","sha256":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := decodeStagePlan(data)
		if err != nil {
			return
		}
		// An accepted plan only ever writes inside a version folder.
		for _, c := range sp.Copies {
			if !underDir(c.To, wicdapi.PayloadRoot) || samePath(c.To, wicdapi.PayloadRoot) {
				t.Fatalf("accepted target %q outside %s", c.To, wicdapi.PayloadRoot)
			}
			for _, part := range strings.FieldsFunc(c.To, func(r rune) bool { return r == '\\' || r == '/' }) {
				if part == ".." {
					t.Fatalf("accepted escaping target %q", c.To)
				}
			}
		}
	})
}

func FuzzPayloadRefs(f *testing.F) {
	f.Add(`C:\k\payload\v1\kubelet.exe`, `--x=c:/k/payload/v2/cni\`)
	f.Fuzz(func(t *testing.T, bin, arg string) {
		for _, r := range payloadRefs(wicdapi.Service{Binary: bin, Args: []string{arg}}) {
			if r.Version == "" || strings.ContainsAny(r.Version, `\/`) || strings.HasPrefix(r.Rel, `\`) || strings.HasSuffix(r.Rel, `\`) {
				t.Fatalf("bad reference %+v from %q %q", r, bin, arg)
			}
		}
	})
}
