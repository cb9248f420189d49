package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/testenv"
)

// heldBefore reports whether run is held before step with kind.
func heldBefore(run *runbooks.Run, step, kind string) bool {
	return run != nil && run.Status == runbooks.StatusHeld && run.Hold != nil && run.Hold.Step == step && run.Hold.Kind == kind
}

// TestGateQueryHoldsDrain: a route's PromQL gate over a metric a test
// exporter serves (scraped by a real Prometheus) holds the run before its
// drain while the query returns a series, with the gate's name and the
// series in the hold; when the metric clears the run goes on and drains.
// Prometheus stopped → a run holds with kind gate_unreachable.
func TestGateQueryHoldsDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	ctx := context.Background()
	createNodes(t, "gq-n1", "gq-n2")
	reg := prometheus.NewRegistry()
	rebuilding := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_longhorn_volumes_degraded", Help: "test"})
	reg.MustRegister(rebuilding)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer exporter.Close()
	rebuilding.Set(3)
	prom, err := testenv.StartPrometheus(ctx, t.TempDir(), fmt.Sprintf(
		"global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n  - job_name: longhorn\n    static_configs: [{targets: [%q]}]\n",
		strings.TrimPrefix(exporter.URL, "http://")))
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Stop()
	waitFor(t, "Prometheus to scrape the exporter", 30*time.Second, func() bool {
		s, _ := prom.Query(ctx, "test_longhorn_volumes_degraded")
		return len(s) == 1
	})
	routes := fmt.Sprintf(`
routes:
  - name: drain
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: drain
    gates:
      block_if_query:
        - name: longhorn-degraded
          query: test_longhorn_volumes_degraded > 0
          prometheus_url: %s
          timeout: 2s
`, prom.URL)
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "safety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}", routes, "gate-query")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "gq-n1", "fp-gq1"))
	id := reply.Alerts[0].RunID
	waitFor(t, "the run to hold before drain", 30*time.Second, func() bool { return heldBefore(rec.run(t, id), "drain", "gate_query") })
	run := rec.run(t, id)
	if !strings.HasPrefix(run.Hold.Reason, "gate longhorn-degraded: 1 series, e.g. test_longhorn_volumes_degraded{") || !strings.HasSuffix(run.Hold.Reason, "} = 3") {
		t.Fatalf("hold %+v", run.Hold)
	}
	time.Sleep(3 * time.Second)
	if run := rec.run(t, id); !heldBefore(run, "drain", "gate_query") {
		t.Fatalf("not held any more while the query returns a series: %s %+v", run.Status, run.Hold)
	}
	rebuilding.Set(0)
	run = rec.waitRunFor(t, id, 60*time.Second)
	if run.Status != runbooks.StatusSucceeded || run.Timeline[len(run.Timeline)-1].Step != "drain" {
		t.Fatalf("run %s: %s\n%+v", run.Status, run.Error, run.Timeline)
	}
	// Prometheus gone: fail closed, once the last answer (an allow) is
	// older than the gate's cache.
	prom.Stop()
	time.Sleep(safety.DefaultGateCacheTTL + time.Second)
	_, reply = rec.post(t, amPayload("NodeKernelDeadlock", "gq-n2", "fp-gq2"))
	id2 := reply.Alerts[0].RunID
	waitFor(t, "the run to hold: Prometheus unreachable", 30*time.Second, func() bool { return heldBefore(rec.run(t, id2), "drain", "gate_unreachable") })
	if run := rec.run(t, id2); !strings.Contains(run.Hold.Reason, "gate longhorn-degraded: Prometheus could not be asked") {
		t.Fatalf("hold %+v", run.Hold)
	}
}

// postAMAlert sends one alert to a real Alertmanager, ending at endsAt.
func postAMAlert(t *testing.T, amURL string, lbls map[string]string, endsAt time.Time) {
	t.Helper()
	body, _ := json.Marshal([]map[string]any{{"labels": lbls, "startsAt": time.Now().Add(-time.Minute), "endsAt": endsAt}})
	resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
}

// TestGateAlertHoldsDrain: a global alert gate holds a run before its
// drain while a matching alert fires in a real Alertmanager (the alert
// named in the hold); once the alert resolves the run goes on.
func TestGateAlertHoldsDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "ga-n1")
	am := testenv.NewAlertmanager(t, "")
	ceph := map[string]string{"alertname": "CephHealthWarn", "cluster": "prod"}
	postAMAlert(t, am.URL, ceph, time.Now().Add(time.Hour))
	extra := fmt.Sprintf(`alertmanagers: [{urls: [%q]}]
safety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}
gates:
  block_if_alerts:
    - ['alertname="CephHealthWarn"', 'cluster="prod"']
`, am.URL)
	routes := `
routes:
  - name: drain
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: drain
`
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, routes, "gate-alert")
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "ga-n1", "fp-ga1"))
	id := reply.Alerts[0].RunID
	waitFor(t, "the run to hold before drain", 30*time.Second, func() bool { return heldBefore(rec.run(t, id), "drain", "gate_alert") })
	run := rec.run(t, id)
	if !strings.HasPrefix(run.Hold.Reason, "alert CephHealthWarn ") || !strings.Contains(run.Hold.Reason, "matches gates.block_if_alerts[0]") {
		t.Fatalf("hold %+v", run.Hold)
	}
	time.Sleep(3 * time.Second)
	if run := rec.run(t, id); !heldBefore(run, "drain", "gate_alert") {
		t.Fatalf("not held any more while the alert fires: %s %+v", run.Status, run.Hold)
	}
	postAMAlert(t, am.URL, ceph, time.Now().Add(-time.Second)) // resolved
	run = rec.waitRunFor(t, id, 60*time.Second)
	if run.Status != runbooks.StatusSucceeded || run.Timeline[len(run.Timeline)-1].Step != "drain" {
		t.Fatalf("run %s: %s\n%+v", run.Status, run.Error, run.Timeline)
	}
}

// TestGateQueryExample: examples/gates.yml loads (gates validated) and
// routes as it says.
func TestGateQueryExample(t *testing.T) {
	code, out, errs := runCLI("route", "test", "--config.file=../../examples/gates.yml", "node_healer=true", "remediation=reboot", "node=n1")
	if code != 0 || out != "route reboot → runbook reboot on node n1\n" {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
}
