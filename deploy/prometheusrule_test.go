package deploy

import (
	"bytes"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite generated files (prometheus/prometheusrule.yaml) from their sources")

const (
	rulesFile          = "../rules/node-healer.rules.yml"
	prometheusRuleFile = "prometheus/prometheusrule.yaml"
)

const prometheusRuleHeader = `# Code generated from rules/node-healer.rules.yml by ` + "`go test ./deploy -update`" + `. DO NOT EDIT.
# The Prometheus Operator's form of the same rules: spec is the rule file,
# indented. Edit rules/node-healer.rules.yml, then regenerate; go test ./deploy
# fails while the two differ.
#
# The operator's Prometheus picks rules by label (spec.ruleSelector); add the
# label yours selects on (e.g. release: kube-prometheus-stack) with a
# kustomize patch or labels: entry.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: node-healer
  namespace: node-healer
  labels:
    app.kubernetes.io/name: node-healer
    app.kubernetes.io/part-of: node-healer
spec:
`

// prometheusRule renders the PrometheusRule from the rule file. It embeds
// the file's text (comments and block scalars included) rather than
// re-encoding it, so expressions read the same in both places.
func prometheusRule(rules []byte) []byte {
	var b bytes.Buffer
	b.WriteString(prometheusRuleHeader)
	for _, line := range strings.SplitAfter(string(rules), "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString(strings.TrimLeft(line, " \t"))
			continue
		}
		b.WriteString("  " + line)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestPrometheusRuleInSync(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := prometheusRule(rules)
	if *update {
		if err := os.WriteFile(prometheusRuleFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", prometheusRuleFile)
	}
	got, err := os.ReadFile(prometheusRuleFile)
	if err != nil {
		t.Fatalf("%v\nrun `go test ./deploy -run TestPrometheusRuleInSync -update` to generate it", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with %s: run `go test ./deploy -run TestPrometheusRuleInSync -update`", prometheusRuleFile, rulesFile)
	}

	// The embedding is faithful: spec.groups decodes to the rule file's groups.
	var file struct {
		Groups []any `yaml:"groups"`
	}
	if err := yaml.Unmarshal(rules, &file); err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []any `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(got, &pr); err != nil {
		t.Fatal(err)
	}
	if len(file.Groups) == 0 {
		t.Fatalf("%s has no groups", rulesFile)
	}
	if !reflect.DeepEqual(file.Groups, pr.Spec.Groups) {
		t.Fatalf("%s: spec.groups does not decode to the groups of %s", prometheusRuleFile, rulesFile)
	}
}
