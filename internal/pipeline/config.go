package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/node-healer/node-healer/internal/testenv"
)

// DemoParams are the reboot route's parameters in the pipeline, shortened
// from the runbook defaults so a whole heal takes about a minute:
//
//	reboot_timeout 5m → 20s  a kwok node "goes down" within a second of the BMC
//	                         power change; 20 s still shows the wait for a hung OS
//	ready_timeout 10m → 2m   a kwok node is Ready again about a second after On
//	healthy_for    1m → 10s  the health check's window; nothing flaps here
//	drain_timeout 10m → 2m   100 pause pods drain in a few seconds
var DemoParams = map[string]string{
	"reboot_timeout": "20s",
	"ready_timeout":  "2m",
	"healthy_for":    "10s",
	"drain_timeout":  "2m",
}

// Shipped timings (Options.Shipped).
const (
	// ShippedInterval is the global scrape and evaluation interval of a
	// kube-prometheus-style Prometheus.
	ShippedInterval = 30 * time.Second
	// ShippedNPDInterval is deploy/prometheus/npd-podmonitor.yaml's interval.
	ShippedNPDInterval = 5 * time.Second
	// ShippedBootTime is a simulated server's boot, power-on to running OS
	// (the bmc-sim command's default).
	ShippedBootTime = 2 * time.Minute
	// ShippedShutdownTime is a simulated graceful shutdown (bmc-sim's default).
	ShippedShutdownTime = 3 * time.Second
)

// alertmanagerConfig is the shipped alertmanager/alertmanager.yml with the
// node-healer receiver's url and credentials_file pointed at this machine
// and, when set, the node-healer route's group_wait/group_interval replaced.
func alertmanagerConfig(webhookURL, tokenFile string, groupWait, groupInterval time.Duration) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Join(root, "alertmanager", "alertmanager.yml"))
	if err != nil {
		return "", err
	}
	var c map[string]any
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return "", fmt.Errorf("alertmanager/alertmanager.yml: %w", err)
	}
	found := 0
	route, _ := c["route"].(map[string]any)
	routes, _ := route["routes"].([]any)
	for _, r := range routes {
		m, _ := r.(map[string]any)
		if m["receiver"] != "node-healer" {
			continue
		}
		found++
		if groupWait > 0 {
			m["group_wait"] = groupWait.String()
		}
		if groupInterval > 0 {
			m["group_interval"] = groupInterval.String()
		}
	}
	recvs, _ := c["receivers"].([]any)
	for _, r := range recvs {
		m, _ := r.(map[string]any)
		if m["name"] != "node-healer" {
			continue
		}
		whs, _ := m["webhook_configs"].([]any)
		for _, w := range whs {
			wm, _ := w.(map[string]any)
			wm["url"] = webhookURL
			hc, _ := wm["http_config"].(map[string]any)
			auth, _ := hc["authorization"].(map[string]any)
			if auth == nil {
				return "", fmt.Errorf("alertmanager/alertmanager.yml: the node-healer webhook has no http_config.authorization")
			}
			auth["credentials_file"] = tokenFile
			found++
		}
	}
	if found < 2 {
		return "", fmt.Errorf("alertmanager/alertmanager.yml: no node-healer route and webhook to rewrite")
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		return "", err
	}
	return "# alertmanager/alertmanager.yml, rewritten by internal/pipeline (webhook url, credentials_file)\n" + string(out), nil
}

// intervals are Prometheus' timings: the global scrape and evaluation
// intervals and, if non-zero, the node-problem-detector job's own scrape
// interval.
type intervals struct {
	scrape, eval, npd time.Duration
}

// prometheusConfig scrapes each NPD (with its node label) and node-healer,
// evaluates the shipped rules and alerts the local Alertmanager.
func prometheusConfig(iv intervals, npds map[string]string, receivers []string, amAddr string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	timeout := min(iv.scrape, 5*time.Second)
	if iv.npd > 0 {
		timeout = min(timeout, iv.npd)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# written by internal/pipeline\nglobal:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", iv.scrape, timeout, iv.eval)
	fmt.Fprintf(&b, "rule_files:\n  - %s\n", filepath.Join(root, "rules", "node-healer.rules.yml"))
	fmt.Fprintf(&b, "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['%s']\n", amAddr)
	b.WriteString("scrape_configs:\n  - job_name: node-problem-detector\n")
	if iv.npd > 0 {
		fmt.Fprintf(&b, "    scrape_interval: %s\n", iv.npd)
	}
	b.WriteString("    static_configs:\n")
	nodes := make([]string, 0, len(npds))
	for n := range npds {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		fmt.Fprintf(&b, "      - targets: ['%s']\n        labels: {node: %s}\n", npds[n], n)
	}
	b.WriteString("  - job_name: node-healer\n    static_configs:\n      - targets:\n")
	for _, r := range receivers {
		fmt.Fprintf(&b, "          - '%s'\n", r)
	}
	return b.String(), nil
}

// receiverConfig is node-healer's configuration in the pipeline.
func receiverConfig(o *Options, redisURL, tokenFile, inventory, amURL string) string {
	keys := make([]string, 0, len(o.Params))
	for k := range o.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var params []string
	for _, k := range keys {
		params = append(params, k+": "+o.Params[k])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# written by internal/pipeline\nredis: {url: %q}\n", redisURL)
	fmt.Fprintf(&b, "webhook: {auth: {bearer_token_file: %q}}\n", tokenFile)
	offWait := ""
	if o.BMC == BMCIPMI && !o.Shipped {
		offWait = ", off_wait: " + IPMIOffWait.String()
	}
	fmt.Fprintf(&b, "bmc: {inventory_file: %q, timeout: 10s%s}\n", inventory, offWait)
	fmt.Fprintf(&b, "alertmanagers: [{urls: [%q]}]\n", amURL)
	for _, sec := range []string{"workers", "locks", "safety"} {
		if v := o.Config[sec]; v != "" {
			fmt.Fprintf(&b, "%s: %s\n", sec, v)
		}
	}
	// The shipped reboot route (deploy/receiver/node-healer.yml), acting
	// (no dry_run), with the demo's or the caller's params if any.
	b.WriteString(`routes:
  - name: reboot
    matchers: ['node_healer="true"', 'remediation="reboot"']
    runbook: reboot
`)
	if len(params) > 0 {
		fmt.Fprintf(&b, "    params: {%s}\n", strings.Join(params, ", "))
	}
	return b.String()
}
