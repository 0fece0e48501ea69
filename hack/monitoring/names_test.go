package monitoring

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// repoRoot is the repository's root, two levels up from this module.
const repoRoot = "../.."

// readNames reads a list of metric names, one a line, # for comments.
func readNames(t *testing.T, file string) map[string]bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	names := map[string]bool{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names[line] = true
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("%s lists no metric", file)
	}
	return names
}

// operatorNames are the operator's metric names, from a scrape of its
// registry (kept equal to it by pkg/metrics' TestScrapeReadsTheAPIServer).
func operatorNames(t *testing.T) map[string]bool {
	return readNames(t, filepath.Join("testdata", "operator-metrics.txt"))
}

// exporterNames are windows_exporter's documented metric names for the
// pinned version and the collectors the plan enables.
func exporterNames(t *testing.T) map[string]bool {
	return readNames(t, filepath.Join("testdata", "windows_exporter-v0.27.2-metrics.txt"))
}

// kubeStateMetricsNames are the kube-state-metrics series the rules use.
var kubeStateMetricsNames = map[string]bool{"kube_node_status_condition": true}

// grafanaVariables replaces the dashboard's variables with values that
// parse, as Grafana does before it sends a query.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$node", ".*")

// metricNames parses a PromQL expression and returns the metric names it
// selects, sorted.
func metricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" && !slices.Contains(names, vs.Name) {
			names = append(names, vs.Name)
		}
		return nil
	})
	slices.Sort(names)
	return names, nil
}

func TestMetricNames(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want []string
	}{
		{expr: `sum by (phase) (wmco_instances)`, want: []string{"wmco_instances"}},
		{expr: `a / b{x="1"} and on (node) a`, want: []string{"a", "b"}},
		{expr: `rate(x_total{node=~"$node"}[$__rate_interval])`, want: []string{"x_total"}},
		{expr: `time() - 3`, want: nil},
	} {
		got, err := metricNames(tt.expr)
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.expr, got, tt.want)
		}
	}
	if _, err := metricNames(`sum(`); err == nil {
		t.Error("a broken expression parsed")
	}
}
