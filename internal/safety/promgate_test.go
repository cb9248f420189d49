package safety

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// gaugeExporter serves one gauge vector (test_ceph_health_status{pool})
// for a real Prometheus to scrape.
func gaugeExporter(t *testing.T) (*prometheus.GaugeVec, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "test_ceph_health_status", Help: "test"}, []string{"pool"})
	reg.MustRegister(g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return g, strings.TrimPrefix(srv.URL, "http://")
}

func startScrapingPrometheus(t *testing.T, target string) *testenv.Prometheus {
	t.Helper()
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: exporter\n    static_configs: [{targets: [%q]}]\n", target)
	p, err := testenv.StartPrometheus(context.Background(), t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func waitDecision(t *testing.T, what string, check func() runbooks.Decision, ok func(runbooks.Decision) bool) runbooks.Decision {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := check()
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last decision %+v", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestQueryGateRealPrometheus: a series the query returns holds (kind
// gate_query, the gate's name and the series in the reason); when it
// clears, runs go on; a query Prometheus rejects holds with its message
// (gate_invalid); Prometheus stopped holds (gate_unreachable).
func TestQueryGateRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("needs prometheus")
	}
	gauge, target := gaugeExporter(t)
	prom := startScrapingPrometheus(t, target)
	gate, err := NewQueryGate(QueryGateConfig{Name: "ceph-health", Query: "test_ceph_health_status != 0", PrometheusURL: prom.URL, Timeout: 2 * time.Second, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func() runbooks.Decision {
		d, err := gate.Check(ctx, &runbooks.Run{ID: "r"}, "drain", nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	gauge.WithLabelValues("rbd").Set(0)
	// Scraped, and 0: allowed.
	waitDecision(t, "the exporter scraped", func() runbooks.Decision {
		if s, _ := prom.Query(ctx, "test_ceph_health_status"); len(s) == 0 {
			return runbooks.Decision{}
		}
		return check()
	}, func(d runbooks.Decision) bool { return d.Allow })
	gauge.WithLabelValues("rbd").Set(2)
	d := waitDecision(t, "held", check, func(d runbooks.Decision) bool { return !d.Allow })
	if d.Kind != KindGateQuery || !strings.HasPrefix(d.Reason, "gate ceph-health: 1 series, e.g. test_ceph_health_status{") ||
		!strings.Contains(d.Reason, `pool="rbd"`) || !strings.HasSuffix(d.Reason, "} = 2") {
		t.Fatalf("hold %+v", d)
	}
	gauge.WithLabelValues("rbd").Set(0)
	waitDecision(t, "allowed once the metric clears", check, func(d runbooks.Decision) bool { return d.Allow })

	bad, err := NewQueryGate(QueryGateConfig{Name: "typo", Query: "sum(test_ceph_health_status", PrometheusURL: prom.URL, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	d, err = bad.Check(ctx, nil, "drain", nil)
	if err != nil || d.Allow || d.Kind != KindGateInvalid || !strings.Contains(d.Reason, "gate typo: Prometheus rejected the query (bad_data)") {
		t.Fatalf("bad query: %+v, %v", d, err)
	}
	scalar, _ := NewQueryGate(QueryGateConfig{Name: "scalar", Query: "scalar(test_ceph_health_status)", PrometheusURL: prom.URL, CacheTTL: -1})
	if d, err := scalar.Check(ctx, nil, "drain", nil); err != nil || d.Allow || d.Kind != KindGateInvalid || !strings.Contains(d.Reason, "returns a scalar") {
		t.Fatalf("scalar query: %+v, %v", d, err)
	}

	prom.Stop()
	d = check()
	if d.Allow || d.Kind != KindGateUnreachable || !strings.Contains(d.Reason, "gate ceph-health: Prometheus could not be asked") {
		t.Fatalf("Prometheus stopped: %+v", d)
	}
}

// TestQueryGateCachesAnswers: many checks within the TTL send one query;
// after it, the next check asks again; a slow Prometheus holds
// (gate_unreachable) after the gate's timeout.
func TestQueryGateCachesAnswers(t *testing.T) {
	var queries atomic.Int32
	var slow atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		if slow.Load() {
			time.Sleep(time.Second)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"etcd"},"value":[1,"0"]},{"metric":{"job":"x"},"value":[1,"0"]}]}}`)
	}))
	defer srv.Close()
	gate, err := NewQueryGate(QueryGateConfig{Name: "etcd", Query: "up == 0", PrometheusURL: srv.URL, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	gate.answers.now = func() time.Time { return now }
	for range 20 {
		d, err := gate.Check(context.Background(), nil, "drain", nil)
		if err != nil || d.Kind != KindGateQuery || d.Reason != `gate etcd: 2 series, e.g. up{job="etcd"} = 0` {
			t.Fatalf("%+v, %v", d, err)
		}
	}
	if n := queries.Load(); n != 1 {
		t.Fatalf("%d queries within the TTL, want 1", n)
	}
	now = now.Add(DefaultGateCacheTTL)
	slow.Store(true)
	d, err := gate.Check(context.Background(), nil, "drain", nil)
	if err != nil || d.Kind != KindGateUnreachable || queries.Load() != 2 {
		t.Fatalf("after the TTL, slow Prometheus: %+v, %v (%d queries)", d, err, queries.Load())
	}
}

func TestGateReasonBounded(t *testing.T) {
	long := strings.Repeat("é", maxGateReason)
	if b := bounded(long); len(b) > maxGateReason || !strings.HasSuffix(b, "…") || !strings.HasPrefix(b, "éé") {
		t.Fatalf("bounded: %d bytes %q", len(b), b[len(b)-10:])
	}
	if bounded("short") != "short" {
		t.Fatal("short string changed")
	}
}
