package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/ui"
)

// Router picks the route for an alert's labels (nil: no route).
type Router interface {
	Match(labels map[string]string) *config.Route
}

// Intake persists accepted alerts and remembers resolved ones.
type Intake interface {
	// Enqueue persists requests; added[i] is false for a duplicate.
	Enqueue(ctx context.Context, reqs []runbooks.Request) (added []bool, err error)
	// Record persists what one webhook payload decided, in one Redis round
	// trip: the accepted requests (as Enqueue; added[i] is false for a
	// duplicate), the routed firing alerts of this cluster's nodes
	// (fingerprint → node, counted by the blast-radius breaker) and the
	// resolved ones (fingerprint → endsAt). An error means none of it can
	// be trusted: the webhook answers 503 and Alertmanager retries.
	Record(ctx context.Context, reqs []runbooks.Request, firing map[string]string, resolved map[string]time.Time) (added []bool, err error)
}

// NodeChecker tells whether a node exists in the cluster.
type NodeChecker interface {
	NodeExists(ctx context.Context, name string) (bool, error)
}

// Runs reads runs for the API.
type Runs interface {
	Load(ctx context.Context, id string) (*runbooks.Run, error)
	List(ctx context.Context, limit int) ([]*runbooks.Run, error)
	// ListJSON is List as each run's stored JSON object, for the API to
	// answer without decoding and encoding every run again.
	ListJSON(ctx context.Context, limit int) ([]json.RawMessage, error)
}

// Check is one readiness check; a non-nil error means not ready.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// Options wires the server.
type Options struct {
	Router Router
	Intake Intake
	Nodes  NodeChecker // nil: don't check node existence
	Runs   Runs
	// Auth is the webhook's bearer token; CurrentAuth, when set, is asked
	// per request instead (the reloadable one).
	Auth        config.Auth
	CurrentAuth func() config.Auth
	MaxBody     int64
	DryRun      bool // global --dry-run: every accepted alert becomes a dry run
	Ready       []Check
	// Status reports safety state for GET /api/v1/status (nil: 404).
	Status func(ctx context.Context) (any, error)
	// Reload re-reads the configuration for POST /-/reload, which answers
	// 403 unless EnableLifecycle is set.
	Reload          func(ctx context.Context) error
	EnableLifecycle bool
	Metrics         *metrics.Metrics
	Gatherer        prometheus.Gatherer
	Log             *slog.Logger
	Now             func() time.Time

	// UI is the operator's page at / (internal/ui); nil: none. Its Heal,
	// when unset, is the manual-run path of POST /api/v1/runs.
	UI *ui.Options
}

// New builds the echo server with every route. TLS, client certificates
// and basic auth are not here: serve hands this server to
// exporter-toolkit's web package, which applies the web configuration
// file to every route before any of these handlers runs.
func New(o Options) *echo.Echo {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBody <= 0 {
		o.MaxBody = config.DefaultMaxBodyBytes
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(o.Log)
	w := &webhookHandler{o: o}
	auth := o.CurrentAuth
	if auth == nil {
		auth = func() config.Auth { return o.Auth }
	}
	e.POST("/webhook", w.handle, countCodes(o.Metrics), authenticate(auth))
	e.POST("/-/reload", reload(o))
	e.GET("/-/healthy", func(c echo.Context) error { return c.String(http.StatusOK, "OK\n") })
	e.GET("/-/ready", ready(o.Ready))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})))
	api := &runsAPI{runs: o.Runs}
	e.GET("/api/v1/runs", api.list)
	e.GET("/api/v1/runs/:id", api.get)
	// Manual runs (receiver heal): the webhook's token, the same queue and gates.
	var manualCodes *prometheus.CounterVec
	if o.Metrics != nil {
		manualCodes = o.Metrics.ManualRequests
	}
	manual := newManualHandler(o)
	e.POST("/api/v1/runs", manual.handle, countCodesInto(manualCodes, nil), authenticate(auth))
	if o.UI != nil {
		mountUI(e, *o.UI, manual, manualCodes, o.Log)
	}
	if o.Status != nil {
		e.GET("/api/v1/status", func(c echo.Context) error {
			st, err := o.Status(c.Request().Context())
			if err != nil {
				return echo.NewHTTPError(http.StatusServiceUnavailable, "cannot read status: "+err.Error())
			}
			return c.JSON(http.StatusOK, st)
		})
	}
	return e
}

// errorBody is every error reply: {"error": "..."}.
type errorBody struct {
	Error string `json:"error"`
}

func errorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		code, msg := http.StatusInternalServerError, "internal error"
		if he, ok := err.(*echo.HTTPError); ok {
			code = he.Code
			if s, ok := he.Message.(string); ok {
				msg = s
			} else {
				msg = http.StatusText(code)
			}
		} else {
			log.Error("request failed", "path", c.Path(), "err", err)
		}
		_ = c.JSON(code, errorBody{Error: msg})
	}
}

// countCodes counts webhook replies by status code.
func countCodes(m *metrics.Metrics) echo.MiddlewareFunc {
	if m == nil {
		return countCodesInto(nil, nil)
	}
	return countCodesInto(m.WebhookRequests, m.WebhookDuration)
}

// countCodesInto counts an endpoint's replies by status code in codes
// (and their duration in took, when set); authentication failures
// included, since it runs before authenticate.
func countCodesInto(codes *prometheus.CounterVec, took prometheus.Histogram) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			code := c.Response().Status
			if err != nil {
				if he, ok := err.(*echo.HTTPError); ok {
					code = he.Code
				} else {
					code = http.StatusInternalServerError
				}
			}
			if codes != nil {
				codes.WithLabelValues(strconv.Itoa(code)).Inc()
			}
			if took != nil {
				took.Observe(time.Since(start).Seconds())
			}
			return err
		}
	}
}

func ready(checks []Check) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		for _, ch := range checks {
			if err := ch.Func(ctx); err != nil {
				return c.JSON(http.StatusServiceUnavailable, errorBody{Error: ch.Name + ": " + err.Error()})
			}
		}
		return c.String(http.StatusOK, "OK\n")
	}
}
