package locks

import "github.com/prometheus/client_golang/prometheus"

// Acquire results, the values of the result label.
const (
	resultAcquired  = "acquired"
	resultContended = "contended"
	resultError     = "error"
	// resultNotReplicated: taken on the primary, but fewer replicas than
	// required acknowledged it in time; released, counted as not acquired.
	resultNotReplicated = "not_replicated"
)

type metrics struct {
	acquired, contended, failed, notReplicated prometheus.Counter
	lost                                       prometheus.Counter
}

// newMetrics builds the counters, all series at zero, and registers them on
// reg when it is not nil (a second Locker on the same registry panics, like
// any duplicate registration).
func newMetrics(reg prometheus.Registerer) *metrics {
	acquire := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "node_healer_lock_acquire_total",
		Help: "Node lock acquisition attempts by result (acquired, contended, not_replicated, error).",
	}, []string{"result"})
	lost := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "node_healer_lock_lost_total",
		Help: "Leases lost while held: taken over, expired, or not renewable before expiry.",
	})
	if reg != nil {
		reg.MustRegister(acquire, lost)
	}
	return &metrics{
		acquired:      acquire.WithLabelValues(resultAcquired),
		contended:     acquire.WithLabelValues(resultContended),
		failed:        acquire.WithLabelValues(resultError),
		notReplicated: acquire.WithLabelValues(resultNotReplicated),
		lost:          lost,
	}
}
