package alertmanager

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The alerts node-healer pushes to Alertmanager itself (internal/notify);
// TestPushedAlertsListed keeps this list in step with that package.
var pushed = []string{"NodeHealerEscalated", "NodeHealerRunHeld", "NodeHealerRunFailed", "NodeHealerRemediating"}

const (
	humanReceiver = "node-healer-oncall"
	selfSource    = "node-healer"
)

// selfRules returns the alerts in rules/node-healer.rules.yml labelled
// source="node-healer" (the self-monitoring group).
func selfRules(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "rules", "node-healer.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert  string            `yaml:"alert"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && r.Labels["source"] == selfSource {
				names = append(names, r.Alert)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no alert with source=\"node-healer\" in rules/node-healer.rules.yml")
	}
	return names
}

// selfAlerts: every alert node-healer pushes or its self-monitoring rules raise.
func selfAlerts(t *testing.T) []string {
	return append(append([]string(nil), pushed...), selfRules(t)...)
}

// selfVariants are the label sets one self alert may arrive with: as
// intended, carrying remediation labels by mistake, or with its source label
// lost on the way. All of them must reach humans only.
func selfVariants(name string) map[string][]string {
	base := []string{"alertname=" + name, "severity=critical", "node=n1", "run=r-1", "runbook=reboot", "reason=test"}
	rem := []string{"node_healer=true", "remediation=reboot"}
	src := []string{"source=" + selfSource}
	cat := func(ls ...[]string) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l...)
		}
		return out
	}
	return map[string][]string{
		"as sent":                      cat(base, src),
		"with node_healer":             cat(base, src, rem),
		"without source":               base,
		"without source, node_healer":  cat(base, rem),
		"no node, with node_healer":    cat([]string{"alertname=" + name, "severity=warning"}, src, rem),
		"no node, no source, no extra": {"alertname=" + name, "severity=warning"},
	}
}

// TestSelfAlertsRouteToHumans is the routing-loop test: every alert by or
// about node-healer goes to the human receiver, and only there — never to
// the node-healer webhook — in every variant, in both configurations.
func TestSelfAlertsRouteToHumans(t *testing.T) {
	bin := amtool(t)
	names := selfAlerts(t)
	for name, path := range configs(t) {
		t.Run(name, func(t *testing.T) {
			for _, a := range names {
				for _, labels := range selfVariants(a) {
					routeTest(t, bin, path, humanReceiver, labels)
				}
			}
			// Any future alert node-healer labels as its own, even one
			// dressed as a remediation alert.
			routeTest(t, bin, path, humanReceiver, []string{"alertname=SomethingNew", "source=" + selfSource, "node=n1", "node_healer=true", "remediation=reboot"})
		})
	}
}

// TestWebhookRouteExcludesSelfAlerts: node-healer's webhook route refuses
// node-healer's own alerts by itself, so the loop stays closed even when the
// human routes are missing or pasted after it.
func TestWebhookRouteExcludesSelfAlerts(t *testing.T) {
	bin := amtool(t)
	frag := readYAML(t, "node-healer-route.yml")
	var webhook any
	for _, r := range frag["routes"].([]any) {
		if r.(map[string]any)["receiver"] == "node-healer" {
			webhook = r
		}
	}
	if webhook == nil {
		t.Fatal("node-healer-route.yml has no route to the node-healer receiver")
	}
	cfg := map[string]any{
		"route": map[string]any{
			"receiver": "default",
			"routes":   []any{webhook},
		},
		"receivers": append([]any{map[string]any{"name": "default"}}, frag["receivers"].([]any)...),
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "webhook-only.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range selfAlerts(t) {
		for _, labels := range selfVariants(a) {
			routeTest(t, bin, path, "default", labels)
		}
	}
	routeTest(t, bin, path, "default", []string{"alertname=SomethingNew", "source=" + selfSource, "node=n1", "node_healer=true", "remediation=reboot"})
	// The route still takes remediation alerts.
	routeTest(t, bin, path, "node-healer", []string{"alertname=NodeKernelDeadlock", "node=n1", "node_healer=true", "remediation=reboot"})
}

// TestSelfAlertNamePattern: the alertname pattern the configs route to
// humans (and keep from the webhook) names every self alert and nothing
// else the rules raise, and is the same in every place it appears.
func TestSelfAlertNamePattern(t *testing.T) {
	re := regexp.MustCompile(`^alertname(=~|!~)"(.*)"$`)
	for _, file := range []string{"node-healer-route.yml", "alertmanager.yml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		patterns := map[string]bool{}
		ops := map[string]bool{}
		for _, line := range strings.Split(string(b), "\n") {
			l := strings.TrimPrefix(strings.TrimSpace(line), "- ")
			if m := re.FindStringSubmatch(l); m != nil {
				patterns[m[2]], ops[m[1]] = true, true
			}
		}
		if len(patterns) != 1 || !ops["=~"] || !ops["!~"] {
			t.Fatalf("%s: want one alertname pattern, used as =~ (human route) and !~ (webhook route); got %v %v", file, patterns, ops)
		}
		for p := range patterns {
			anchored := regexp.MustCompile("^(?:" + p + ")$")
			for _, a := range selfAlerts(t) {
				if !anchored.MatchString(a) {
					t.Errorf("%s: alertname pattern does not match %s", file, a)
				}
			}
			for a := range remediation {
				if anchored.MatchString(a) {
					t.Errorf("%s: alertname pattern matches remediation alert %s", file, a)
				}
			}
			for _, a := range []string{"NodeHealerManyNodesUnhealthy", "NodeHealerNodeLabelMissing"} {
				if anchored.MatchString(a) {
					t.Errorf("%s: alertname pattern matches %s, which is not node-healer's own", file, a)
				}
			}
		}
	}
}

// TestPushedAlertsListed: the alert names internal/notify declares are the
// ones listed here (read from the source, so this package does not build
// against it).
func TestPushedAlertsListed(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "internal", "notify", "notify.go"))
	if os.IsNotExist(err) {
		t.Skip("internal/notify not present")
	}
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^\s*Alert\w+\s*=\s*"(NodeHealer\w+)"`).FindAllStringSubmatch(string(b), -1) {
		got = append(got, m[1])
	}
	want := append([]string(nil), pushed...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("internal/notify declares alerts %v; this test lists %v", got, want)
	}
}
