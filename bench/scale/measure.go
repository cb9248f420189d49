package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ProcSample is a process's memory and CPU time at one moment.
type ProcSample struct {
	At       time.Time
	RSSBytes int64
	CPU      time.Duration // user + system
}

// clockTick is USER_HZ, 100 on Linux (sysconf(_SC_CLK_TCK)).
const clockTick = 100

// SampleProc reads /proc/PID/status (VmRSS) and /proc/PID/stat (utime,
// stime).
func SampleProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				s.RSSBytes = kb * 1024
			}
		}
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name (which may contain spaces) in ')'.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.CPU = time.Duration(ut+st) * time.Second / clockTick
	return s, nil
}

// CPUPercent is the share of one core used between two samples.
func CPUPercent(a, b ProcSample) float64 {
	wall := b.At.Sub(a.At)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(b.CPU-a.CPU) / float64(wall)
}

// Scrape reads a replica's /metrics into samples (name → vector).
func Scrape(ctx context.Context, url string) (map[string]model.Vector, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s/metrics: %w", url, err)
	}
	out := map[string]model.Vector{}
	for name, f := range fams {
		v, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, f)
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

// Sum adds the samples of a metric whose labels match every pair of
// match (an empty match adds them all).
func Sum(m map[string]model.Vector, name string, match map[string]string) float64 {
	total := 0.0
	for _, s := range m[name] {
		ok := true
		for k, v := range match {
			if string(s.Metric[model.LabelName(k)]) != v {
				ok = false
				break
			}
		}
		if ok {
			total += float64(s.Value)
		}
	}
	return total
}

// KubeRequests is node_healer_kubernetes_requests_total of a replica,
// summed, and by verb+resource.
func KubeRequests(m map[string]model.Vector) (total float64, by map[string]float64) {
	by = map[string]float64{}
	for _, s := range m["node_healer_kubernetes_requests_total"] {
		k := string(s.Metric["verb"]) + " " + string(s.Metric["resource"])
		by[k] += float64(s.Value)
		total += float64(s.Value)
	}
	return total, by
}

// WebhookBuckets sums the replicas' node_healer_webhook_duration_seconds
// buckets: cumulative counts by upper bound (le, +Inf included).
func (e *Env) WebhookBuckets(ctx context.Context) (map[float64]float64, error) {
	out := map[float64]float64{}
	for _, r := range e.Replicas {
		m, err := Scrape(ctx, r.URL)
		if err != nil {
			return nil, err
		}
		for _, s := range m["node_healer_webhook_duration_seconds"] {
			if s.Metric[model.MetricNameLabel] != "node_healer_webhook_duration_seconds_bucket" {
				continue
			}
			le, err := strconv.ParseFloat(string(s.Metric["le"]), 64)
			if err != nil {
				return nil, fmt.Errorf("bucket le %q: %w", s.Metric["le"], err)
			}
			out[le] += float64(s.Value)
		}
	}
	return out, nil
}

// BucketQuantile is the smallest bucket bound under which at least q of
// the requests between two reads of WebhookBuckets fell, and the share
// under 5 ms.
func BucketQuantile(a, b map[float64]float64, q float64) (bound time.Duration, under5ms float64) {
	total := b[math.Inf(1)] - a[math.Inf(1)]
	if total <= 0 {
		return 0, 0
	}
	les := make([]float64, 0, len(b))
	for le := range b {
		les = append(les, le)
	}
	slices.Sort(les)
	for _, le := range les {
		if (b[le]-a[le])/total >= q {
			bound = time.Duration(le * float64(time.Second))
			break
		}
	}
	return bound, (b[0.005] - a[0.005]) / total
}

// Requests sums node_healer_kubernetes_requests_total over the replicas.
func (e *Env) Requests(ctx context.Context) (float64, map[string]float64, error) {
	total, by := 0.0, map[string]float64{}
	for _, r := range e.Replicas {
		m, err := Scrape(ctx, r.URL)
		if err != nil {
			return 0, nil, err
		}
		t, b := KubeRequests(m)
		total += t
		for k, v := range b {
			by[k] += v
		}
	}
	return total, by, nil
}

// diffBy returns b - a per key, keys with a change only, sorted by
// decreasing change, as "verb resource: n".
func diffBy(a, b map[string]float64) []string {
	type kv struct {
		k string
		v float64
	}
	var d []kv
	for k, v := range b {
		if x := v - a[k]; x > 0 {
			d = append(d, kv{k, x})
		}
	}
	slices.SortFunc(d, func(x, y kv) int {
		if x.v != y.v {
			if x.v > y.v {
				return -1
			}
			return 1
		}
		return strings.Compare(x.k, y.k)
	})
	out := make([]string, len(d))
	for i, x := range d {
		out[i] = fmt.Sprintf("%s %g", x.k, x.v)
	}
	return out
}

// Percentile of sorted durations (nearest rank).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
