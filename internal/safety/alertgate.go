package safety

// Alert gates (gates.block_if_alerts): a firing alert in Alertmanager
// that matches every matcher of one of the sets holds the run before its
// destructive steps.
//
// "Firing" means what Alertmanager itself would notify on: not resolved,
// not silenced, not inhibited (GET /api/v2/alerts?active=true&
// silenced=false&inhibited=false; alerts received but not yet processed
// count too, a suppressed one does not). So a silence on the blocking
// alert is how an operator lets remediation go on. The run's own alert
// (same fingerprint) never holds it. With several Alertmanagers (an HA
// pair) the alerts of those that answered are merged; none answering
// holds the run (kind gate_unreachable, fail closed). Alerts are read with
// the `alertmanagers:` HTTP client settings and kept for CacheTTL (5s).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// maxAlertsBody bounds one /api/v2/alerts answer.
const maxAlertsBody = 64 << 20

// alertsQuery selects the alerts Alertmanager would notify on.
const alertsQuery = "/api/v2/alerts?active=true&silenced=false&inhibited=false"

// apiAlert is the part of a GettableAlert that matters here.
type apiAlert struct {
	Fingerprint string         `json:"fingerprint"`
	Labels      model.LabelSet `json:"labels"`
	StartsAt    time.Time      `json:"startsAt"`
	Status      struct {
		State string `json:"state"` // active, suppressed, unprocessed
	} `json:"status"`
}

// AlertGateConfig configures NewAlertGate.
type AlertGateConfig struct {
	// Name identifies the gate in reasons and logs (e.g. "block_if_alerts",
	// "routes[2].gates.block_if_alerts").
	Name string
	// Sets: an alert matching every matcher of one set holds.
	Sets []labels.Matchers
	// Alertmanagers to read alerts from (the `alertmanagers:` config).
	Alertmanagers []AlertmanagerSet
	// Timeout bounds each request when a set has none (default 5s).
	Timeout time.Duration
	// CacheTTL: how long the alert list is reused (0: DefaultGateCacheTTL;
	// negative: never).
	CacheTTL time.Duration
	Logger   *slog.Logger
}

// AlertGate is a Check that holds runs while a matching alert fires.
type AlertGate struct {
	name      string
	sets      []labels.Matchers
	endpoints []*amEndpoint
	alerts    gateCache[alertsAnswer]
	log       *slog.Logger

	mu   sync.Mutex
	down bool // last read failed everywhere (logged on change)
}

var _ Check = (*AlertGate)(nil)

// alertsAnswer is one read of every Alertmanager: the alerts, or why none
// answered.
type alertsAnswer struct {
	alerts []apiAlert
	err    error
}

// NewAlertGate builds an alert gate.
func NewAlertGate(cfg AlertGateConfig) (*AlertGate, error) {
	if len(cfg.Sets) == 0 {
		return nil, fmt.Errorf("%s: no matcher sets", cfg.Name)
	}
	if len(cfg.Alertmanagers) == 0 {
		return nil, fmt.Errorf("%s: needs alertmanagers (where the alerts are read)", cfg.Name)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSilencesTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	eps, err := newAMEndpoints(SilencesConfig{Alertmanagers: cfg.Alertmanagers, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	return &AlertGate{name: cfg.Name, sets: cfg.Sets, endpoints: eps, alerts: newGateCache[alertsAnswer](cfg.CacheTTL), log: cfg.Logger}, nil
}

// Name implements Check.
func (g *AlertGate) Name() string { return g.name }

// Check implements Check.
func (g *AlertGate) Check(ctx context.Context, run *runbooks.Run, _ string, _ *NodeInfo) (runbooks.Decision, error) {
	ans, err := g.alerts.get(ctx, g.read)
	if err != nil {
		return runbooks.Decision{}, err
	}
	if ans.err != nil {
		return runbooks.Decision{Kind: KindGateUnreachable, Reason: bounded(fmt.Sprintf("%s: Alertmanager could not be asked for firing alerts, holding (fail closed): %v", g.name, ans.err))}, nil
	}
	var (
		first string
		n     int
	)
	for _, a := range ans.alerts {
		if run != nil && run.Fingerprint != "" && a.Fingerprint == run.Fingerprint {
			continue // the run's own alert
		}
		for i, set := range g.sets {
			if set.Matches(a.Labels) {
				if n == 0 {
					first = fmt.Sprintf("alert %s %s (firing since %s) matches %s[%d] %s", a.Labels[model.AlertNameLabel], a.Labels, a.StartsAt.UTC().Format(time.RFC3339), g.name, i, set)
				}
				n++
				break
			}
		}
	}
	if n == 0 {
		return allow, nil
	}
	more := ""
	if n > 1 {
		more = fmt.Sprintf(" (and %d more)", n-1)
	}
	return runbooks.Decision{Kind: KindGateAlert, Reason: bounded(first + more)}, nil
}

// read fetches the alerts of every Alertmanager; those that answered are
// merged (deduplicated by fingerprint). ans.err is set only when none
// answered; the error is ctx's when the caller gave up.
func (g *AlertGate) read(ctx context.Context) (alertsAnswer, error) {
	type result struct {
		alerts []apiAlert
		err    error
	}
	results := make([]result, len(g.endpoints))
	var wg sync.WaitGroup
	for i, e := range g.endpoints {
		wg.Go(func() {
			as, err := getAlerts(ctx, e)
			if err != nil {
				err = fmt.Errorf("alertmanager %s: %w", e.redacted, err)
			}
			results[i] = result{as, err}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return alertsAnswer{}, ctx.Err()
	}
	var (
		errs     []error
		answered bool
		seen     = map[string]bool{}
		all      []apiAlert
	)
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		answered = true
		for _, a := range r.alerts {
			if a.Fingerprint != "" && seen[a.Fingerprint] {
				continue
			}
			seen[a.Fingerprint] = true
			all = append(all, a)
		}
	}
	// Oldest first: the reason names the longest-firing match, stably.
	sort.SliceStable(all, func(i, j int) bool { return all[i].StartsAt.Before(all[j].StartsAt) })
	ans := alertsAnswer{alerts: all}
	if !answered {
		ans.err = errors.Join(errs...)
	}
	g.mu.Lock()
	wasDown := g.down
	g.down = !answered
	g.mu.Unlock()
	switch {
	case !answered && !wasDown:
		g.log.Warn("alert gate: no Alertmanager answered; runs hold before destructive steps", "gate", g.name, "err", ans.err)
	case answered && wasDown:
		g.log.Info("alert gate: Alertmanager answers again", "gate", g.name)
	}
	return ans, nil
}

// getAlerts GETs e's firing (not silenced, not inhibited) alerts.
func getAlerts(ctx context.Context, e *amEndpoint) ([]apiAlert, error) {
	var all []apiAlert
	if err := e.getJSON(ctx, alertsQuery, maxAlertsBody, &all); err != nil {
		return nil, err
	}
	out := all[:0]
	for _, a := range all {
		if a.Status.State != "suppressed" {
			out = append(out, a)
		}
	}
	return out, nil
}
