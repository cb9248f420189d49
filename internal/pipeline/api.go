package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

var httpc = &http.Client{Timeout: 5 * time.Second}

func getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

// receiver returns a running replica.
func (p *Pipeline) receiver() (*Receiver, error) {
	for _, r := range p.Receivers {
		if r.Running() {
			return r, nil
		}
	}
	return nil, errors.New("no node-healer replica is running")
}

// Runs lists node-healer's runs (newest first, as the runs API returns them).
func (p *Pipeline) Runs(ctx context.Context) ([]*runbooks.Run, error) {
	r, err := p.receiver()
	if err != nil {
		return nil, err
	}
	var out struct {
		Runs []*runbooks.Run `json:"runs"`
	}
	return out.Runs, getJSON(ctx, r.URL+"/api/v1/runs?limit=1000", &out)
}

// Run reads one run from the runs API.
func (p *Pipeline) Run(ctx context.Context, id string) (*runbooks.Run, error) {
	r, err := p.receiver()
	if err != nil {
		return nil, err
	}
	run := &runbooks.Run{}
	return run, getJSON(ctx, r.URL+"/api/v1/runs/"+url.PathEscape(id), run)
}

// NodeRuns lists the runs for node created at or after since, oldest first.
func (p *Pipeline) NodeRuns(ctx context.Context, node string, since time.Time) ([]*runbooks.Run, error) {
	all, err := p.Runs(ctx)
	if err != nil {
		return nil, err
	}
	var out []*runbooks.Run
	for _, r := range all {
		if r.Node == node && !r.Created.Before(since.Add(-time.Second)) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Status reads GET /api/v1/status (safety: breaker, holds, budget).
func (p *Pipeline) Status(ctx context.Context) (*safety.Status, error) {
	r, err := p.receiver()
	if err != nil {
		return nil, err
	}
	st := &safety.Status{}
	return st, getJSON(ctx, r.URL+"/api/v1/status", st)
}

// Cordoned reports whether the node is unschedulable.
func (p *Pipeline) Cordoned(ctx context.Context, node string) (bool, error) {
	n, err := p.Cluster.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	return n.Spec.Unschedulable, nil
}

// AlertmanagerState is the state of alertname on node in Alertmanager:
// "" (absent), "active", "suppressed" (silenced or inhibited).
func (p *Pipeline) AlertmanagerState(ctx context.Context, alertname, node string) (string, error) {
	q := url.Values{}
	q.Add("filter", fmt.Sprintf("alertname=%q", alertname))
	q.Add("filter", fmt.Sprintf("node=%q", node))
	var out []struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := getJSON(ctx, p.Alertmanager.URL+"/api/v2/alerts?"+q.Encode(), &out); err != nil {
		return "", err
	}
	state := ""
	for _, a := range out {
		if a.Status.State == "active" || state == "" {
			state = a.Status.State
		}
	}
	return state, nil
}

// PrometheusState is the state of alertname on node in Prometheus: "",
// "pending" or "firing".
func (p *Pipeline) PrometheusState(ctx context.Context, alertname, node string) (string, error) {
	as, err := p.Prometheus.Alerts(ctx)
	if err != nil {
		return "", err
	}
	state := ""
	for _, a := range as {
		if a.Labels["alertname"] == alertname && a.Labels["node"] == node {
			if a.State == "firing" || state == "" {
				state = a.State
			}
		}
	}
	return state, nil
}

// WebhookNotifications is how many notifications Alertmanager has sent to
// node-healer's webhook successfully (firing and resolved), from its own
// metrics.
func (p *Pipeline) WebhookNotifications(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Alertmanager.URL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum := func(metric string) float64 {
		total := 0.0
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, metric+"{") && strings.Contains(l, `integration="webhook"`) {
				f := strings.Fields(l)
				if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
					total += v
				}
			}
		}
		return total
	}
	return int(sum("alertmanager_notifications_total") - sum("alertmanager_notifications_failed_total")), nil
}
