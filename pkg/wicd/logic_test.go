package wicd

import (
	"crypto/x509"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/openwmco/wmco/pkg/wicdapi"
)

func svc(name string, deps ...string) wicdapi.Service {
	return wicdapi.Service{Name: name, Binary: `C:\k\payload\v1\` + name + ".exe", Dependencies: deps}
}

func names(svcs []wicdapi.Service) []string {
	out := make([]string, len(svcs))
	for i, s := range svcs {
		out[i] = s.Name
	}
	return out
}

func TestStartOrder(t *testing.T) {
	cases := []struct {
		name    string
		in      []wicdapi.Service
		want    []string
		wantErr string
	}{
		{"empty", nil, []string{}, ""},
		{"node services", []wicdapi.Service{
			svc("kube-proxy", "kubelet", "hybrid-overlay-node"), svc("kubelet", "containerd"),
			svc("hybrid-overlay-node", "kubelet"), svc("containerd"), svc("csi-proxy"),
		}, []string{"containerd", "csi-proxy", "kubelet", "hybrid-overlay-node", "kube-proxy"}, ""},
		{"independent services sorted by name", []wicdapi.Service{svc("b"), svc("c"), svc("a")}, []string{"a", "b", "c"}, ""},
		{"unknown dependency", []wicdapi.Service{svc("kubelet", "containerd")}, nil, `depends on "containerd", which the plan does not install`},
		{"cycle", []wicdapi.Service{svc("a", "b"), svc("b", "a"), svc("c")}, nil, "[a b] depend on each other in a cycle"},
		{"self cycle", []wicdapi.Service{svc("a", "a")}, nil, "cycle"},
		{"duplicate", []wicdapi.Service{svc("a"), svc("a")}, nil, `service "a" is listed twice`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := startOrder(tc.in)
			if tc.wantErr != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(names(got)).To(Equal(tc.want))
		})
	}
}

func TestDependentsClosure(t *testing.T) {
	g := NewWithT(t)
	svcs := []wicdapi.Service{svc("containerd"), svc("kubelet", "containerd"), svc("kube-proxy", "kubelet"), svc("csi-proxy")}
	g.Expect(dependentsClosure(svcs, map[string]bool{"containerd": true})).To(Equal(map[string]bool{"containerd": true, "kubelet": true, "kube-proxy": true}))
	g.Expect(dependentsClosure(svcs, map[string]bool{"kube-proxy": true})).To(Equal(map[string]bool{"kube-proxy": true}))
	g.Expect(dependentsClosure(svcs, map[string]bool{})).To(BeEmpty())
}

func TestLeftoversAdd(t *testing.T) {
	rule := func(name string, port int) wicdapi.FirewallRule {
		return wicdapi.FirewallRule{Name: name, Protocol: "TCP", Port: port}
	}
	for _, tc := range []struct {
		name      string
		plans     []*wicdapi.Plan
		added     []bool
		wantSvcs  []wicdapi.Service
		wantRules []wicdapi.FirewallRule
	}{
		{name: "no plan", plans: []*wicdapi.Plan{nil}, added: []bool{false}},
		{name: "a plan with nothing to remove", plans: []*wicdapi.Plan{{}}, added: []bool{false}},
		{
			name:      "one plan",
			plans:     []*wicdapi.Plan{{Services: []wicdapi.Service{svc("kubelet"), svc("old")}, FirewallRules: []wicdapi.FirewallRule{rule("a", 1)}}},
			added:     []bool{true},
			wantSvcs:  []wicdapi.Service{svc("kubelet"), svc("old")},
			wantRules: []wicdapi.FirewallRule{rule("a", 1)},
		},
		{
			name: "a later plan's entry of a name replaces the earlier one's",
			plans: []*wicdapi.Plan{
				{Services: []wicdapi.Service{svc("kubelet"), svc("old")}, FirewallRules: []wicdapi.FirewallRule{rule("a", 1)}},
				{Services: []wicdapi.Service{svc("kubelet", "containerd"), svc("containerd")}, FirewallRules: []wicdapi.FirewallRule{rule("a", 2), rule("b", 3)}},
			},
			added:     []bool{true, true},
			wantSvcs:  []wicdapi.Service{svc("old"), svc("kubelet", "containerd"), svc("containerd")},
			wantRules: []wicdapi.FirewallRule{rule("a", 2), rule("b", 3)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			l := &leftovers{}
			for i, p := range tc.plans {
				g.Expect(l.add(p)).To(Equal(tc.added[i]))
			}
			g.Expect(l.Services).To(Equal(tc.wantSvcs))
			g.Expect(l.FirewallRules).To(Equal(tc.wantRules))
		})
	}
}

func TestPaths(t *testing.T) {
	g := NewWithT(t)
	g.Expect(samePath(`C:\k\Kubelet.exe`, `c:/K/kubelet.exe`)).To(BeTrue())
	g.Expect(samePath(`C:\k\kubelet.exe`, `C:\k\kubelet.ex`)).To(BeFalse())
	g.Expect(underDir(`C:\k\payload\v1\kubelet.exe`, `c:\K\Payload`)).To(BeTrue())
	g.Expect(underDir(`C:\k\payload`, `C:\k\payload\`)).To(BeTrue())
	g.Expect(underDir(`C:\k\payloads\x`, `C:\k\payload`)).To(BeFalse(), "a sibling with a common prefix is not inside")
	g.Expect(parentDir(`C:\k\cni\config\cni.conf`)).To(Equal(`C:\k\cni\config`))

	for p, want := range map[string]bool{
		`C:\k`: true, `c:/k/x.exe`: true, `C:\`: true, `D:\data\x`: true,
		`k\x`: false, `\k\x`: false, `C:k`: false, `C:\k\..\Windows`: false, `C:\k\.\x`: false,
		`C:\k\a:b`: false, `C:\k\a|b`: false, `1:\k`: false, ``: false,
	} {
		g.Expect(isAbsWindowsPath(p)).To(Equal(want), p)
	}
}

func validPlan() *wicdapi.Plan {
	return &wicdapi.Plan{
		SchemaVersion: wicdapi.SchemaVersion, PayloadVersion: "1.0.0", NodeName: "win-1",
		Directories: []string{`C:\k`, `C:\k\log`},
		Files:       []wicdapi.File{{Path: `C:\k\kubelet.conf`, Content: []byte("{}")}},
		Services:    []wicdapi.Service{svc("containerd"), svc("kubelet", "containerd")},
	}
}

func TestValidatePlan(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*wicdapi.Plan)
		wantErr string
	}{
		{"valid", func(*wicdapi.Plan) {}, ""},
		{"newer schema", func(p *wicdapi.Plan) { p.SchemaVersion = 2 }, "schema version 2"},
		{"no payload version", func(p *wicdapi.Plan) { p.PayloadVersion = "" }, "payload version"},
		{"payload version escapes", func(p *wicdapi.Plan) { p.PayloadVersion = `..\..\Windows` }, "payload version"},
		{"no node name", func(p *wicdapi.Plan) { p.NodeName = "" }, "node name is empty"},
		{"relative directory", func(p *wicdapi.Plan) { p.Directories = append(p.Directories, `k\log`) }, "not an absolute Windows path"},
		{"file escapes", func(p *wicdapi.Plan) { p.Files[0].Path = `C:\k\..\Windows\system32\x.dll` }, "not an absolute Windows path"},
		{"drive root as file", func(p *wicdapi.Plan) { p.Files[0].Path = `C:\` }, "not an absolute Windows path"},
		{"duplicate file by case", func(p *wicdapi.Plan) {
			p.Files = append(p.Files, wicdapi.File{Path: `c:/K/KUBELET.conf`})
		}, "listed twice"},
		{"bad service name", func(p *wicdapi.Plan) { p.Services[0].Name = "contain erd" }, "service name"},
		{"relative binary", func(p *wicdapi.Plan) { p.Services[0].Binary = "containerd.exe" }, "binary"},
		{"bad start type", func(p *wicdapi.Plan) { p.Services[0].StartType = "boot" }, "start type"},
		{"dependency cycle", func(p *wicdapi.Plan) { p.Services[0].Dependencies = []string{"kubelet"} }, "cycle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			p := validPlan()
			tc.mutate(p)
			err := validatePlan(p)
			if tc.wantErr == "" {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(MatchError(ContainSubstring(tc.wantErr)))
			}
		})
	}
}

func TestDecodePlanIsStrict(t *testing.T) {
	g := NewWithT(t)
	_, err := decodePlan([]byte(`{"schemaVersion":1,"payloadVersion":"1","nodeName":"n","surprise":true}`))
	g.Expect(err).To(MatchError(ContainSubstring(`unknown field "surprise"`)))
	var we *wicdapi.Error
	g.Expect(errors.As(err, &we)).To(BeTrue())
	g.Expect(we.Code).To(Equal(wicdapi.CodeInvalidPlan))
	_, err = decodePlan([]byte(`not json`))
	g.Expect(errors.As(err, &we)).To(BeTrue())
	g.Expect(we.Code).To(Equal(wicdapi.CodeInvalidPlan))
}

func TestSameService(t *testing.T) {
	base := wicdapi.Service{Name: "kubelet", Binary: `C:\k\kubelet.exe`, Args: []string{"--v=2"}, Env: map[string]string{"A": "1"}}
	cases := []struct {
		name   string
		mutate func(*wicdapi.Service)
		same   bool
	}{
		{"identical", func(*wicdapi.Service) {}, true},
		{"binary case and slashes", func(s *wicdapi.Service) { s.Binary = `c:/K/KUBELET.exe` }, true},
		{"explicit automatic start", func(s *wicdapi.Service) { s.StartType = wicdapi.StartAutomatic }, true},
		{"empty vs nil deps", func(s *wicdapi.Service) { s.Dependencies = []string{} }, true},
		{"display name equal to the name", func(s *wicdapi.Service) { s.DisplayName = "kubelet" }, true},
		{"other display name", func(s *wicdapi.Service) { s.DisplayName = "Kubelet" }, false},
		{"arg changed", func(s *wicdapi.Service) { s.Args = []string{"--v=4"} }, false},
		{"env changed", func(s *wicdapi.Service) { s.Env = map[string]string{"A": "2"} }, false},
		{"manual start", func(s *wicdapi.Service) { s.StartType = wicdapi.StartManual }, false},
		{"recovery changed", func(s *wicdapi.Service) { s.Recovery.RestartDelaySeconds = 5 }, false},
		{"binary moved", func(s *wicdapi.Service) { s.Binary = `C:\k\payload\v2\kubelet.exe` }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := base
			b.Args = append([]string(nil), base.Args...)
			tc.mutate(&b)
			NewWithT(t).Expect(sameService(base, b)).To(Equal(tc.same))
		})
	}
}

func TestUsesAny(t *testing.T) {
	g := NewWithT(t)
	s := wicdapi.Service{Name: "kubelet", Args: []string{`--config=C:\k\kubelet.conf`, "--v=2"}}
	g.Expect(usesAny(s.Args, []string{`c:\K\Kubelet.conf`})).To(BeTrue())
	g.Expect(usesAny(s.Args, []string{`C:\k\kube-proxy.conf`})).To(BeFalse())
	g.Expect(usesAny(s.Args, nil)).To(BeFalse())
}

func FuzzDecodePlan(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":1,"payloadVersion":"1.0","nodeName":"a","services":[{"name":"a","binary":"C:\\k\\a.exe","dependencies":["a"]}]}`))
	f.Add([]byte(`{"schemaVersion":1,"payloadVersion":"1.0","nodeName":"a","files":[{"path":"C:\\k\\x","content":"AA=="}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePlan(data)
		if err != nil {
			return
		}
		// An accepted plan is orderable and writes only below a drive root.
		if _, err := startOrder(p.Services); err != nil {
			t.Fatalf("accepted plan cannot be ordered: %v", err)
		}
		paths := append([]string(nil), p.Directories...)
		for _, f := range p.Files {
			paths = append(paths, f.Path)
		}
		for _, s := range p.Services {
			paths = append(paths, s.Binary)
		}
		for _, path := range paths {
			for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '\\' || r == '/' }) {
				if part == ".." {
					t.Fatalf("accepted escaping path %q", path)
				}
			}
		}
	})
}

// trustedRootErrRE is every error parseTrustedRoots may return: an index
// and a reason, never the certificate's content.
var trustedRootErrRE = regexp.MustCompile(`^trusted root certificate [0-9]+ (is not a PEM CERTIFICATE|holds more than one PEM block|is not a valid X\.509 certificate)$`)

func FuzzParseTrustedRoots(f *testing.F) {
	ca, err := os.ReadFile("../nodeconfig/testdata/ca.crt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(ca), "")
	f.Add(string(ca), string(ca)+string(ca))
	f.Add("-----BEGIN CERTIFICATE-----\nU0VDUkVU\n-----END CERTIFICATE-----\n", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		roots, err := parseTrustedRoots([]string{a, b})
		if err != nil {
			if !trustedRootErrRE.MatchString(err.Error()) {
				t.Fatalf("unexpected error text %q", err)
			}
			return
		}
		for _, r := range roots {
			if _, err := x509.ParseCertificate(r.der); err != nil || r.thumbprint != wicdapi.Thumbprint(r.der) {
				t.Fatalf("accepted a root that is not a certificate or misnamed: %v", err)
			}
		}
	})
}

// A service under the service host uses its configuration and what its
// program's arguments name; a plan must write that configuration.
func TestServiceHostPlans(t *testing.T) {
	g := NewWithT(t)
	hostedSvc := wicdapi.Service{Name: "flanneld", Binary: `C:\k\payload\v1\wicd.exe`, Args: wicdapi.ServiceHostArgs("flanneld")}
	cfg := []byte(`{"binary":"C:\\k\\payload\\v1\\kube-log-runner.exe","args":["C:\\k\\payload\\v1\\flanneld.exe","--net-config-path=C:\\k\\flannel\\net-conf.json"]}`)
	p := &wicdapi.Plan{SchemaVersion: wicdapi.SchemaVersion, PayloadVersion: "v1", NodeName: "n", Services: []wicdapi.Service{hostedSvc}}
	g.Expect(validatePlan(p)).To(MatchError(ContainSubstring(`the plan writes no C:\k\service-host\flanneld.json`)))
	p.Files = []wicdapi.File{{Path: wicdapi.ServiceHostConfigPath("flanneld"), Content: []byte(`{"binary":"flanneld.exe"}`)}}
	g.Expect(validatePlan(p)).To(MatchError(ContainSubstring("not an absolute Windows path")))
	p.Files[0].Content = cfg
	g.Expect(validatePlan(p)).To(Succeed())

	args := commandArgs(hostedSvc, hostedConfigs(p))
	g.Expect(usesAny(args, []string{`C:\k\flannel\net-conf.json`})).To(BeTrue())
	g.Expect(usesAny(args, []string{wicdapi.ServiceHostConfigPath("flanneld")})).To(BeTrue())
	g.Expect(usesAny(args, []string{`C:\k\payload\v1\flanneld.exe`})).To(BeTrue())
	g.Expect(usesAny(hostedSvc.Args, []string{`C:\k\flannel\net-conf.json`})).To(BeFalse(), "the service's own arguments name none of them")

	// Not a service host: other arguments, or another program.
	g.Expect(wicdapi.IsServiceHost(hostedSvc)).To(BeTrue())
	other := hostedSvc
	other.Args = wicdapi.ServiceHostArgs("kubelet")
	g.Expect(wicdapi.IsServiceHost(other)).To(BeFalse())
	other = hostedSvc
	other.Binary = `C:\k\payload\v1\kubelet.exe`
	g.Expect(wicdapi.IsServiceHost(other)).To(BeFalse())
}
