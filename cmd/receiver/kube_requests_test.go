package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// kubeRequests reads node_healer_kubernetes_requests_total from the
// receiver's /metrics, by "verb resource".
func (r *receiver) kubeRequests(t *testing.T) map[string]float64 {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(r.metricsText(t)))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	f := fams["node_healer_kubernetes_requests_total"]
	if f == nil {
		t.Fatal("node_healer_kubernetes_requests_total is not exported")
	}
	for _, m := range f.Metric {
		l := map[string]string{}
		for _, lp := range m.Label {
			l[lp.GetName()] = lp.GetValue()
		}
		out[l["verb"]+" "+l["resource"]] += m.Counter.GetValue()
	}
	return out
}

func diffRequests(before, after map[string]float64) (total float64, detail string) {
	var parts []string
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			total += d
			parts = append(parts, fmt.Sprintf("%s %.0f", k, d))
		}
	}
	sort.Strings(parts)
	return total, strings.Join(parts, ", ")
}

// TestAPIRequestsPerReboot counts the Kubernetes API requests of one
// reboot run of a hung node (soft reboot ignored, power-cycle, back,
// healthy for 10 s), with the waits answered by GETs and by the node
// informer and a watch of the node's Lease. The informers must save the
// per-second GETs of the waits; docs/benchmarks.md has the figures.
func TestAPIRequestsPerReboot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	const routes = `
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {reboot_timeout: 4s, ready_timeout: 60s, healthy_for: 10s, drain_timeout: 20s}
`
	counts := map[string]float64{}
	for _, mode := range []string{"GET per poll", "informers"} {
		t.Run(mode, func(t *testing.T) {
			name := "kreq-" + map[string]string{"GET per poll": "get", "informers": "inf"}[mode]
			createNodes(t, name)
			b := startBMC(t, bmcsim.System{ID: name, Faults: bmcsim.Faults{IgnoreGraceful: true}})
			rec, _ := startReceiverOpts(t, fmt.Sprintf("redis: {url: %q}", testenv.NewRedis(t).URL(0)),
				"bmc: {inventory_file: "+b.Inventory+", timeout: 3s}", routes, "kreq", func(o *serveOptions) {
					o.statusFromAPI = mode == "GET per poll"
				})
			time.Sleep(time.Second) // informers' initial list and watch are not the run's
			before := rec.kubeRequests(t)
			_, reply := rec.post(t, amPayload("NodeKernelDeadlock", name, "fp-"+name))
			run := rec.waitRunFor(t, reply.Alerts[0].RunID, 120*time.Second)
			if run.Status != runbooks.StatusSucceeded {
				t.Fatalf("run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
			}
			total, detail := diffRequests(before, rec.kubeRequests(t))
			counts[mode] = total
			t.Logf("%s: %.0f API requests for one reboot run (%s): %s", mode, total, run.Updated.Sub(run.Created).Round(time.Second), detail)
		})
	}
	if counts["informers"] == 0 || counts["informers"] >= counts["GET per poll"]/2 {
		t.Fatalf("API requests per reboot run: %v; the informers should at least halve them", counts)
	}
}
