package reconcile

import "github.com/prometheus/client_golang/prometheus"

// Pass results (the `result` label of node_healer_reconcile_passes_total).
const (
	ResultOK      = "ok"      // a full pass ran
	ResultSkipped = "skipped" // another replica holds the reconcile lease
	ResultError   = "error"   // the pass, or one of its findings, failed; retried next interval
)

// Orphan kinds (the `kind` label of node_healer_orphans_total).
const (
	KindRunRequeued   = "run_requeued"
	KindNodeEscalated = "node_escalated"
)

// Metrics are the reconciler's metrics, every series at zero.
type Metrics struct {
	Passes      *prometheus.CounterVec
	Orphans     *prometheus.CounterVec
	LastSuccess prometheus.Gauge
}

// NewMetrics registers the metrics on reg (nil: kept, not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_reconcile_passes_total",
			Help: "Reconcile passes, by result (ok, skipped: another replica reconciles, error)."}, []string{"result"}),
		Orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_orphans_total",
			Help: "Half-done work the reconciler found and acted on: runs re-queued, nodes escalated to a human."}, []string{"kind"}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "node_healer_reconcile_last_success_timestamp_seconds",
			Help: "When this replica last completed a reconcile pass without error (Unix time)."}),
	}
	for _, r := range []string{ResultOK, ResultSkipped, ResultError} {
		m.Passes.WithLabelValues(r)
	}
	for _, k := range []string{KindRunRequeued, KindNodeEscalated} {
		m.Orphans.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(m.Passes, m.Orphans, m.LastSuccess)
	}
	return m
}
