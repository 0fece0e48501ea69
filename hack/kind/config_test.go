package main

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	yaml "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

// root is the repository's top directory (hack/kind/../..).
const root = "../.."

// k8sVersion is the payload's Kubernetes version: K8S_VERSION of the
// Makefile.
func k8sVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^K8S_VERSION \?= (v\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("the Makefile sets no K8S_VERSION ?= vX.Y.Z")
	}
	return string(m[1])
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// committed loads cluster.yaml and net-conf.json as committed.
func committed(t *testing.T) (*v1alpha4.Cluster, NetConf) {
	t.Helper()
	c, err := LoadCluster(readFile(t, ClusterFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ParseNetConf(readFile(t, NetConfFile))
	if err != nil {
		t.Fatal(err)
	}
	return c, nc
}

func TestCommittedConfigPasses(t *testing.T) {
	g := NewWithT(t)
	c, nc := committed(t)
	g.Expect(Check(c, nc, k8sVersion(t))).To(Succeed())
	g.Expect(c.Networking.DisableDefaultCNI).To(BeTrue())
	g.Expect(c.Networking.PodSubnet).To(Equal(nc.Network))
	g.Expect(nc.Backend).To(Equal(NetConfBackend{Type: "vxlan", VNI: 4096, Port: 4789}))
	// kind's defaults were applied on top of the file, as kind does.
	g.Expect(c.Nodes).To(HaveLen(2))
	g.Expect(c.Nodes[0].Role).To(Equal(v1alpha4.ControlPlaneRole))
}

// The script renders the file through main's run; the output is the file
// with the address and port set, and still passes the checks.
func TestRenderCommitted(t *testing.T) {
	g := NewWithT(t)
	raw := readFile(t, ClusterFile)
	out, err := Render(raw, netip.MustParseAddr("10.1.2.3"), 16443)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(checkFiles(out, NetConfFile, k8sVersion(t))).To(Succeed())
	c, err := LoadCluster(out)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(c.Networking.APIServerAddress).To(Equal("10.1.2.3"))
	g.Expect(c.Networking.APIServerPort).To(BeEquivalentTo(16443))
	// Comments survive, and nothing but the two values changed.
	g.Expect(string(out)).To(ContainSubstring("# kindnet has no Windows side"))
	orig, err := LoadCluster(raw)
	g.Expect(err).NotTo(HaveOccurred())
	orig.Networking.APIServerAddress, orig.Networking.APIServerPort = "10.1.2.3", 16443
	g.Expect(c).To(Equal(orig))
}

func TestRenderAddresses(t *testing.T) {
	raw := []byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
	for _, tc := range []struct {
		addr, err string
		port      int
	}{
		{addr: "192.168.10.5", port: 6443},
		{addr: "127.0.0.1", port: 6443, err: "cannot reach a loopback"},
		{addr: "0.0.0.0", port: 6443, err: "cannot reach a loopback, unspecified"},
		{addr: "169.254.1.1", port: 6443, err: "link-local"},
		{addr: "224.0.0.1", port: 6443, err: "multicast"},
		{addr: "fd00::1", port: 6443, err: "want an IPv4 address"},
		{addr: "10.0.0.1", port: 0, err: "want 1-65535"},
		{addr: "10.0.0.1", port: 65536, err: "want 1-65535"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			g := NewWithT(t)
			out, err := Render(raw, netip.MustParseAddr(tc.addr), tc.port)
			if tc.err != "" {
				g.Expect(err).To(MatchError(ContainSubstring(tc.err)))
				return
			}
			g.Expect(err).NotTo(HaveOccurred())
			c, err := LoadCluster(out)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(c.Networking.APIServerAddress).To(Equal(tc.addr))
			g.Expect(c.Networking.APIServerPort).To(BeEquivalentTo(tc.port))
		})
	}
}

func TestRenderRefusesNonObjects(t *testing.T) {
	g := NewWithT(t)
	addr := netip.MustParseAddr("10.0.0.1")
	for _, raw := range []string{"- a\n- b\n", "networking: [1]\n", "a: [\n"} {
		_, err := Render([]byte(raw), addr, 6443)
		g.Expect(err).To(HaveOccurred(), raw)
	}
}

// Check must fail whenever kind's and kube-flannel's settings disagree, or
// do not suit Windows flannel.
func TestCheckRejects(t *testing.T) {
	v := "v1.37.2"
	for _, tc := range []struct {
		name    string
		cluster func(*v1alpha4.Cluster)
		netConf func(*NetConf)
		version string
		err     string
	}{
		{name: "pod subnet differs from flannel's Network", cluster: func(c *v1alpha4.Cluster) { c.Networking.PodSubnet = "10.245.0.0/16" },
			err: "differs from kind's networking.podSubnet"},
		{name: "flannel's Network differs from the pod subnet", netConf: func(nc *NetConf) { nc.Network = "10.244.0.0/17" },
			err: "differs from kind's networking.podSubnet"},
		{name: "VNI unset (flannel defaults to 1)", netConf: func(nc *NetConf) { nc.Backend.VNI = 0 }, err: "Backend.VNI 0: Windows flannel needs 4096"},
		{name: "VNI other", netConf: func(nc *NetConf) { nc.Backend.VNI = 4097 }, err: "Backend.VNI 4097"},
		{name: "port 8472 (Linux's default)", netConf: func(nc *NetConf) { nc.Backend.Port = 8472 }, err: "Backend.Port 8472: Windows flannel needs 4789"},
		{name: "host-gw", netConf: func(nc *NetConf) { nc.Backend.Type = "host-gw" }, err: `Backend.Type "host-gw"`},
		{name: "flannel Network not a CIDR", netConf: func(nc *NetConf) { nc.Network = "10.244.0.0" }, err: "net-conf.json Network"},
		{name: "kindnet left on", cluster: func(c *v1alpha4.Cluster) { c.Networking.DisableDefaultCNI = false }, err: "disableDefaultCNI must be true"},
		{name: "pod subnet not a CIDR", cluster: func(c *v1alpha4.Cluster) { c.Networking.PodSubnet = "ten" }, err: "networking.podSubnet"},
		{name: "service subnet overlaps", cluster: func(c *v1alpha4.Cluster) { c.Networking.ServiceSubnet = "10.244.128.0/20" }, err: "overlaps serviceSubnet"},
		{name: "ipv6 family", cluster: func(c *v1alpha4.Cluster) { c.Networking.IPFamily = v1alpha4.IPv6Family }, err: "need ipv4"},
		{name: "bad cluster name", cluster: func(c *v1alpha4.Cluster) { c.Name = "WMCO" }, err: "cluster name"},
		{name: "no control plane", cluster: func(c *v1alpha4.Cluster) { c.Nodes = c.Nodes[1:] }, err: "no control-plane node"},
		{name: "unknown role", cluster: func(c *v1alpha4.Cluster) { c.Nodes[1].Role = "windows" }, err: `nodes[1].role "windows"`},
		{name: "image not pinned", cluster: func(c *v1alpha4.Cluster) { c.Nodes[0].Image = "kindest/node:v1.37.0" }, err: "pinned"},
		{name: "images differ", cluster: func(c *v1alpha4.Cluster) {
			c.Nodes[1].Image = strings.Replace(c.Nodes[1].Image, "sha256:a", "sha256:b", 1)
		}, err: "differs from nodes[0]'s"},
		{name: "payload of another minor", version: "v1.38.0", err: "the payload's kubelet is v1.38.0"},
		{name: "bad payload version", version: "1.37", err: "want vX.Y.Z"},
		{name: "patch not YAML", cluster: func(c *v1alpha4.Cluster) { c.KubeadmConfigPatches = []string{"kind: [\n"} }, err: "kubeadmConfigPatches[0]"},
		{name: "patch of no kubeadm kind", cluster: func(c *v1alpha4.Cluster) {
			c.Nodes[0].KubeadmConfigPatches = []string{"apiVersion: v1\nkind: ConfigMap\n"}
		}, err: "nodes[0].kubeadmConfigPatches[0]: apiVersion \"v1\""},
		{name: "patch without kind", cluster: func(c *v1alpha4.Cluster) {
			c.KubeadmConfigPatches = []string{"apiVersion: kubeadm.k8s.io/v1beta4\n"}
		}, err: "kubeadmConfigPatches[0]: no kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			c, nc := committed(t)
			if tc.cluster != nil {
				tc.cluster(c)
			}
			if tc.netConf != nil {
				tc.netConf(&nc)
			}
			version := v
			if tc.version != "" {
				version = tc.version
			}
			g.Expect(Check(c, nc, version)).To(MatchError(ContainSubstring(tc.err)))
		})
	}
}

func TestCheckAcceptsPatches(t *testing.T) {
	g := NewWithT(t)
	c, nc := committed(t)
	c.KubeadmConfigPatches = []string{"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  certSANs: [wmco.example]\n"}
	c.Nodes[0].KubeadmConfigPatches = []string{"kind: InitConfiguration\napiVersion: kubeadm.k8s.io/v1beta4\n"}
	g.Expect(Check(c, nc, "v1.37.9")).To(Succeed())
}

func TestLoadClusterIsStrict(t *testing.T) {
	head := "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
	for _, tc := range []struct{ name, yaml, err string }{
		{name: "unknown field", yaml: head + "networking:\n  podSubnets: 10.244.0.0/16\n", err: "field podSubnets not found"},
		{name: "unknown node field", yaml: head + "nodes:\n- role: worker\n  imge: x\n", err: "field imge not found"},
		{name: "old apiVersion", yaml: "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n", err: "want apiVersion kind.x-k8s.io/v1alpha4"},
		{name: "wrong kind", yaml: "kind: Config\napiVersion: kind.x-k8s.io/v1alpha4\n", err: "kind Cluster"},
		{name: "bad propagation (kind's own decoder)", yaml: head + "nodes:\n- role: worker\n  extraMounts:\n  - hostPath: /a\n    containerPath: /b\n    propagation: Sideways\n", err: "Unknown MountPropagation"},
		{name: "not YAML", yaml: "kind: [\n", err: "kind config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadCluster([]byte(tc.yaml))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tc.err)))
		})
	}
}

func TestParseNetConfIsStrict(t *testing.T) {
	for _, tc := range []struct{ name, json, err string }{
		{name: "misspelt key", json: `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNID":4096}}`, err: `unknown field "VNID"`},
		{name: "unknown top-level key", json: `{"Subnets":"10.244.0.0/16"}`, err: `unknown field "Subnets"`},
		{name: "VNI as string", json: `{"Backend":{"VNI":"4096"}}`, err: "cannot unmarshal string"},
		{name: "two values", json: `{} {}`, err: "more than one JSON value"},
		{name: "not JSON", json: `Network: x`, err: "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNetConf([]byte(tc.json))
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(tc.err)))
		})
	}
}

func TestRunPrintsAndRefuses(t *testing.T) {
	g := NewWithT(t)
	g.Expect(run([]string{"-k8s-version", "v1.37.2"})).To(MatchError(ContainSubstring("required")))
	g.Expect(run([]string{"-api-server-address", "10.0.0.300", "-k8s-version", "v1.37.2"})).To(MatchError(ContainSubstring("-api-server-address")))
	g.Expect(run([]string{"-api-server-address", "10.0.0.3", "-k8s-version", "v1.36.1"})).To(MatchError(ContainSubstring("the payload's kubelet is v1.36.1")))
	g.Expect(run([]string{"-api-server-address", "10.0.0.3", "-k8s-version", k8sVersion(t), "-dir", t.TempDir()})).To(MatchError(ContainSubstring(ClusterFile)))
}

// kustomizeBin is the pinned kustomize (hack/tools/go.mod), built into
// bin/ as the Makefile does when it is missing; $WMCO_KUSTOMIZE overrides.
func kustomizeBin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WMCO_KUSTOMIZE"); p != "" {
		return p
	}
	m := regexp.MustCompile(`(?m)^\s*sigs\.k8s\.io/kustomize/kustomize/v5 (v\S+)`).FindSubmatch(readFile(t, filepath.Join(root, "hack", "tools", "go.mod")))
	if m == nil {
		t.Fatal("hack/tools/go.mod does not pin sigs.k8s.io/kustomize/kustomize/v5")
	}
	bin, err := filepath.Abs(filepath.Join(root, "bin", "kustomize-"+string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("Building kustomize %s into %s (make kustomize does the same)", m[1], bin)
	cmd := exec.CommandContext(t.Context(), "go", "build", "-C", filepath.Join(root, "hack", "tools"), "-o", bin, "sigs.k8s.io/kustomize/kustomize/v5")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kustomize: %v\n%s", err, out)
	}
	return bin
}

// manifestObject is what the test reads of a rendered object.
type manifestObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Template struct {
			Spec struct {
				InitContainers []struct {
					Image string `yaml:"image"`
				} `yaml:"initContainers"`
				Containers []struct {
					Image string `yaml:"image"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func decodeAll(t *testing.T, data []byte) []manifestObject {
	t.Helper()
	var objs []manifestObject
	d := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o manifestObject
		err := d.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
}

// flannelVersion is the flannel release the vendored manifest runs.
func flannelVersion(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`image: ghcr\.io/flannel-io/flannel:(v\d+\.\d+\.\d+)\n`).FindSubmatch(readFile(t, filepath.Join(FlannelDir, "kube-flannel.yml")))
	if m == nil {
		t.Fatal("kube-flannel.yml runs no ghcr.io/flannel-io/flannel:vX.Y.Z image")
	}
	return string(m[1])
}

// The overlay the script applies carries net-conf.json, as checked above,
// into the ConfigMap flannel and the operator read, and leaves the rest of
// flannel's manifest as it is.
func TestFlannelOverlayRendersNetConf(t *testing.T) {
	g := NewWithT(t)
	out, err := exec.CommandContext(t.Context(), kustomizeBin(t), "build", FlannelDir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kustomize build %s: %v\n%s", FlannelDir, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	objs := decodeAll(t, out)
	upstream := decodeAll(t, readFile(t, filepath.Join(FlannelDir, "kube-flannel.yml")))
	g.Expect(objs).To(HaveLen(len(upstream)))

	var cm, ds *manifestObject
	for i := range objs {
		switch o := &objs[i]; {
		case o.Kind == "ConfigMap" && o.Metadata.Name == "kube-flannel-cfg" && o.Metadata.Namespace == "kube-flannel":
			cm = o
		case o.Kind == "DaemonSet" && o.Metadata.Namespace == "kube-flannel":
			ds = o
		}
	}
	g.Expect(cm).NotTo(BeNil(), "no ConfigMap kube-flannel/kube-flannel-cfg")
	g.Expect(ds).NotTo(BeNil(), "no DaemonSet in kube-flannel")

	rendered, err := ParseNetConf([]byte(cm.Data["net-conf.json"]))
	g.Expect(err).NotTo(HaveOccurred())
	_, want := committed(t)
	g.Expect(rendered).To(Equal(want))
	c, _ := committed(t)
	g.Expect(Check(c, rendered, k8sVersion(t))).To(Succeed())
	g.Expect(cm.Data).To(HaveKey("cni-conf.json"), "the merge dropped flannel's CNI configuration")

	version := flannelVersion(t)
	for _, ctr := range ds.Spec.Template.Spec.Containers {
		g.Expect(ctr.Image).To(Equal("ghcr.io/flannel-io/flannel:" + version))
	}
	g.Expect(ds.Spec.Template.Spec.InitContainers).NotTo(BeEmpty())
}

// The vendored kube-flannel.yml is flannel's own, byte for byte: make
// test-kind downloads github.com/flannel-io/flannel at the version its
// images name (through the module proxy and the checksum database) and
// passes its directory in WMCO_FLANNEL_MODULE_DIR.
func TestVendoredManifestIsUpstream(t *testing.T) {
	dir := os.Getenv("WMCO_FLANNEL_MODULE_DIR")
	if dir == "" {
		t.Skip("WMCO_FLANNEL_MODULE_DIR is not set (make test-kind sets it)")
	}
	g := NewWithT(t)
	g.Expect(filepath.Base(dir)).To(Equal("flannel@"+flannelVersion(t)), "WMCO_FLANNEL_MODULE_DIR is not the module of the manifest's version")
	g.Expect(string(readFile(t, filepath.Join(FlannelDir, "kube-flannel.yml")))).To(Equal(string(readFile(t, filepath.Join(dir, "Documentation", "kube-flannel.yml")))))
}

func FuzzParseNetConf(f *testing.F) {
	f.Add([]byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan","VNI":4096,"Port":4789}}`))
	f.Add([]byte(`{"Network":"10.244.0.0/16","EnableIPv4":true,"Backend":{"Type":"host-gw"}}`))
	c, err := LoadCluster([]byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  disableDefaultCNI: true\n  podSubnet: 10.244.0.0/16\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		nc, err := ParseNetConf(raw)
		if err != nil {
			return
		}
		// Check never panics, and accepts a Windows VXLAN configuration
		// only with the pod subnet's Network.
		err = Check(c, nc, "v1.37.2")
		if err != nil && strings.Contains(err.Error(), "differs from kind's networking.podSubnet") {
			if p, perr := netip.ParsePrefix(nc.Network); perr == nil && p.Masked() == netip.MustParsePrefix("10.244.0.0/16") {
				t.Fatalf("Network %s reported as differing from 10.244.0.0/16", nc.Network)
			}
		}
	})
}

func FuzzLoadCluster(f *testing.F) {
	f.Add([]byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"))
	f.Add([]byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: 80\n    protocol: udp\n"))
	addr := netip.MustParseAddr("10.0.0.1")
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := LoadCluster(raw)
		if err != nil {
			return
		}
		_ = Check(c, NetConf{}, "v1.37.2")
		// A configuration kind loads renders, and the rendering loads
		// with the address set.
		out, err := Render(raw, addr, 6443)
		if err != nil {
			return
		}
		rc, err := LoadCluster(out)
		if err != nil {
			t.Fatalf("rendered configuration does not load: %v\n%s", err, out)
		}
		if rc.Networking.APIServerAddress != addr.String() {
			t.Fatalf("apiServerAddress %q after rendering", rc.Networking.APIServerAddress)
		}
	})
}

// kindCreate runs kind's `create cluster` on config with a docker on PATH
// that answers kind's provider checks, reports the node image present and
// refuses to create kind's network: kind has loaded and validated the
// configuration with its own internal code (pkg/internal/apis/config)
// before that, so the output says which of the two stopped it.
func kindCreate(t *testing.T, kind string, config []byte) string {
	t.Helper()
	dir := t.TempDir()
	docker := `#!/bin/sh
case "$1" in
info) echo '{"Rootless":false,"CgroupDriver":"systemd","CgroupVersion":"2","SecurityOptions":[]}' ;;
inspect) [ "$2" = --type=image ] && exit 0; exit 1 ;;
network) echo "no networks here" >&2; exit 1 ;;
pull|run|create|exec|rm) exit 1 ;;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(docker), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(cfg, config, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), kind, "create", "cluster", "--config", cfg, "--kubeconfig", filepath.Join(dir, "kubeconfig"))
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "KIND_EXPERIMENTAL_PROVIDER=docker")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("kind create cluster succeeded with a docker that cannot create a network:\n%s", out)
	}
	return string(out)
}

// kind's own validation, internal to its module, accepts the rendered
// configuration and refuses what it must refuse: the checks above are
// not the only judge. kind is the version hack/kind/go.mod pins, the one
// make e2e-kind-windows runs.
func TestKindValidatesRendered(t *testing.T) {
	g := NewWithT(t)
	kind := filepath.Join(t.TempDir(), "kind")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", kind, "sigs.k8s.io/kind")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build kind: %v\n%s", err, out)
	}
	c, _ := committed(t)
	rendered, err := Render(readFile(t, ClusterFile), netip.MustParseAddr("10.0.0.4"), 6443)
	g.Expect(err).NotTo(HaveOccurred())
	out := kindCreate(t, kind, rendered)
	g.Expect(out).To(ContainSubstring("Ensuring node image (" + strings.Split(c.Nodes[0].Image, "@")[0] + ")"))
	g.Expect(out).To(ContainSubstring("no networks here"), "kind stopped before creating its network")

	bad := bytes.Replace(rendered, []byte("podSubnet: 10.244.0.0/16"), []byte("podSubnet: 10.244.0.0/33"), 1)
	g.Expect(bad).NotTo(Equal(rendered))
	g.Expect(kindCreate(t, kind, bad)).To(ContainSubstring("invalid pod subnet"))
	unknown := bytes.Replace(rendered, []byte("kubeProxyMode: iptables"), []byte("kubeProxyMode: ipvs-ish"), 1)
	g.Expect(unknown).NotTo(Equal(rendered))
	g.Expect(kindCreate(t, kind, unknown)).To(ContainSubstring("invalid kubeProxyMode"))
}
