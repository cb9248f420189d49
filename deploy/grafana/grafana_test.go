// Package grafana holds node-healer's Grafana dashboard; its tests check the
// JSON structure, the metric names against node-healer's metrics, and (with
// the real promtool) that every query parses.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/testenv"
)

// exported collects the metrics node-healer really registers (the same
// constructors serve uses), name → histogram, so the dashboard cannot
// query a metric that does not exist.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	rb, err := runbooks.NewRegistry(runbooks.Builtin()...)
	if err != nil {
		t.Fatal(err)
	}
	metrics.New(reg, metrics.StepsOf(rb))
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: constructors only register
	defer rdb.Close()
	o := locks.Options{Registerer: reg}
	locks.New(rdb, "x", o)
	locks.NewRateLimiter(rdb, "x", o)
	locks.NewSlots(rdb, "x", o)
	bmc.NewMetrics(reg)
	if _, err := safety.NewSilences(safety.SilencesConfig{URLs: []string{"http://127.0.0.1:1"}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "node_healer_") {
			out[mf.GetName()] = mf.GetType() == dto.MetricType_HISTOGRAM
		}
	}
	return out
}

// required are the metrics an operator must find on the dashboard.
var required = []string{
	"node_healer_webhook_requests_total", "node_healer_alerts_total", "node_healer_runs_total",
	"node_healer_step_duration_seconds", "node_healer_lock_acquire_total", "node_healer_redis_errors_total",
	"node_healer_stream_lag", "node_healer_runs_waiting", "node_healer_holds_total",
	"node_healer_reboot_budget_remaining", "node_healer_breaker_open",
}

type target struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"`
}

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name string `json:"name"`
		} `json:"list"`
	} `json:"templating"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("node-healer.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("node-healer.json is not valid JSON: %v", err)
	}
	return d
}

// allPanels flattens rows' nested panels.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func TestStructure(t *testing.T) {
	d := load(t)
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("dashboard lacks title/uid/schemaVersion/panels: %+v", d)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		if p.Title == "" || p.Type == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %d %q: missing title, type or gridPos", p.ID, p.Title)
		}
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
			}
			for _, v := range regexp.MustCompile(`\$\{?(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if !vars[v[1]] && !strings.HasPrefix(v[1], "__") {
					t.Errorf("panel %q uses undefined variable $%s", p.Title, v[1])
				}
			}
		}
	}
}

// TestMetricNames: every metric a panel queries is one node-healer exports,
// and every required metric has a panel.
func TestMetricNames(t *testing.T) {
	d := load(t)
	metrics := exported(t)
	for _, m := range required {
		if _, ok := metrics[m]; !ok {
			t.Fatalf("required metric %s is not exported by node-healer", m)
		}
	}
	name := regexp.MustCompile(`node_healer_[a-z_]+`)
	used := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			for _, m := range name.FindAllString(tg.Expr, -1) {
				base := m
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(m, suf); ok && metrics[b] {
						base = b
					}
				}
				if _, ok := metrics[base]; !ok {
					t.Errorf("panel %q queries unknown metric %s", p.Title, m)
				}
				if metrics[base] && base == m {
					t.Errorf("panel %q queries histogram %s without _bucket/_sum/_count", p.Title, m)
				}
				used[base] = true
			}
		}
	}
	for _, m := range required {
		if !used[m] {
			t.Errorf("metric %s has no panel", m)
		}
	}
}

// TestQueriesParse loads every panel query, with Grafana's variables
// substituted, into promtool as a recording rule: `promtool check rules`
// parses each expression with Prometheus' own parser.
func TestQueriesParse(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	bin, err := testenv.ToolPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h", "$job", ".+", "${job}", ".+")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range allPanels(load(t).Panels) {
		for _, tg := range p.Targets {
			n++
			expr, _ := json.Marshal(vars.Replace(tg.Expr)) // a JSON string is a valid YAML scalar
			fmt.Fprintf(&b, "      - record: dashboard:panel%d_%s\n        expr: %s\n", p.ID, strings.ToLower(tg.RefID), expr)
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check", "rules", f).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the dashboard's %d queries: %v\n%s\n%s", n, err, out, b.String())
	}
}
