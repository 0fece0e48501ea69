package monitoring

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const dashboardFile = "config/grafana/wmco-dashboard.json"

// panel is what the test reads of a Grafana panel.
type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// TestDashboardQueriesUseExportedMetrics parses every query of the
// dashboard and its variables and checks each metric name: wmco_* against
// a scrape of the operator, windows_* against windows_exporter's
// documented list for the pinned version.
func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string  `json:"uid"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	operator, exporter := operatorNames(t), exporterNames(t)
	check := func(where, expr string) {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", where, expr, err)
			return
		}
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			switch {
			case strings.HasPrefix(n, "wmco_") && operator[n]:
			case strings.HasPrefix(n, "windows_") && exporter[n]:
			default:
				t.Errorf("%s: %q uses %s, which neither the operator nor windows_exporter v0.27.2 exports", where, expr, n)
			}
		}
	}
	queries := 0
	seen := map[string]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			seen[p.Title] = true
			walk(p.Panels)
			for _, tg := range p.Targets {
				queries++
				check("panel "+p.Title, tg.Expr)
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue
		}
		s, _ := q["query"].(string)
		if inner, ok := strings.CutPrefix(s, "label_values("); ok {
			check("variable "+v.Name, strings.SplitN(inner, ",", 2)[0])
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
	for _, title := range []string{"Hosts by phase", "Configuration duration (p50, p90)", "Upgrade duration (p90) by result",
		"SSH errors by type", "CSR decisions by result", "CPU utilisation", "Memory available", "Disk free", "Network received"} {
		if !seen[title] {
			t.Errorf("the dashboard has no panel %q", title)
		}
	}
	t.Logf("%d queries checked", queries)
}

// TestDashboardConfigMap checks that the kustomization turns the JSON into
// a ConfigMap with Grafana's sidecar label.
func TestDashboardConfigMap(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "config/grafana/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		ConfigMapGenerator []struct {
			Files   []string `json:"files"`
			Options struct {
				Labels map[string]string `json:"labels"`
			} `json:"options"`
		} `json:"configMapGenerator"`
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	if len(k.ConfigMapGenerator) != 1 || k.ConfigMapGenerator[0].Options.Labels["grafana_dashboard"] != "1" ||
		len(k.ConfigMapGenerator[0].Files) != 1 || "config/grafana/"+k.ConfigMapGenerator[0].Files[0] != dashboardFile {
		t.Errorf("config/grafana/kustomization.yaml does not generate one ConfigMap labelled grafana_dashboard=1 from %s: %+v", dashboardFile, k)
	}
}
