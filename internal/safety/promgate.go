package safety

// PromQL gates (gates.block_if_query): an instant query asked of
// Prometheus before every destructive step; any series it returns holds
// the run.
//
// What holds: an instant vector with at least one sample, whatever its
// value — write the condition into the query (`ceph_health_status != 0`),
// as in an alerting rule. An empty vector allows. A query that does not
// return a vector (a scalar, a string, a range) is a configuration error
// and holds too (kind gate_invalid), like a query Prometheus rejects:
// node-healer does not parse PromQL itself (that would pull the whole
// Prometheus module in), so a syntax error surfaces here, with
// Prometheus' own message as the reason. Prometheus unreachable, a
// timeout or a 5xx hold with kind gate_unreachable (fail closed).
//
// Each gate keeps its answer for CacheTTL (5s) so that many runs asking at
// once send one query; concurrent askers wait for the one in flight.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Hold kinds of the query and alert gates.
const (
	// KindGateQuery: a PromQL gate's query returned series.
	KindGateQuery = "gate_query"
	// KindGateAlert: a firing alert matched an alert gate.
	KindGateAlert = "gate_alert"
	// KindGateUnreachable: the gate's Prometheus or Alertmanager could not
	// be asked (down, timeout, 5xx).
	KindGateUnreachable = "gate_unreachable"
	// KindGateInvalid: Prometheus rejected the query (bad syntax) or it
	// does not return an instant vector: fix the configuration.
	KindGateInvalid = "gate_invalid"
)

// DefaultGateCacheTTL is how long a gate's answer is reused.
const DefaultGateCacheTTL = 5 * time.Second

// maxGateReason bounds a hold reason built from query results or alerts.
const maxGateReason = 400

// QueryGateConfig configures NewQueryGate.
type QueryGateConfig struct {
	Name, Query string
	// PrometheusURL is Prometheus' base URL (a path prefix is kept).
	PrometheusURL string
	// Timeout bounds one query (also sent to Prometheus as its timeout).
	Timeout time.Duration
	// CacheTTL: how long an answer is reused (0: DefaultGateCacheTTL;
	// negative: never).
	CacheTTL time.Duration
	// HTTPClient (nil: a plain one).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// QueryGate is a Check that holds runs while a PromQL query returns series.
type QueryGate struct {
	name, query string
	api         v1.API
	timeout     time.Duration
	answers     gateCache[runbooks.Decision]
	log         *slog.Logger
}

var _ Check = (*QueryGate)(nil)

// NewQueryGate builds a PromQL gate (the config package validated it).
func NewQueryGate(cfg QueryGateConfig) (*QueryGate, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	client, err := api.NewClient(api.Config{Address: cfg.PrometheusURL, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("gate %s: prometheus_url: %w", cfg.Name, err)
	}
	return &QueryGate{name: cfg.Name, query: cfg.Query, api: v1.NewAPI(client), timeout: cfg.Timeout,
		answers: newGateCache[runbooks.Decision](cfg.CacheTTL), log: cfg.Logger}, nil
}

// Name implements Check.
func (q *QueryGate) Name() string { return q.name }

// Check implements Check: the same answer for every run and node.
func (q *QueryGate) Check(ctx context.Context, _ *runbooks.Run, _ string, _ *NodeInfo) (runbooks.Decision, error) {
	return q.answers.get(ctx, q.ask)
}

// ask runs the query once. An error is returned only when ctx ended (the
// caller gave up); everything else is a Decision.
func (q *QueryGate) ask(ctx context.Context) (runbooks.Decision, error) {
	qctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	val, _, _, err := q.api.Query(qctx, q.query, time.Time{}, v1.WithTimeout(q.timeout))
	if err != nil {
		if ctx.Err() != nil {
			return runbooks.Decision{}, ctx.Err()
		}
		d := q.failed(err)
		q.log.Warn("PromQL gate could not be evaluated; runs hold", "gate", q.name, "kind", d.Kind, "err", err)
		return d, nil
	}
	vec, ok := val.(model.Vector)
	if !ok {
		return runbooks.Decision{Kind: KindGateInvalid, Reason: fmt.Sprintf("gate %s: the query returns a %s, want an instant vector (e.g. `metric != 0`); fix gates.block_if_query", q.name, val.Type())}, nil
	}
	if len(vec) == 0 {
		return allow, nil
	}
	return runbooks.Decision{Kind: KindGateQuery, Reason: seriesReason(q.name, vec)}, nil
}

// failed maps a query error to a hold.
func (q *QueryGate) failed(err error) runbooks.Decision {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Type {
		case v1.ErrBadData, v1.ErrExec:
			return runbooks.Decision{Kind: KindGateInvalid, Reason: bounded(fmt.Sprintf("gate %s: Prometheus rejected the query (%s): %s; fix gates.block_if_query", q.name, apiErr.Type, apiErr.Msg))}
		}
	}
	return runbooks.Decision{Kind: KindGateUnreachable, Reason: bounded(fmt.Sprintf("gate %s: Prometheus could not be asked, holding (fail closed): %v", q.name, err))}
}

// seriesReason is "gate NAME: N series, e.g. {labels} = value".
func seriesReason(name string, vec model.Vector) string {
	s := vec[0]
	return bounded(fmt.Sprintf("gate %s: %d series, e.g. %s = %s", name, len(vec), s.Metric, s.Value))
}

// bounded cuts s to maxGateReason bytes (on a rune boundary).
func bounded(s string) string {
	if len(s) <= maxGateReason {
		return s
	}
	cut := maxGateReason - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// gateCache keeps a gate's last answer for ttl; one ask at a time, the
// others wait for it and reuse its answer. An ask that fails (the caller's
// ctx ended) is not kept.
type gateCache[T any] struct {
	ttl  time.Duration
	now  func() time.Time
	slot chan struct{}

	mu  *sync.Mutex
	at  time.Time
	ans T
}

func newGateCache[T any](ttl time.Duration) gateCache[T] {
	switch {
	case ttl == 0:
		ttl = DefaultGateCacheTTL
	case ttl < 0:
		ttl = 0
	}
	return gateCache[T]{ttl: ttl, now: time.Now, slot: make(chan struct{}, 1), mu: &sync.Mutex{}}
}

func (c *gateCache[T]) cached() (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || c.now().Sub(c.at) >= c.ttl {
		var zero T
		return zero, false
	}
	return c.ans, true
}

func (c *gateCache[T]) get(ctx context.Context, ask func(context.Context) (T, error)) (T, error) {
	if v, ok := c.cached(); ok {
		return v, nil
	}
	var zero T
	select {
	case c.slot <- struct{}{}:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	defer func() { <-c.slot }()
	if v, ok := c.cached(); ok {
		return v, nil // asked while this one waited
	}
	v, err := ask(ctx)
	if err != nil {
		return zero, err
	}
	c.mu.Lock()
	c.at, c.ans = c.now(), v
	c.mu.Unlock()
	return v, nil
}
