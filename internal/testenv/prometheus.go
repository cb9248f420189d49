package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Prometheus is a real prometheus server on a free loopback port, with its
// config and TSDB in a private folder.
type Prometheus struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string
	// Config is the path of the configuration file it was started with.
	Config string

	dir  string
	http *http.Client
	p    *proc
}

// StartPrometheus writes configYAML into dir/prometheus.yml, starts
// prometheus with its TSDB in dir/data and waits until /-/ready answers.
// The binary comes from ToolPath("prometheus"). Rule files the config
// names must be absolute paths (or relative to dir).
func StartPrometheus(ctx context.Context, dir, configYAML string) (*Prometheus, error) {
	bin, err := ToolPath("prometheus")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(configYAML), 0o644); err != nil {
		return nil, err
	}
	var last error
	for range startAttempts {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := startProc("prometheus", bin, []string{
			"--config.file=" + cfg,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--storage.tsdb.retention.time=2h",
			"--web.listen-address=" + addr,
			"--log.level=info",
		}, filepath.Join(dir, "prometheus.log"))
		if err != nil {
			return nil, err
		}
		pr := &Prometheus{URL: "http://" + addr, Config: cfg, dir: dir, http: &http.Client{Timeout: 5 * time.Second}, p: p}
		last = p.waitUntil(ctx, 60*time.Second, func(ctx context.Context) error {
			return httpOK(ctx, pr.http, pr.URL+"/-/ready", "", "")
		})
		if last == nil {
			return pr, nil
		}
		p.stop(5 * time.Second)
	}
	return nil, last
}

// Stop terminates prometheus (SIGTERM, killed after 10 s). Safe to call twice.
func (p *Prometheus) Stop() {
	if p != nil {
		p.p.stop(10 * time.Second)
	}
}

// LogTail returns the last n lines of the prometheus log.
func (p *Prometheus) LogTail(n int) string {
	return tailFile(filepath.Join(p.dir, "prometheus.log"), n)
}

// Sample is one element of an instant-query vector.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query through the HTTP API and returns the
// vector result (an error for other result types).
func (p *Prometheus) Query(ctx context.Context, promql string) ([]Sample, error) {
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/query?query="+url.QueryEscape(promql), &out); err != nil {
		return nil, err
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", promql, out.Error)
	}
	if out.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", promql, out.Data.ResultType)
	}
	res := make([]Sample, 0, len(out.Data.Result))
	for _, r := range out.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %q: %w", promql, s, err)
		}
		res = append(res, Sample{Metric: r.Metric, Value: v})
	}
	return res, nil
}

// Alert is one alert as GET /api/v1/alerts shows it.
type Alert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"` // pending | firing
	ActiveAt time.Time         `json:"activeAt"`
}

// Alerts lists the pending and firing alerts.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) {
	var out struct {
		Data struct {
			Alerts []Alert `json:"alerts"`
		} `json:"data"`
	}
	if err := p.get(ctx, "/api/v1/alerts", &out); err != nil {
		return nil, err
	}
	return out.Data.Alerts, nil
}

func (p *Prometheus) get(ctx context.Context, path string, out any) error {
	return doJSON(ctx, p.http, http.MethodGet, p.URL, path, nil, out)
}
