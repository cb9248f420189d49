package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
)

// DefaultGateQueryTimeout bounds one block_if_query request to Prometheus.
const DefaultGateQueryTimeout = 10 * time.Second

// validatePromQLGates checks block_if_query: every gate has a name unique
// in its section, a query and an http(s) prometheus_url; timeout defaults
// to 10s.
//
// The query's syntax is not checked here: that needs Prometheus' own
// parser (github.com/prometheus/prometheus/promql/parser), which would
// bring the whole Prometheus module into go.mod. Prometheus answers a bad
// query with 400 and the parser's message; the gate then holds its runs
// (kind gate_invalid) with that message as the reason. Try a query with
// `promtool query instant` before putting it here.
func validatePromQLGates(prefix string, gates []PromQLGate) error {
	seen := map[string]int{}
	for i := range gates {
		g := &gates[i]
		field := fmt.Sprintf("%s.block_if_query[%d]", prefix, i)
		g.Name = strings.TrimSpace(g.Name)
		if g.Name == "" {
			return fmt.Errorf("%s.name: required", field)
		}
		if j, dup := seen[g.Name]; dup {
			return fmt.Errorf("%s.name: %q is already used by %s.block_if_query[%d]", field, g.Name, prefix, j)
		}
		seen[g.Name] = i
		if strings.TrimSpace(g.Query) == "" {
			return fmt.Errorf("%s.query: required (a PromQL expression; any series it returns holds the run)", field)
		}
		if err := checkPrometheusURL(g.PrometheusURL); err != nil {
			return fmt.Errorf("%s.prometheus_url: %w", field, err)
		}
		switch {
		case g.Timeout == 0:
			g.Timeout = model.Duration(DefaultGateQueryTimeout)
		case g.Timeout < 0 || time.Duration(g.Timeout) > 5*time.Minute:
			return fmt.Errorf("%s.timeout: must be between 0 and 5m, got %s", field, g.Timeout)
		}
	}
	return nil
}

func checkPrometheusURL(raw string) error {
	if strings.TrimSpace(raw) == "" {
		return errors.New("required (e.g. http://prometheus:9090)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want http(s)://host[:port][/prefix]", u.Redacted())
	}
	if u.User != nil {
		return fmt.Errorf("%q: do not put credentials in the URL", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: no query or fragment", u.Redacted())
	}
	return nil
}

// validateAlertGates checks block_if_alerts: each set has at least one
// matcher, each in Alertmanager's matcher syntax.
func validateAlertGates(prefix string, sets [][]string) error {
	_, err := parseAlertGates(prefix, sets)
	return err
}

// AlertGateMatchers returns block_if_alerts parsed with Alertmanager's
// pkg/labels, one labels.Matchers per set (the config is validated, so
// this does not fail for a loaded config). prefix names the section in
// errors ("gates", "routes[i].gates").
func (g *Gates) AlertGateMatchers(prefix string) ([]labels.Matchers, error) {
	if g == nil {
		return nil, nil
	}
	return parseAlertGates(prefix, g.BlockIfAlerts)
}

func parseAlertGates(prefix string, sets [][]string) ([]labels.Matchers, error) {
	out := make([]labels.Matchers, 0, len(sets))
	for i, set := range sets {
		if len(set) == 0 {
			return nil, fmt.Errorf("%s.block_if_alerts[%d]: at least one matcher is required (an empty set would match every alert)", prefix, i)
		}
		ms := make(labels.Matchers, 0, len(set))
		for j, s := range set {
			m, err := labels.ParseMatcher(s)
			if err != nil {
				return nil, fmt.Errorf("%s.block_if_alerts[%d][%d]: %q: %w", prefix, i, j, s, err)
			}
			ms = append(ms, m)
		}
		out = append(out, ms)
	}
	return out, nil
}
