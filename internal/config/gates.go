package config

import (
	"fmt"

	"github.com/prometheus/common/model"
)

// Gates are questions asked of the cluster before every destructive step
// (see internal/safety: each is a safety.Check). A gate that says "not
// now" holds the run with its name and reason; a gate that cannot be
// asked (Prometheus down…) holds it too: fail closed. Set globally
// (`gates:`) and per route (`routes[].gates`); a route's gates are asked
// in addition to the global ones.
type Gates struct {
	// BlockIfQuery: PromQL instant queries; a non-empty result holds.
	BlockIfQuery []PromQLGate `yaml:"block_if_query"`
	// BlockIfAlerts: Alertmanager matcher sets (`alertname="CephHealthWarn"`);
	// any firing alert in Alertmanager matching every matcher of a set holds.
	BlockIfAlerts [][]string `yaml:"block_if_alerts"`
	// BlockingPods: pods whose presence holds (on the node, or anywhere).
	BlockingPods *BlockingPods `yaml:"blocking_pods"`
	// HandsOff: marks other actors put on a node they are working on
	// (taints, labels, annotations); a marked node's run is deferred.
	HandsOff *HandsOff `yaml:"hands_off"`
}

// PromQLGate is one block_if_query entry.
type PromQLGate struct {
	Name          string         `yaml:"name"`
	Query         string         `yaml:"query"`
	PrometheusURL string         `yaml:"prometheus_url"`
	Timeout       model.Duration `yaml:"timeout"`
}

// BlockingPods selects pods that block remediation.
type BlockingPods struct {
	LabelSelector string   `yaml:"label_selector"`
	Namespaces    []string `yaml:"namespaces"` // empty: all
	// Scope: node (default: a matching pod on the node holds) or cluster
	// (a matching pod anywhere holds).
	Scope string `yaml:"scope"`
}

// HandsOff lists other actors' marks (in addition to the defaults the
// safety package documents, e.g. cluster-autoscaler's deletion taint).
type HandsOff struct {
	Taints      []string `yaml:"taints"`
	Labels      []string `yaml:"labels"`      // key or key=value
	Annotations []string `yaml:"annotations"` // key or key=value
	// NoDefaults drops the built-in marks.
	NoDefaults bool `yaml:"no_defaults"`
}

// Hook is an HTTP POST of the run (as JSON) at points of its life.
type Hook struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// On: before-destructive, run-finished, escalated.
	On []string `yaml:"on"`
	// Blocking (before-destructive only): anything but a 2xx in time
	// holds the run (for change-ticket systems).
	Blocking        bool           `yaml:"blocking"`
	Timeout         model.Duration `yaml:"timeout"`
	BearerTokenFile string         `yaml:"bearer_token_file"`
}

// validate checks every gate; field names in errors start with prefix
// ("gates" or "routes[i].gates").
func (g *Gates) validate(prefix string) error {
	if g == nil {
		return nil
	}
	if err := validatePromQLGates(prefix, g.BlockIfQuery); err != nil {
		return err
	}
	if err := validateAlertGates(prefix, g.BlockIfAlerts); err != nil {
		return err
	}
	if err := validateBlockingPods(prefix, g.BlockingPods); err != nil {
		return err
	}
	return validateHandsOff(prefix, g.HandsOff)
}

func validateHooksList(hooks []Hook) error {
	for i := range hooks {
		if err := validateHook(fmt.Sprintf("hooks[%d]", i), &hooks[i]); err != nil {
			return err
		}
	}
	return ValidateHookNames(hooks)
}
