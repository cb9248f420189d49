package hooks

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts hook requests.
type Metrics struct {
	// Requests: every attempt by hook and result (see Results), and
	// deliveries dropped because the background queue was full.
	Requests *prometheus.CounterVec
}

// NewMetrics registers node_healer_hook_requests_total on reg (or uses
// the one registered there already), every (hook, result) at zero.
func NewMetrics(reg prometheus.Registerer, hooks []*Hook) *Metrics {
	m := &Metrics{Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "node_healer_hook_requests_total",
		Help: "Hook requests by hook and result (ok, http_error, timeout, unreachable; dropped: never sent, the queue was full)."},
		[]string{"hook", "result"})}
	if err := reg.Register(m.Requests); err != nil {
		are, ok := err.(prometheus.AlreadyRegisteredError)
		if !ok {
			panic(err)
		}
		m.Requests = are.ExistingCollector.(*prometheus.CounterVec)
	}
	for _, h := range hooks {
		for _, r := range Results {
			m.Requests.WithLabelValues(h.Name, r)
		}
	}
	return m
}

func (m *Metrics) count(hook, result string) {
	if m != nil {
		m.Requests.WithLabelValues(hook, result).Inc()
	}
}
