// Package notify sends node-healer's own alerts to Alertmanager, so that
// an escalation, a run held for long, a failed run (and, optionally, a
// remediation in progress) reach people through whatever Alertmanager
// already routes to (PagerDuty, Slack, e-mail…) — node-healer learns no
// notification service itself.
//
// The alerts are derived, every Interval, from state that already exists
// and that every replica can read: the Nodes carrying the
// node-healer.io/needs-attention label (NodeHealerEscalated, until an
// operator removes it) and the run records in Redis (NodeHealerRunHeld,
// NodeHealerRunFailed, NodeHealerRemediating). Nothing is queued: one
// replica at a time — the holder of a short Redis lease — posts the whole
// current set to every Alertmanager with an endsAt a few intervals ahead,
// and posts the ones that ended since the last round with endsAt = now.
// If that replica dies, the alerts end on their own at endsAt and the
// next lease holder takes over (the last posted set is kept in Redis, so
// it resolves what ended meanwhile). An Alertmanager that is down is
// logged and counted, and the next round posts again; a run never waits
// for it.
//
// The HTTP client is prometheus/common's, from the same alertmanagers
// entries (http_config) the silence reads use; the payload is the five
// fields of API v2's PostableAlert, encoded here rather than through the
// generated OpenAPI client for the reason given in internal/safety.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// The alerts node-healer sends. Every one carries source="node-healer",
// the label Alertmanager routes on to keep them away from node-healer's
// own webhook (alertmanager/alertmanager.yml).
const (
	AlertEscalated   = "NodeHealerEscalated"
	AlertRunHeld     = "NodeHealerRunHeld"
	AlertRunFailed   = "NodeHealerRunFailed"
	AlertRemediating = "NodeHealerRemediating"

	SourceLabel = "source"
	SourceValue = "node-healer"
)

// Target is one set of Alertmanagers sharing an HTTP configuration.
type Target struct {
	URLs       []string
	HTTPConfig commoncfg.HTTPClientConfig
	Timeout    time.Duration // per request; default 10s
}

// RunLister reads recent runs, newest first.
type RunLister interface {
	List(ctx context.Context, limit int) ([]*runbooks.Run, error)
}

// Options configure a Notifier.
type Options struct {
	Targets []Target
	Redis   redis.UniversalClient
	Prefix  string // redis key prefix
	Replica string
	Runs    RunLister
	// Nodes lists the cluster's nodes (the informer cache); nil: no
	// NodeHealerEscalated.
	Nodes func() ([]*corev1.Node, error)
	// ExternalURL is how people reach this receiver (generatorURL links
	// to ExternalURL/api/v1/runs/ID).
	ExternalURL string
	// RunbookURL is the base of each alert's runbook_url annotation; the
	// alert name, lower-cased, is appended as an anchor.
	RunbookURL string
	// HeldAfter: a run held or deferred this long raises NodeHealerRunHeld.
	HeldAfter time.Duration
	// FailedFor: how long NodeHealerRunFailed stays after a run failed.
	FailedFor time.Duration
	// Remediating sends NodeHealerRemediating while a run of a runbook
	// with destructive steps is running.
	Remediating bool
	Destructive func(runbook string) bool
	// Interval between rounds (default 1m); alerts end 3 intervals after
	// the last round that saw them unless resolved earlier.
	Interval   time.Duration
	Registerer prometheus.Registerer
	Log        *slog.Logger
	Now        func() time.Time
}

// Notifier posts node-healer's alerts.
type Notifier struct {
	o       Options
	locker  *locks.Locker
	clients []*http.Client
	posts   *prometheus.CounterVec
	active  prometheus.Gauge
}

// New builds a Notifier; it does nothing until Run.
func New(o Options) (*Notifier, error) {
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.HeldAfter <= 0 {
		o.HeldAfter = 10 * time.Minute
	}
	if o.FailedFor <= 0 {
		o.FailedFor = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Destructive == nil {
		o.Destructive = func(string) bool { return true }
	}
	n := &Notifier{o: o, locker: locks.New(o.Redis, o.Prefix),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_notify_requests_total",
			Help: "Posts of node-healer's own alerts to Alertmanager, by result (success, error).",
		}, []string{"result"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_notify_alerts",
			Help: "node-healer's own alerts active in the last round this replica posted (0 on replicas not posting).",
		}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(n.posts, n.active)
	}
	for _, t := range o.Targets {
		c, err := commoncfg.NewClientFromConfig(t.HTTPConfig, "node-healer-notify")
		if err != nil {
			return nil, fmt.Errorf("notify: alertmanager client: %w", err)
		}
		c.Timeout = t.Timeout
		if c.Timeout <= 0 {
			c.Timeout = 10 * time.Second
		}
		n.clients = append(n.clients, c)
	}
	return n, nil
}

// leaseName is the lock that picks the replica that posts.
const leaseName = "notify"

// Run posts a round every Interval while this replica holds the notify
// lease, until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	var lease *locks.Lease
	ttl := 3 * n.o.Interval
	t := time.NewTicker(n.o.Interval)
	defer t.Stop()
	for {
		switch {
		case lease == nil:
			l, err := n.locker.Acquire(ctx, leaseName, ttl)
			if err == nil {
				lease = l
				n.o.Log.Info("this replica now sends node-healer's own alerts to Alertmanager", "replica", n.o.Replica)
			} else if !errors.Is(err, locks.ErrNotAcquired) {
				n.o.Log.Warn("notify: cannot take the lease; no alerts from this replica this round", "err", err)
			}
		default:
			if err := lease.Refresh(ctx, ttl); errors.Is(err, locks.ErrLeaseLost) {
				lease = nil
				n.active.Set(0)
			} else if err != nil {
				n.o.Log.Warn("notify: cannot renew the lease", "err", err)
			}
		}
		if lease != nil && lease.Check() == nil {
			if err := n.Round(ctx); err != nil && ctx.Err() == nil {
				n.o.Log.Warn("notify: round incomplete; the next one sends again", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			if lease != nil {
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = lease.Release(rctx)
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// Alert is one posted alert (API v2 PostableAlert).
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// key identifies an alert by its label set.
func (a Alert) key() string {
	ks := make([]string, 0, len(a.Labels))
	for k, v := range a.Labels {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// Round computes the current alerts, posts them and the ones that ended
// since the last round, and remembers what it posted.
func (n *Notifier) Round(ctx context.Context) error {
	now := n.o.Now()
	cur, err := n.Current(ctx, now)
	if err != nil {
		return err
	}
	prev, err := n.loadPosted(ctx)
	if err != nil {
		n.o.Log.Warn("notify: cannot read the alerts posted last round; ended ones expire on their own", "err", err)
	}
	out := make([]Alert, 0, len(cur)+len(prev))
	seen := map[string]bool{}
	for _, a := range cur {
		seen[a.key()] = true
		out = append(out, a)
	}
	for _, a := range prev {
		if !seen[a.key()] && a.EndsAt.After(now) {
			a.EndsAt = now // resolved
			out = append(out, a)
		}
	}
	n.active.Set(float64(len(cur)))
	if len(out) == 0 {
		return n.savePosted(ctx, cur)
	}
	if err := n.post(ctx, out); err != nil {
		return err
	}
	return n.savePosted(ctx, cur)
}

// Current is the set of alerts that hold at now.
func (n *Notifier) Current(ctx context.Context, now time.Time) ([]Alert, error) {
	var out []Alert
	ends := now.Add(3 * n.o.Interval)
	runbookOf := map[string]string{}
	if n.o.Runs != nil {
		runs, err := n.o.Runs.List(ctx, 1000)
		if err != nil {
			return nil, fmt.Errorf("runs: %w", err)
		}
		for _, r := range runs {
			runbookOf[r.ID] = r.Runbook
			switch {
			case (r.Status == runbooks.StatusHeld || r.Status == runbooks.StatusDeferred) && r.Hold != nil && now.Sub(r.Hold.Since) >= n.o.HeldAfter:
				out = append(out, n.alert(AlertRunHeld, "warning", r.Node, r.ID, r.Runbook, r.Hold.Kind, r.Hold.Since, ends,
					fmt.Sprintf("node-healer run %s (%s) on %s %s for %s", r.ID, r.Runbook, r.Node, r.Status, now.Sub(r.Hold.Since).Round(time.Second)),
					r.Hold.Reason))
			case r.Status == runbooks.StatusFailed && now.Sub(r.Updated) < n.o.FailedFor:
				out = append(out, n.alert(AlertRunFailed, "warning", r.Node, r.ID, r.Runbook, short(r.Error, 100), r.Updated, r.Updated.Add(n.o.FailedFor),
					fmt.Sprintf("node-healer run %s (%s) on %s failed", r.ID, r.Runbook, r.Node), r.Error))
			case n.o.Remediating && r.Status == runbooks.StatusRunning && !r.DryRun && n.o.Destructive(r.Runbook):
				out = append(out, n.alert(AlertRemediating, "info", r.Node, r.ID, r.Runbook, "", r.Created, ends,
					fmt.Sprintf("node-healer is running %s on %s (run %s)", r.Runbook, r.Node, r.ID), ""))
			}
		}
	}
	if n.o.Nodes != nil {
		nodes, err := n.o.Nodes()
		if err != nil {
			return nil, fmt.Errorf("nodes: %w", err)
		}
		for _, nd := range nodes {
			if nd.Labels[runbooks.LabelNeedsAttention] == "" {
				continue
			}
			reason := nd.Annotations[runbooks.AnnotationNeedsAttention]
			run := nd.Annotations[runbooks.AnnotationEscalatedBy]
			out = append(out, n.alert(AlertEscalated, "critical", nd.Name, run, runbookOf[run], short(reason, 100), time.Time{}, ends,
				fmt.Sprintf("node-healer handed node %s to a human: %s", nd.Name, short(reason, 200)),
				"Remove the label "+runbooks.LabelNeedsAttention+" from the node once it is handled (kubectl label node "+nd.Name+" "+runbooks.LabelNeedsAttention+"-); the alert then resolves."))
		}
	}
	return out, nil
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (n *Notifier) alert(name, severity, node, run, runbook, reason string, starts, ends time.Time, summary, description string) Alert {
	l := map[string]string{"alertname": name, "severity": severity, SourceLabel: SourceValue, "node": node}
	for k, v := range map[string]string{"run": run, "runbook": runbook, "reason": reason} {
		if v != "" {
			l[k] = v
		}
	}
	a := Alert{Labels: l, Annotations: map[string]string{"summary": summary}, StartsAt: starts, EndsAt: ends}
	if description != "" {
		a.Annotations["description"] = description
	}
	if n.o.RunbookURL != "" {
		a.Annotations["runbook_url"] = n.o.RunbookURL + "#" + strings.ToLower(name)
	}
	if n.o.ExternalURL != "" && run != "" {
		a.GeneratorURL = strings.TrimSuffix(n.o.ExternalURL, "/") + "/api/v1/runs/" + run
	}
	return a
}

// post sends alerts to every Alertmanager; it fails only if none took them.
func (n *Notifier) post(ctx context.Context, alerts []Alert) error {
	body, err := json.Marshal(alerts)
	if err != nil {
		return err
	}
	var errs []error
	ok := 0
	for i, t := range n.o.Targets {
		for _, u := range t.URLs {
			if err := n.postOne(ctx, n.clients[i], u, body); err != nil {
				n.posts.WithLabelValues("error").Inc()
				errs = append(errs, err)
				continue
			}
			n.posts.WithLabelValues("success").Inc()
			ok++
		}
	}
	if ok == 0 && len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, err := range errs {
		n.o.Log.Warn("notify: an Alertmanager did not take node-healer's alerts; the others did", "err", err)
	}
	return nil
}

func (n *Notifier) postOne(ctx context.Context, c *http.Client, base string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(base, "/")+"/api/v2/alerts", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s/api/v2/alerts: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST %s/api/v2/alerts: %s: %s", base, resp.Status, strings.TrimSpace(string(msg)))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

func (n *Notifier) postedKey() string { return n.o.Prefix + ":notify:posted" }

func (n *Notifier) loadPosted(ctx context.Context) ([]Alert, error) {
	b, err := n.o.Redis.Get(ctx, n.postedKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Alert
	return out, json.Unmarshal(b, &out)
}

func (n *Notifier) savePosted(ctx context.Context, cur []Alert) error {
	b, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	return n.o.Redis.Set(ctx, n.postedKey(), b, 3*n.o.Interval+time.Hour).Err()
}
