// Package rules holds node-healer's Prometheus rule files; its tests load
// them into the real promtool (built by scripts/tools-prom.sh).
package rules

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/node-healer/node-healer/internal/testenv"
)

const ruleFile = "node-healer.rules.yml"

func promtool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs promtool")
	}
	p, err := testenv.ToolPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckRules(t *testing.T) {
	bin := promtool(t)
	out, err := exec.Command(bin, "check", "rules", ruleFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", ruleFile, err, out)
	}
}

func TestUnitTests(t *testing.T) {
	bin := promtool(t)
	files, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool tests under tests/: %v", err)
	}
	out, err := exec.Command(bin, append([]string{"test", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", strings.Join(files, " "), err, out)
	}
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	b, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var rs []rule
	for _, g := range f.Groups {
		rs = append(rs, g.Rules...)
	}
	return rs
}

// Runbooks node-healer's receiver maps remediation="…" onto.
var runbooks = map[string]bool{"cordon": true, "drain": true, "reboot": true, "power-cycle": true, "disk-cleanup": true}

// TestConventions checks what promtool cannot: the labels and annotations
// that Alertmanager routing and node-healer rely on.
func TestConventions(t *testing.T) {
	anchor := regexp.MustCompile(`^https://github\.com/node-healer/node-healer/blob/main/rules/README\.md#([a-z0-9]+)$`)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: annotation %q missing", r.Alert, a)
			}
		}
		switch r.Labels["severity"] {
		case "critical", "warning", "info":
		default:
			t.Errorf("%s: severity %q, want critical|warning|info", r.Alert, r.Labels["severity"])
		}
		if m := anchor.FindStringSubmatch(r.Annotations["runbook_url"]); m == nil || m[1] != strings.ToLower(r.Alert) {
			t.Errorf("%s: runbook_url %q does not point at rules/README.md#%s", r.Alert, r.Annotations["runbook_url"], strings.ToLower(r.Alert))
		} else if !strings.Contains(string(readme), "### "+r.Alert+"\n") {
			t.Errorf("%s: rules/README.md has no %q heading for its runbook_url", r.Alert, "### "+r.Alert)
		}
		nh, rem := r.Labels["node_healer"], r.Labels["remediation"]
		if r.Labels["source"] == selfSource && (nh != "" || rem != "") {
			// An alert about node-healer itself must never be routed back
			// into it.
			t.Errorf("%s: source=%q with node_healer=%q remediation=%q: self-monitoring alerts are for humans only", r.Alert, selfSource, nh, rem)
		}
		switch {
		case nh == "" && rem == "":
			// For humans only.
		case nh != "true":
			t.Errorf("%s: node_healer=%q, want \"true\" or absent", r.Alert, nh)
		case !runbooks[rem]:
			t.Errorf("%s: remediation=%q, want one of %v", r.Alert, rem, keys(runbooks))
		case !strings.Contains(r.Expr, "by (node") && !strings.HasPrefix(r.Expr, "node:"):
			// Remediation needs a node: aggregate by it (directly, or in a
			// node:… recording rule) so the label survives.
			t.Errorf("%s: remediation alert does not aggregate by (node…): %s", r.Alert, r.Expr)
		}
	}
}

// selfGroup holds node-healer's self-monitoring alerts; selfSource is the
// label value they share with the alerts node-healer pushes itself, which
// alertmanager/ routes to humans.
const (
	selfGroup  = "node-healer.self"
	selfSource = "node-healer"
)

// TestSelfMonitoringGroup: every rule in the self-monitoring group is an
// alert labelled source="node-healer", and no alert outside it is.
func TestSelfMonitoringGroup(t *testing.T) {
	b, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []rule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			self := g.Name == selfGroup
			if self {
				n++
			}
			switch {
			case self && r.Alert == "":
				t.Errorf("group %s: recording rule %q; the group holds alerts only", selfGroup, r.Record)
			case self && r.Labels["source"] != selfSource:
				t.Errorf("%s: in group %s without source=%q", r.Alert, selfGroup, selfSource)
			case !self && r.Labels["source"] == selfSource:
				t.Errorf("%s: source=%q outside group %s", r.Alert, selfSource, selfGroup)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s has no group %s", ruleFile, selfGroup)
	}
}

// TestEveryAlertTested: each alert appears in a promtool test that expects
// it to fire and in one that expects it not to.
func TestEveryAlertTested(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("tests", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tf struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(b, &tf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					silent[a.Alertname] = true
				}
			}
		}
	}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if !fires[r.Alert] {
			t.Errorf("%s: no promtool test case where it fires", r.Alert)
		}
		if !silent[r.Alert] {
			t.Errorf("%s: no promtool test case where it stays silent", r.Alert)
		}
	}
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
