// Package walls holds the architecture's walls as a test, from the real
// import graph (`go list`), so the compiler's silence is not mistaken for
// consent: see ARCHITECTURE.md, "Layout".
package walls

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/openwmco/wmco"

// pkgInfo is what `go list -json` says of one package (test files left
// out: tests may import what they like).
type pkgInfo struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// graph is the module's packages by import path.
type graph map[string]pkgInfo

// wall is one rule: no package matching from may depend, directly or
// through others, on a package matching to.
type wall struct {
	why  string
	from func(string) bool
	to   func(string) bool
}

func under(dirs ...string) func(string) bool {
	return func(p string) bool {
		for _, d := range dirs {
			d = module + "/" + d
			if p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}
}

func exactly(dirs ...string) func(string) bool {
	return func(p string) bool {
		for _, d := range dirs {
			if p == module+"/"+d {
				return true
			}
		}
		return false
	}
}

// walls are the rules of the architecture.
var walls = []wall{
	{
		why:  "only the WindowsInstance controller touches a host: the inventory, CSR and WindowsNodeConfig controllers (and what they share) must not reach pkg/remote",
		from: under("controllers/inventory", "controllers/csrapproval", "controllers/core", "controllers/wnc"),
		to:   under("pkg/remote"),
	},
	{
		why:  "the pure packages depend on no controller, transport or test code",
		from: under("pkg/csr", "pkg/inventory", "pkg/nodeconfig", "pkg/payload", "pkg/hostaddr", "pkg/userdata", "pkg/servingcert"),
		to:   under("controllers", "pkg/remote", "test"),
	},
	{
		why:  "production code never imports test code",
		from: under("cmd", "controllers", "pkg", "api"),
		to:   under("test"),
	},
	{
		why:  "the operator binary never links the node agent",
		from: exactly("cmd/operator"),
		to:   under("pkg/wicd"),
	},
	{
		why: "the operator binary does not link k8s.io/apiserver (its CEL, gRPC and OpenTelemetry; pkg/metricsauth serves the metrics filter instead): " +
			"the binary's mapped pages count in the operator's resident memory",
		from: exactly("cmd/operator"),
		to: func(p string) bool {
			return p == "k8s.io/apiserver" || strings.HasPrefix(p, "k8s.io/apiserver/")
		},
	},
}

// violations lists "from -> ... -> to: why" for every broken wall.
func violations(g graph) []string {
	var out []string
	for _, w := range walls {
		for _, p := range sortedKeys(g) {
			if !w.from(p) {
				continue
			}
			for _, d := range g[p].Deps {
				if w.to(d) {
					out = append(out, strings.Join(g.path(p, d), " -> ")+": "+w.why)
				}
			}
		}
	}
	return out
}

// path is a shortest import chain from one package to another.
func (g graph) path(from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, strings.TrimPrefix(p, module+"/"))
			}
			slices.Reverse(chain)
			return chain
		}
		for _, i := range g[p].Imports {
			if _, seen := prev[i]; !seen {
				prev[i] = p
				queue = append(queue, i)
			}
		}
	}
	return []string{from, "...", to}
}

func sortedKeys(g graph) []string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// load runs `go list -deps -json` over the module for one GOOS; -deps
// includes the standard library and other modules, so Imports can be
// followed all the way.
func load(t *testing.T, goos string) graph {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Deps", "./...")
	cmd.Dir = root
	cmd.Env = append(cmd.Environ(), "GOOS="+goos, "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list (GOOS=%s): %v\n%s", goos, err, stderr.String())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		g[p.ImportPath] = p
	}
	if _, ok := g[module+"/cmd/operator"]; !ok {
		t.Fatalf("go list (GOOS=%s) did not list %s/cmd/operator", goos, module)
	}
	return g
}

// TestWalls fails when a package crosses a wall of the architecture, for
// Linux (the operator) and Windows (the agent) builds alike.
func TestWalls(t *testing.T) {
	for _, goos := range []string{"linux", "windows"} {
		t.Run(goos, func(t *testing.T) {
			for _, v := range violations(load(t, goos)) {
				t.Error(v)
			}
		})
	}
}

// The rules themselves catch what they should, on a made-up graph.
func TestWallsCatchViolations(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	g := graph{
		m("controllers/inventory"): {ImportPath: m("controllers/inventory"), Imports: []string{m("controllers/core")}, Deps: []string{m("controllers/core"), m("pkg/remote")}},
		m("controllers/core"):      {ImportPath: m("controllers/core"), Imports: []string{m("pkg/remote")}, Deps: []string{m("pkg/remote")}},
		m("pkg/remote"):            {ImportPath: m("pkg/remote")},
		m("pkg/csr"):               {ImportPath: m("pkg/csr"), Imports: []string{m("test/winsim")}, Deps: []string{m("test/winsim")}},
		m("test/winsim"):           {ImportPath: m("test/winsim")},
		m("cmd/operator"): {ImportPath: m("cmd/operator"), Imports: []string{m("pkg/wicd/windows"), "sigs.k8s.io/controller-runtime/pkg/metrics/filters"},
			Deps: []string{m("pkg/wicd/windows"), "sigs.k8s.io/controller-runtime/pkg/metrics/filters", "k8s.io/apiserver/pkg/authorization/authorizer"}},
		"sigs.k8s.io/controller-runtime/pkg/metrics/filters": {ImportPath: "sigs.k8s.io/controller-runtime/pkg/metrics/filters",
			Imports: []string{"k8s.io/apiserver/pkg/authorization/authorizer"}, Deps: []string{"k8s.io/apiserver/pkg/authorization/authorizer"}},
		"k8s.io/apiserver/pkg/authorization/authorizer": {ImportPath: "k8s.io/apiserver/pkg/authorization/authorizer"},
		m("pkg/wicd/windows"):                           {ImportPath: m("pkg/wicd/windows")},
		m("controllers/instance"):                       {ImportPath: m("controllers/instance"), Imports: []string{m("pkg/remote")}, Deps: []string{m("pkg/remote")}},
		m("controllers/csrapproval"):                    {ImportPath: m("controllers/csrapproval")},
	}
	got := violations(g)
	want := []string{
		"controllers/core -> pkg/remote",
		"controllers/inventory -> controllers/core -> pkg/remote",
		"pkg/csr -> test/winsim: the pure packages",
		"pkg/csr -> test/winsim: production code",
		"cmd/operator -> pkg/wicd/windows",
		"cmd/operator -> sigs.k8s.io/controller-runtime/pkg/metrics/filters -> k8s.io/apiserver/pkg/authorization/authorizer",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(v string) bool { return strings.HasPrefix(v, w) }) {
			t.Errorf("no violation starting %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d violations, want %d (instance may use pkg/remote):\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}
