package main

import (
	"context"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	a := map[float64]float64{0.001: 5, 0.0025: 10, 0.005: 10, 0.01: 10, inf: 10}
	// 200 more requests: 100 ≤ 2.5 ms, 90 more ≤ 5 ms, 8 more ≤ 10 ms, 2 slower.
	b := map[float64]float64{0.001: 5, 0.0025: 110, 0.005: 200, 0.01: 208, inf: 210}
	bound, under := BucketQuantile(a, b, .99)
	if bound != 10*time.Millisecond || math.Abs(under-0.95) > 1e-9 {
		t.Errorf("p99 ≤ %s, %.3f under 5 ms; want ≤ 10ms, 0.950", bound, under)
	}
	if bound, _ := BucketQuantile(a, b, .6); bound != 5*time.Millisecond {
		t.Errorf("p60 ≤ %s, want 5ms", bound)
	}
	if bound, under := BucketQuantile(a, a, .99); bound != 0 || under != 0 {
		t.Errorf("no requests: %s, %f", bound, under)
	}
}

// TestWebhookBuckets reads the histogram as a replica exposes it.
func TestWebhookBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "node_healer_webhook_duration_seconds", Buckets: []float64{.001, .005}})
	reg.MustRegister(h)
	for _, v := range []float64{.0005, .002, .002, .1} {
		h.Observe(v)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	e := &Env{Replicas: []*Replica{{URL: srv.URL}, {URL: srv.URL}}}
	got, err := e.WebhookBuckets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got[.001] != 2 || got[.005] != 6 || got[math.Inf(1)] != 8 {
		t.Errorf("buckets summed over two replicas %v; want 0.001:2 0.005:6 +Inf:8", got)
	}
}
