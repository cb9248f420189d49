// Package metrics holds node-healer's Prometheus metrics, built on a
// Registerer, with bounded label values all initialised at zero (no node
// names in labels).
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Alert outcomes (the `outcome` label of node_healer_alerts_total).
const (
	OutcomeAccepted    = "accepted"
	OutcomeDuplicate   = "duplicate"
	OutcomeResolved    = "resolved"
	OutcomeNoRoute     = "no_route"
	OutcomeNoNodeLabel = "no_node_label"
	OutcomeUnknownNode = "unknown_node"
)

// AlertOutcomes lists every outcome label value.
var AlertOutcomes = []string{OutcomeAccepted, OutcomeDuplicate, OutcomeResolved, OutcomeNoRoute, OutcomeNoNodeLabel, OutcomeUnknownNode}

// Metrics is every node-healer metric.
type Metrics struct {
	WebhookRequests *prometheus.CounterVec
	WebhookDuration prometheus.Histogram
	// ManualRequests: POST /api/v1/runs (receiver heal) by status code.
	ManualRequests *prometheus.CounterVec
	Alerts         *prometheus.CounterVec
	StreamLag      prometheus.Gauge
	StreamPending  prometheus.Gauge
	Runs           *prometheus.CounterVec
	RunsActive     prometheus.Gauge
	StepDuration   *prometheus.HistogramVec
	Steps          *prometheus.CounterVec
	RedisErrors    *prometheus.CounterVec
	BadEntries     prometheus.Counter
	Holds          *prometheus.CounterVec
	Deferrals      *prometheus.CounterVec
	BreakerOpen    prometheus.Gauge
	UnhealthyNodes prometheus.Gauge
	RebootBudget   prometheus.Gauge
	Paused         prometheus.Gauge
	RunsWaiting    *prometheus.GaugeVec
}

// HoldKinds are the bounded reasons a run is deferred or held.
var HoldKinds = []string{"paused", "silenced", "alertmanager_unreachable", "excluded", "breaker", "concurrency",
	"control_plane", "quorum", "rate", "window", "settle", "node_cap", "gate_error", "blocking_pod", "hands_off", "hook",
	"gate_query", "gate_alert", "gate_unreachable", "gate_invalid"}

// New registers the metrics on reg. runbookSteps maps each runbook to its
// step names, so every (runbook, step) series starts at zero.
func New(reg prometheus.Registerer, runbookSteps map[string][]string) *Metrics {
	m := &Metrics{
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_webhook_requests_total", Help: "Webhook requests by HTTP status code."}, []string{"code"}),
		ManualRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_manual_requests_total", Help: "Manual run requests (POST /api/v1/runs, receiver heal) by HTTP status code."}, []string{"code"}),
		WebhookDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "node_healer_webhook_duration_seconds", Help: "Time to answer a webhook request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_alerts_total", Help: "Alerts received, by what was decided."}, []string{"outcome"}),
		StreamLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_stream_lag", Help: "Stream entries not yet delivered to any worker."}),
		StreamPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_stream_pending", Help: "Stream entries delivered but not finished (runs in progress or waiting for a lock)."}),
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_runs_total", Help: "Runs that reached a final state."}, []string{"runbook", "result"}),
		RunsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_runs_active", Help: "Runs executing in this replica."}),
		StepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "node_healer_step_duration_seconds", Help: "Duration of runbook steps.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}, []string{"runbook", "step"}),
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_steps_total", Help: "Steps finished, by outcome."}, []string{"runbook", "step", "outcome"}),
		RedisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_redis_errors_total", Help: "Redis operations that failed, by operation."}, []string{"op"}),
		BadEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "node_healer_stream_bad_entries_total", Help: "Stream entries that could not be decoded (dropped and logged)."}),
		Holds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_holds_total", Help: "Runs held before a destructive step, by reason."}, []string{"reason"}),
		Deferrals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_deferrals_total", Help: "Runs deferred before they started, by reason."}, []string{"reason"}),
		BreakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_breaker_open", Help: "1 while the blast-radius breaker is open (no new runs start)."}),
		UnhealthyNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_unhealthy_nodes", Help: "Nodes NotReady, with a firing node-healer alert, or under remediation, as the breaker last counted."}),
		RebootBudget: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_reboot_budget_remaining", Help: "Reboots/power-cycles the cluster-wide rate limit allows right now."}),
		Paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_paused", Help: "1 while node-healer is paused (receiver pause)."}),
		RunsWaiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "node_healer_runs_waiting", Help: "Runs deferred (not started) or held (before a destructive step)."}, []string{"state"}),
	}
	reg.MustRegister(m.WebhookRequests, m.ManualRequests, m.WebhookDuration, m.Alerts, m.StreamLag, m.StreamPending, m.Runs,
		m.RunsActive, m.StepDuration, m.Steps, m.RedisErrors, m.BadEntries, m.Holds, m.Deferrals,
		m.BreakerOpen, m.UnhealthyNodes, m.RebootBudget, m.Paused, m.RunsWaiting)
	m.RunsWaiting.WithLabelValues("deferred")
	m.RunsWaiting.WithLabelValues("held")
	for _, k := range HoldKinds {
		m.Holds.WithLabelValues(k)
		m.Deferrals.WithLabelValues(k)
	}
	for _, c := range []string{"200", "400", "401", "413", "415", "503"} {
		m.WebhookRequests.WithLabelValues(c)
	}
	for _, c := range []string{"200", "202", "400", "401", "422", "503"} {
		m.ManualRequests.WithLabelValues(c)
	}
	for _, o := range AlertOutcomes {
		m.Alerts.WithLabelValues(o)
	}
	for _, op := range []string{"enqueue", "read", "ack", "save", "lock"} {
		m.RedisErrors.WithLabelValues(op)
	}
	for book, steps := range runbookSteps {
		for _, r := range []runbooks.Status{runbooks.StatusSucceeded, runbooks.StatusFailed, runbooks.StatusEscalated, runbooks.StatusCancelled} {
			m.Runs.WithLabelValues(book, string(r))
		}
		for _, s := range steps {
			m.StepDuration.WithLabelValues(book, s)
			for _, o := range []runbooks.Outcome{runbooks.OutcomeDone, runbooks.OutcomeSkipped, runbooks.OutcomeDryRun, runbooks.OutcomeFailed, runbooks.OutcomeEscalated} {
				m.Steps.WithLabelValues(book, s, string(o))
			}
		}
	}
	return m
}

// StepDone implements runbooks.Observer.
func (m *Metrics) StepDone(book, step string, o runbooks.Outcome, d time.Duration) {
	m.StepDuration.WithLabelValues(book, step).Observe(d.Seconds())
	m.Steps.WithLabelValues(book, step, string(o)).Inc()
}

// RunDone implements runbooks.Observer.
func (m *Metrics) RunDone(book string, s runbooks.Status) {
	m.Runs.WithLabelValues(book, string(s)).Inc()
}

// StepsOf maps each runbook in reg to its step names.
func StepsOf(reg *runbooks.Registry) map[string][]string {
	out := map[string][]string{}
	for _, n := range reg.Names() {
		b, _ := reg.Get(n)
		for _, s := range b.Steps {
			out[n] = append(out[n], s.Name)
		}
	}
	return out
}

// Held implements runbooks.Observer.
func (m *Metrics) Held(book, kind string) {
	m.Holds.WithLabelValues(kind).Inc()
}
