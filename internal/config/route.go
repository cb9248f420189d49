package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Route maps alerts to a runbook. Routes are tried in order; the first
// whose matchers all match wins.
type Route struct {
	Name string `yaml:"name"`
	// Matchers in Alertmanager syntax: `alertname="NodeKernelDeadlock"`, `severity=~"critical|page"`.
	Matchers []string `yaml:"matchers"`
	Runbook  string   `yaml:"runbook"`
	// NodeLabel is the alert label carrying the node name (default "node").
	NodeLabel string `yaml:"node_label"`
	// StripPort derives the node from a host:port value (e.g. the instance label).
	StripPort bool              `yaml:"strip_port"`
	DryRun    bool              `yaml:"dry_run"`
	Params    map[string]string `yaml:"params"`
	// MaintenanceWindows, when set, are the only times destructive steps
	// may run for this route. Each is an Alertmanager time interval (see
	// window.go), decoded and checked by compile; read them with Windows.
	MaintenanceWindows []yaml.Node `yaml:"maintenance_windows"`
	// Gates asked before this route's destructive steps, in addition to
	// the global ones.
	Gates *Gates `yaml:"gates"`

	matchers labels.Matchers
	windows  []timeinterval.TimeInterval
}

func (r *Route) compile(known []string) error {
	if r.Name == "" {
		return errors.New("name: required")
	}
	if len(r.Matchers) == 0 {
		return errors.New("matchers: at least one matcher is required (a route matching every alert is too broad)")
	}
	r.matchers = r.matchers[:0]
	for i, s := range r.Matchers {
		m, err := labels.ParseMatcher(s)
		if err != nil {
			return fmt.Errorf("matchers[%d]: %q: %w", i, s, err)
		}
		r.matchers = append(r.matchers, m)
	}
	if r.Runbook == "" {
		return errors.New("runbook: required")
	}
	if known != nil && !slices.Contains(known, r.Runbook) {
		return fmt.Errorf("runbook: unknown runbook %q (known: %s)", r.Runbook, strings.Join(known, ", "))
	}
	if !model.LabelName(r.NodeLabel).IsValidLegacy() {
		return fmt.Errorf("node_label: %q is not a valid label name", r.NodeLabel)
	}
	r.windows = r.windows[:0]
	for i := range r.MaintenanceWindows {
		w, err := decodeWindow(&r.MaintenanceWindows[i])
		if err != nil {
			return fmt.Errorf("maintenance_windows[%d]: %w", i, err)
		}
		r.windows = append(r.windows, w)
	}
	return nil
}

// Windows returns the route's maintenance windows (none: any time).
func (r *Route) Windows() []timeinterval.TimeInterval { return r.windows }

// Matches reports whether every matcher matches the label set.
func (r *Route) Matches(lset map[string]string) bool {
	for _, m := range r.matchers {
		if !m.Matches(lset[m.Name]) {
			return false
		}
	}
	return true
}

// Node extracts the node name from an alert's labels.
func (r *Route) Node(lset map[string]string) (string, bool) {
	v := lset[r.NodeLabel]
	if v == "" {
		return "", false
	}
	if r.StripPort {
		if h, _, err := net.SplitHostPort(v); err == nil {
			v = h
		}
	}
	return v, v != ""
}

// Match returns the first route matching the labels, or nil.
func (c *Config) Match(lset map[string]string) *Route {
	for _, r := range c.Routes {
		if r.Matches(lset) {
			return r
		}
	}
	return nil
}
