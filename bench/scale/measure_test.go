package main

import (
	"math"
	"testing"
	"time"
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
