// Package alertmanager holds node-healer's Alertmanager configuration; its
// tests check it with the real amtool (built by scripts/tools-prom.sh).
package alertmanager

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/node-healer/node-healer/internal/testenv"
)

// remediation alerts from rules/node-healer.rules.yml: alertname → runbook.
var remediation = map[string]string{
	"NodeKernelDeadlock":            "reboot",
	"NodeReadonlyFilesystem":        "reboot",
	"NodeFrequentKubeletRestart":    "reboot",
	"NodeFrequentContainerdRestart": "reboot",
	"NodeCorruptDockerOverlay2":     "drain",
	"NodeOOMKillingFrequent":        "cordon",
	"NodeTaskHung":                  "reboot",
	"NodeKernelOops":                "reboot",
	"NodeMemoryAvailableLow":        "cordon",
	"NodeNetworkReceiveErrors":      "cordon",
	"NodeHardwareTemperatureHigh":   "drain",
	"NodeFilesystemReadOnly":        "reboot",
	"NodeFilesystemAlmostFull":      "disk-cleanup",
	"NodeDiskReallocatedSectors":    "drain",
	"NodeDiskPendingSectors":        "cordon",
	"NodeDiskSelfTestFailed":        "drain",
	"NodeDiskSmartHealthFailed":     "drain",
	"NodeNotReady":                  "power-cycle",
	"NodeMemoryPressure":            "cordon",
	"NodeDiskPressure":              "disk-cleanup",
	"NodePIDPressure":               "cordon",
	"NodeAnomalyPredicted":          "cordon",
}

// Alerts for humans only (no node_healer label), or malformed ones.
var toDefault = [][]string{
	{"alertname=NodeDiskIOSaturated", "node=n1", "severity=warning"},
	{"alertname=NodeNetworkReceiveDrops", "node=n1", "severity=warning"},
	{"alertname=NodeTCPRetransmitHigh", "node=n1", "severity=warning"},
	{"alertname=NodeZombieProcesses", "node=n1", "severity=warning"},
	{"alertname=NodeHealerManyNodesUnhealthy", "severity=critical"},
	{"alertname=NodeHealerNodeLabelMissing", "job=npd", "severity=warning"},
	{"alertname=Watchdog", "severity=none"},
	// node_healer without a node: node-healer could not act, so humans get it.
	{"alertname=NodeKernelDeadlock", "node_healer=true", "remediation=reboot", "severity=critical"},
	// node_healer set to anything but "true".
	{"alertname=NodeKernelDeadlock", "node=n1", "node_healer=false", "remediation=reboot"},
}

func amtool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs amtool")
	}
	p, err := testenv.ToolPath("amtool")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

// configs under test: the complete example, and the fragment pasted into a
// minimal config the way the fragment's comment tells users to.
func configs(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"alertmanager.yml":      "alertmanager.yml",
		"node-healer-route.yml": pasteFragment(t),
	}
}

func TestCheckConfig(t *testing.T) {
	bin := amtool(t)
	for name, path := range configs(t) {
		out, err := run(t, bin, "check-config", path)
		if err != nil {
			t.Errorf("amtool check-config %s: %v\n%s", name, err, out)
		}
	}
}

func TestRoutes(t *testing.T) {
	bin := amtool(t)
	for name, path := range configs(t) {
		t.Run(name, func(t *testing.T) {
			for alert, runbook := range remediation {
				labels := []string{"alertname=" + alert, "node=n1", "node_healer=true", "remediation=" + runbook, "severity=critical"}
				routeTest(t, bin, path, "node-healer", labels)
			}
			for _, labels := range toDefault {
				routeTest(t, bin, path, "default", labels)
			}
		})
	}
}

func routeTest(t *testing.T, bin, config, receiver string, labels []string) {
	t.Helper()
	args := append([]string{"config", "routes", "test", "--config.file=" + config, "--verify.receivers=" + receiver}, labels...)
	out, err := run(t, bin, args...)
	if err != nil || strings.TrimSpace(out) != receiver {
		t.Errorf("amtool %s\n  want receiver %q, got: %s (err %v)", strings.Join(args, " "), receiver, strings.TrimSpace(out), err)
	}
}

// TestRemediationMatchesRules keeps the list above honest: every alert with
// node_healer="true" in the rule file is listed with its remediation, and no
// other.
func TestRemediationMatchesRules(t *testing.T) {
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
	got := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && r.Labels["node_healer"] == "true" {
				got[r.Alert] = r.Labels["remediation"]
			}
		}
	}
	if !reflect.DeepEqual(got, remediation) {
		t.Errorf("remediation alerts in rules/node-healer.rules.yml:\n%v\nlisted in this test:\n%v", got, remediation)
	}
}

// TestFragmentMatchesExample: the complete example contains the fragment's
// routes (first, in order), receivers and inhibit rules unchanged.
func TestFragmentMatchesExample(t *testing.T) {
	frag := readYAML(t, "node-healer-route.yml")
	full := readYAML(t, "alertmanager.yml")
	routes := full["route"].(map[string]any)["routes"].([]any)
	want := frag["routes"].([]any)
	if len(routes) < len(want) || !reflect.DeepEqual(routes[:len(want)], want) {
		t.Errorf("the first %d routes of alertmanager.yml differ from node-healer-route.yml's routes:\n%v\n%v", len(want), routes, want)
	}
	for _, key := range []string{"receivers", "inhibit_rules"} {
		for _, want := range frag[key].([]any) {
			if !containsValue(full[key].([]any), want) {
				t.Errorf("alertmanager.yml %s lacks the fragment's %v", key, want)
			}
		}
	}
}

func containsValue(list []any, v any) bool {
	for _, x := range list {
		if reflect.DeepEqual(x, v) {
			return true
		}
	}
	return false
}

func readYAML(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}

// pasteFragment builds a config from a minimal one plus the fragment, the way
// a user would paste it, and returns its path.
func pasteFragment(t *testing.T) string {
	t.Helper()
	frag := readYAML(t, "node-healer-route.yml")
	cfg := map[string]any{
		"route": map[string]any{
			"receiver": "default",
			"group_by": []any{"alertname"},
			"routes": append(frag["routes"].([]any),
				map[string]any{"receiver": "default", "matchers": []any{`severity="critical"`}}),
		},
		"receivers":     append([]any{map[string]any{"name": "default"}}, frag["receivers"].([]any)...),
		"inhibit_rules": frag["inhibit_rules"],
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pasted.yml")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
