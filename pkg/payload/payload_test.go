/*
Copyright The openwmco Authors.

Licensed under the Apache License, Version 2.0.
*/

package payload

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// validManifest returns a manifest that passes Validate, with made-up
// sizes and checksums.
func validManifest() *Manifest {
	m := &Manifest{Version: "v1.37.2-wmco.1", KubernetesVersion: "v1.37.2"}
	for _, c := range Components() {
		for _, p := range RequiredFiles(c) {
			m.Files = append(m.Files, File{Path: p, Component: c, Size: 42, SHA256: strings.Repeat("ab", 32)})
		}
	}
	return m
}

func TestHostPath(t *testing.T) {
	g := NewWithT(t)
	g.Expect(HostDir("v1.2.3")).To(Equal(`C:\k\payload\v1.2.3`))
	g.Expect(HostPath("v1.2.3", KubeletPath)).To(Equal(`C:\k\payload\v1.2.3\kubelet.exe`))
	g.Expect(HostPath("v1.2.3", CNIWinOverlayPath)).To(Equal(`C:\k\payload\v1.2.3\cni\win-overlay.exe`))
	g.Expect(validManifest().HostPath(CNIHostLocalPath)).To(Equal(`C:\k\payload\v1.37.2-wmco.1\cni\host-local.exe`))
}

func TestComponents(t *testing.T) {
	g := NewWithT(t)
	g.Expect(Components()).To(Equal([]Component{
		"cni", "containerd", "csi-proxy", "flannel", "hybrid-overlay", "kube-log-runner",
		"kube-proxy", "kubelet", "wicd", "windows-exporter",
	}))
	// flanneld is optional: a payload built before it still loads.
	g.Expect(RequiredFiles(ComponentFlannel)).To(BeEmpty())
	g.Expect(OptionalFiles(ComponentFlannel)).To(Equal([]string{FlanneldPath}))
	owner, found := ComponentOf("FlannelD.exe")
	g.Expect(found).To(BeTrue())
	g.Expect(owner).To(Equal(ComponentFlannel))
	g.Expect(RequiredFiles(ComponentContainerd)).To(Equal([]string{"containerd-shim-runhcs-v1.exe", "containerd.exe"}))
	g.Expect(RequiredFiles("nope")).To(BeNil())
	// RequiredFiles hands out a copy.
	RequiredFiles(ComponentKubelet)[0] = "x"
	g.Expect(RequiredFiles(ComponentKubelet)).To(Equal([]string{"kubelet.exe"}))

	for path, want := range map[string]Component{
		"kubelet.exe":          ComponentKubelet,
		"KUBELET.EXE":          ComponentKubelet,
		"cni/win-bridge.exe":   ComponentCNI,
		"windows_exporter.exe": ComponentWindowsExporter,
		"wicd.exe":             ComponentWICD,
	} {
		got, ok := ComponentOf(path)
		g.Expect(ok).To(BeTrue(), path)
		g.Expect(got).To(Equal(want), path)
	}
	_, ok := ComponentOf("kubectl.exe")
	g.Expect(ok).To(BeFalse())
}

func TestValidatePath(t *testing.T) {
	good := []string{
		"kubelet.exe", "cni/win-overlay.exe", "cni/sub/dir/x.exe", "a b.exe", "x.y.z", "conx.exe",
		"with-dash_under+plus.exe", "a'b(1)[2]{3}~!@#$%^&,;=.exe", strings.Repeat("a", MaxPathLength),
	}
	for _, p := range good {
		t.Run("good "+p[:min(len(p), 20)], func(t *testing.T) {
			NewWithT(t).Expect(ValidatePath(p)).To(Succeed())
		})
	}
	bad := map[string]string{
		"":                                   "empty",
		"/kubelet.exe":                       "relative",
		"cni/":                               "name a file",
		`cni\win-overlay.exe`:                "forward slashes",
		`C:\k\kubelet.exe`:                   `":"`,
		"C:/k/kubelet.exe":                   `":"`,
		"../kubelet.exe":                     `".."`,
		"cni/../../etc/passwd":               `".."`,
		"./kubelet.exe":                      `"."`,
		"cni//x.exe":                         "empty segment",
		"a\x00b":                             "control character",
		"a\tb":                               "control character",
		"a\x7fb":                             "control character",
		"kübelet.exe":                        "ASCII",
		"a<b":                                `"<"`,
		"a>b":                                `">"`,
		`a"b`:                                `"\""`,
		"a|b":                                `"|"`,
		"a?b":                                `"?"`,
		"a*b":                                `"*"`,
		"kubelet.exe.":                       "dot",
		"cni./x.exe":                         "dot",
		" kubelet.exe":                       "space",
		"kubelet.exe ":                       "space",
		"nul":                                "device",
		"NUL.txt":                            "device",
		"cni/com1.exe":                       "device",
		"Lpt9":                               "device",
		"con .exe":                           "device",
		"CONOUT$":                            "device",
		strings.Repeat("a", MaxPathLength+1): "at most",
	}
	for p, want := range bad {
		t.Run("bad "+p, func(t *testing.T) {
			err := ValidatePath(p)
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(want)))
		})
	}
}

func TestValidateVersions(t *testing.T) {
	g := NewWithT(t)
	for _, v := range []string{"v1.37.2", "1", "v1.37.2-wmco.1+build.5", "release_10"} {
		g.Expect(ValidateVersion(v)).To(Succeed(), v)
	}
	for _, v := range []string{"", ".", "..", "-x", "v1/2", `v1\2`, "v1.", "nul", "a b", strings.Repeat("a", 65), "v1:2"} {
		g.Expect(ValidateVersion(v)).NotTo(Succeed(), v)
	}
	for _, v := range []string{"v1.37.2", "v1.37.0-rc.1", "v0.0.0", "v1.37.2+k3s1"} {
		g.Expect(ValidateKubernetesVersion(v)).To(Succeed(), v)
	}
	for _, v := range []string{"", "1.37.2", "v1.37", "v01.37.2", "v1.37.2 ", "latest"} {
		g.Expect(ValidateKubernetesVersion(v)).NotTo(Succeed(), v)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m *Manifest)
		// want are substrings of the error; none means valid.
		want []string
	}{
		{name: "valid", mutate: func(*Manifest) {}},
		{name: "extra CNI plugin", mutate: func(m *Manifest) {
			m.Files = append(m.Files, File{Path: "cni/win-bridge.exe", Component: ComponentCNI, SHA256: strings.Repeat("0", 64)})
		}},
		{name: "empty version", mutate: func(m *Manifest) { m.Version = "" },
			want: []string{`version "": must not be empty`}},
		{name: "version with path", mutate: func(m *Manifest) { m.Version = `..\..\Windows` },
			want: []string{`version "..\\..\\Windows"`}},
		{name: "empty kubernetes version", mutate: func(m *Manifest) { m.KubernetesVersion = "" },
			want: []string{`kubernetesVersion "": must not be empty`}},
		{name: "bad kubernetes version", mutate: func(m *Manifest) { m.KubernetesVersion = "1.37" },
			want: []string{`kubernetesVersion "1.37": must be a Kubernetes release`}},
		{name: "no files", mutate: func(m *Manifest) { m.Files = nil },
			want: []string{"files: must list", `missing "kubelet.exe" of component "kubelet"`}},
		{name: "too many files", mutate: func(m *Manifest) { m.Files = make([]File, MaxFiles+1) },
			want: []string{"at most 1024"}},
		{name: "unknown component", mutate: func(m *Manifest) { m.Files[0].Component = "calico" },
			want: []string{`files[0] "cni/host-local.exe": unknown component "calico"`}},
		{name: "wrong component", mutate: func(m *Manifest) { m.Files[0].Component = ComponentKubelet },
			want: []string{`files[0] "cni/host-local.exe": belongs to component "cni", not "kubelet"`}},
		{name: "file of no component", mutate: func(m *Manifest) {
			m.Files = append(m.Files, File{Path: "kubectl.exe", Component: ComponentKubelet, SHA256: strings.Repeat("0", 64)})
		}, want: []string{`"kubectl.exe": no component ships this file`}},
		{name: "missing required file", mutate: func(m *Manifest) { m.Files = m.Files[1:] },
			want: []string{`files: missing "cni/host-local.exe" of component "cni"`}},
		{name: "duplicate ignoring case", mutate: func(m *Manifest) {
			f := m.Files[0]
			f.Path = "CNI/Host-Local.exe"
			m.Files = append(m.Files, f)
		}, want: []string{`"CNI/Host-Local.exe": same file as files[0] "cni/host-local.exe" on Windows`}},
		{name: "exact duplicate", mutate: func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) },
			want: []string{"same file as files[0]"}},
		{name: "file where a directory is needed", mutate: func(m *Manifest) {
			m.Files = append(m.Files, File{Path: "cni/x.exe/y.exe", Component: ComponentCNI, SHA256: strings.Repeat("0", 64)},
				File{Path: "cni/x.exe", Component: ComponentCNI, SHA256: strings.Repeat("0", 64)})
		}, want: []string{`"cni/x.exe/y.exe": needs "cni/x.exe" to be a directory`}},
		{name: "unsafe path", mutate: func(m *Manifest) { m.Files[0].Path = "cni/../../../Windows/System32/x.exe" },
			want: []string{`must not contain a ".." segment`}},
		{name: "absolute path", mutate: func(m *Manifest) { m.Files[0].Path = "/etc/passwd" },
			want: []string{`"/etc/passwd": path must be relative`}},
		{name: "negative size", mutate: func(m *Manifest) { m.Files[0].Size = -1 },
			want: []string{`"cni/host-local.exe": size -1 must not be negative`}},
		{name: "upper-case sha256", mutate: func(m *Manifest) { m.Files[0].SHA256 = strings.Repeat("AB", 32) },
			want: []string{`"cni/host-local.exe": sha256 must be 64 lower-case hex digits`}},
		{name: "short sha256", mutate: func(m *Manifest) { m.Files[0].SHA256 = "abc" },
			want: []string{"sha256 must be 64"}},
		{name: "source and version", mutate: func(m *Manifest) {
			m.Files[0].Source, m.Files[0].Version = "github.com/containernetworking/plugins@v1.9.1", "v1.9.1"
			m.Files[1].Source = "github.com/ovn-org/ovn-kubernetes/go-controller@v0.0.0-20250901081027-bc4f9b80d20d"
			m.Files[2].Source, m.Files[2].Version = "github.com/Microsoft/hcsshim@v0.14.1", "0.14.1"
		}},
		{name: "source without version", mutate: func(m *Manifest) { m.Files[0].Source = "k8s.io/kubernetes" },
			want: []string{`files[0] "cni/host-local.exe": source "k8s.io/kubernetes": must be a Go module path and version`}},
		{name: "source with space", mutate: func(m *Manifest) { m.Files[0].Source = "k8s.io/kubernetes@v1 x" },
			want: []string{`source "k8s.io/kubernetes@v1 x"`}},
		{name: "source path not a module", mutate: func(m *Manifest) { m.Files[0].Source = "../x@v1" },
			want: []string{`source "../x@v1"`}},
		{name: "source path with a dot-dot element", mutate: func(m *Manifest) { m.Files[0].Source = "example.com/../x@v1" },
			want: []string{`source "example.com/../x@v1"`}},
		{name: "source host upper case", mutate: func(m *Manifest) { m.Files[0].Source = "GitHub.com/x@v1" },
			want: []string{`source "GitHub.com/x@v1"`}},
		{name: "source too long", mutate: func(m *Manifest) { m.Files[0].Source = "a/" + strings.Repeat("b", MaxSourceLength) + "@v1" },
			want: []string{"source", "at most 256"}},
		{name: "bad file version", mutate: func(m *Manifest) { m.Files[0].Version = "v1 beta" },
			want: []string{`files[0] "cni/host-local.exe": version "v1 beta": must start with`}},
		{name: "several problems at once", mutate: func(m *Manifest) {
			m.Version = ""
			m.Files[1].Size = -5
			m.Files[2].Component = ""
		}, want: []string{"version", "size -5", `unknown component ""`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := validManifest() // files[0] is cni/host-local.exe
			tc.mutate(m)
			err := m.Validate()
			if len(tc.want) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			g.Expect(err).To(MatchError(ErrInvalidManifest))
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
	NewWithT(t).Expect((*Manifest)(nil).Validate()).To(MatchError(ErrInvalidManifest))
}

func TestDecodeStrict(t *testing.T) {
	valid, err := validManifest().Encode()
	if err != nil {
		t.Fatal(err)
	}
	s := string(valid)
	cases := map[string]struct {
		data string
		want string
	}{
		"unknown top-level field":    {strings.Replace(s, `"version"`, `"extra": 1, "version"`, 1), `unknown field "extra"`},
		"unknown file field":         {strings.Replace(s, `"component"`, `"mode": 493, "component"`, 1), `unknown field "files[0].mode"`},
		"file field in another case": {strings.Replace(s, `"component"`, `"Source": "a@v1", "component"`, 1), `unknown field "files[0].Source"`},
		"duplicate field":            {strings.Replace(s, `"version"`, `"version": "a", "version"`, 1), `duplicate field "version"`},
		"field in another case":      {strings.Replace(s, `"kubernetesVersion"`, `"KubernetesVersion"`, 1), `unknown field "KubernetesVersion"`},
		"trailing data":              {s + "{}", "invalid character"},
		"not an object":              {`[]`, "cannot unmarshal array"},
		"wrong type":                 {strings.Replace(s, `"size": 42`, `"size": "42"`, 1), "cannot unmarshal string"},
		"fractional size":            {strings.Replace(s, `"size": 42`, `"size": 4.2`, 1), "cannot unmarshal number 4.2"},
		"null":                       {`null`, "version"},
		"empty":                      {``, "unexpected end"},
		"too large":                  {s + strings.Repeat(" ", MaxManifestBytes), "at most"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := Decode([]byte(tc.data))
			g.Expect(err).To(MatchError(ErrInvalidManifest))
			g.Expect(err.Error()).To(ContainSubstring(tc.want))
		})
	}
	m, err := Decode(valid)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	NewWithT(t).Expect(m.Files).To(HaveLen(len(validManifest().Files)))
}

func TestLoadBadManifest(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	_, err := Load(dir)
	g.Expect(errors.Is(err, os.ErrNotExist)).To(BeTrue())

	writeFile(t, filepath.Join(dir, ManifestFile), []byte(`{"version":"v1","kubernetesVersion":"v1.37.2","files":[],"x":1}`))
	_, err = Load(dir)
	g.Expect(err).To(MatchError(ErrInvalidManifest))
	g.Expect(err.Error()).To(ContainSubstring(filepath.Join(dir, ManifestFile)))
}

func TestCreateRejectsStrayFiles(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	for _, c := range Components() {
		for _, p := range RequiredFiles(c) {
			writeFile(t, filepath.Join(dir, filepath.FromSlash(p)), []byte("x"))
		}
	}
	writeFile(t, filepath.Join(dir, "notes.txt"), []byte("x"))
	_, err := Create(dir, "v1", "v1.37.2")
	g.Expect(err).To(MatchError(ContainSubstring(`"notes.txt" belongs to no component`)))

	g.Expect(os.Remove(filepath.Join(dir, "notes.txt"))).To(Succeed())
	writeFile(t, filepath.Join(dir, "cni", "flannel.exe"), []byte("x"))
	m, err := Create(dir, "v1", "v1.37.2")
	g.Expect(err).NotTo(HaveOccurred())
	f, ok := m.File("cni/flannel.exe")
	g.Expect(ok).To(BeTrue())
	g.Expect(f.Component).To(Equal(ComponentCNI))
}

func TestEncodeRoundTrip(t *testing.T) {
	g := NewWithT(t)
	m := validManifest()
	m.Files[3].Source, m.Files[3].Version = "k8s.io/kubernetes@v1.37.2", "v1.37.2"
	data, err := m.Encode()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(data)).To(HaveSuffix("}\n"))
	back, err := Decode(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(back.Files).To(ConsistOf(m.Files))
	// The optional fields are left out when empty.
	g.Expect(string(data)).To(ContainSubstring(`"source": "k8s.io/kubernetes@v1.37.2"`))
	g.Expect(strings.Count(string(data), `"source"`)).To(Equal(1))

	m.Version = ""
	_, err = m.Encode()
	g.Expect(err).To(MatchError(ErrInvalidManifest))
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyRefusesInvalidManifest(t *testing.T) {
	g := NewWithT(t)
	m := validManifest()
	m.Files[0].Path = "../../etc/passwd"
	g.Expect(m.Verify(t.TempDir())).To(MatchError(ErrInvalidManifest))
}

func TestContentVersion(t *testing.T) {
	base := validManifest().ContentVersion()
	NewWithT(t).Expect(base).To(MatchRegexp(`^v1\.37\.2-[0-9a-f]{12}$`))
	NewWithT(t).Expect(ValidateVersion(base)).To(Succeed())
	for _, tc := range []struct {
		name    string
		change  func(m *Manifest)
		changes bool
	}{
		{"same files", func(*Manifest) {}, false},
		{"source and program version do not count", func(m *Manifest) {
			m.Files[0].Source, m.Files[0].Version = "k8s.io/kubernetes@v1.37.2", "v1.37.2"
		}, false},
		{"payload version does not count", func(m *Manifest) { m.Version = "other" }, false},
		{"content", func(m *Manifest) { m.Files[3].SHA256 = strings.Repeat("cd", 32) }, true},
		{"path", func(m *Manifest) { m.Files[0].Path = "cni/other.exe" }, true},
		{"order", func(m *Manifest) { m.Files[0], m.Files[1] = m.Files[1], m.Files[0] }, true},
		{"one file more", func(m *Manifest) {
			m.Files = append(m.Files, File{Path: "cni/extra.exe", Component: ComponentCNI, Size: 1, SHA256: strings.Repeat("ab", 32)})
		}, true},
		{"kubernetes version", func(m *Manifest) { m.KubernetesVersion = "v1.36.9" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			m := validManifest()
			tc.change(m)
			if tc.changes {
				g.Expect(m.ContentVersion()).NotTo(Equal(base))
			} else {
				g.Expect(m.ContentVersion()).To(Equal(base))
			}
		})
	}
}
