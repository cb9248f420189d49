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

// Protocols (the `protocol` label of both metrics, and an inventory
// entry's protocol).
const (
	ProtocolRedfish = "redfish"
	ProtocolIPMI    = "ipmi"
)

// ResetTypes are the Redfish ResetType values (the `type` label of
// node_healer_bmc_resets_total for protocol="redfish").
var ResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton", "PowerCycle"}

// IPMIControls are the IPMI Chassis Control values node-healer sends (the
// `type` label of node_healer_bmc_resets_total for protocol="ipmi").
var IPMIControls = []string{ipmiSoft, ipmiCycle, ipmiReset, ipmiOff, ipmiOn}

// Metrics are the BMC clients' metrics. A nil *Metrics records nothing.
type Metrics struct {
	Requests *prometheus.CounterVec
	Resets   *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg with every label combination at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_bmc_requests_total",
			Help: "BMC operations by protocol and outcome (an operation may be several requests or datagrams)."}, []string{"protocol", "op", "result"}),
		Resets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_bmc_resets_total",
			Help: "Reset requests sent to BMCs, by protocol and type (Redfish ResetType, IPMI chassis control), whatever their outcome."}, []string{"protocol", "type"}),
	}
	reg.MustRegister(m.Requests, m.Resets)
	for _, p := range []string{ProtocolRedfish, ProtocolIPMI} {
		for _, op := range []string{OpPowerState, OpAllowedResets, OpReset} {
			if p == ProtocolIPMI && op == OpAllowedResets {
				continue // IPMI has no advertised reset list
			}
			for _, r := range []string{ResultOK, ResultError, ResultTimeout} {
				m.Requests.WithLabelValues(p, op, r)
			}
		}
	}
	for _, t := range ResetTypes {
		m.Resets.WithLabelValues(ProtocolRedfish, t)
	}
	for _, t := range IPMIControls {
		m.Resets.WithLabelValues(ProtocolIPMI, t)
	}
	return m
}

// request counts a Redfish operation.
func (m *Metrics) request(op string, err error) { m.requestBy(ProtocolRedfish, op, err) }

// reset counts a Redfish reset.
func (m *Metrics) reset(resetType string) { m.resetBy(ProtocolRedfish, resetType) }

func (m *Metrics) requestBy(protocol, op string, err error) {
	if m == nil {
		return
	}
	r := ResultOK
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		r = ResultTimeout
	case err != nil:
		r = ResultError
	}
	m.Requests.WithLabelValues(protocol, op, r).Inc()
}

func (m *Metrics) resetBy(protocol, typ string) {
	if m == nil {
		return
	}
	m.Resets.WithLabelValues(protocol, typ).Inc()
}
