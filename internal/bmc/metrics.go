package bmc

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Operations (the `op` label of node_healer_bmc_requests_total).
const (
	OpPowerState    = "power_state"
	OpAllowedResets = "allowed_resets"
	OpReset         = "reset"
)

// Results (the `result` label).
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultTimeout = "timeout"
)

// ResetTypes are the Redfish ResetType values (the `type` label of
// node_healer_bmc_resets_total).
var ResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton", "PowerCycle"}

// Metrics are the BMC client's metrics. A nil *Metrics records nothing.
type Metrics struct {
	Requests *prometheus.CounterVec
	Resets   *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg with every label combination at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_bmc_requests_total",
			Help: "BMC operations by outcome (an operation may be several HTTP requests)."}, []string{"op", "result"}),
		Resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_bmc_resets_total",
			Help: "Reset requests sent to BMCs, by Redfish ResetType, whatever their outcome."}, []string{"type"}),
	}
	reg.MustRegister(m.Requests, m.Resets)
	for _, op := range []string{OpPowerState, OpAllowedResets, OpReset} {
		for _, r := range []string{ResultOK, ResultError, ResultTimeout} {
			m.Requests.WithLabelValues(op, r)
		}
	}
	for _, t := range ResetTypes {
		m.Resets.WithLabelValues(t)
	}
	return m
}

func (m *Metrics) request(op string, err error) {
	if m == nil {
		return
	}
	r := ResultOK
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		r = ResultTimeout
	case err != nil:
		r = ResultError
	}
	m.Requests.WithLabelValues(op, r).Inc()
}

func (m *Metrics) reset(resetType string) {
	if m == nil {
		return
	}
	m.Resets.WithLabelValues(resetType).Inc()
}
