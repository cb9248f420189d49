package handlers

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// AlertResult is the decision for one alert, as returned to the caller.
type AlertResult struct {
	Fingerprint string `json:"fingerprint"`
	Outcome     string `json:"outcome"` // accepted | ignored
	Reason      string `json:"reason"`  // accepted, duplicate, resolved, no_route, no_node_label, unknown_node
	Route       string `json:"route,omitempty"`
	Runbook     string `json:"runbook,omitempty"`
	Node        string `json:"node,omitempty"`
	RunID       string `json:"run,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// Reply is the webhook's 200 body.
type Reply struct {
	Accepted int           `json:"accepted"`
	Ignored  int           `json:"ignored"`
	Alerts   []AlertResult `json:"alerts"`
}

type webhookHandler struct{ o Options }

func (w *webhookHandler) handle(c echo.Context) error {
	r := c.Request()
	body, err := readBody(http.MaxBytesReader(c.Response(), r.Body, w.o.MaxBody), r.ContentLength, w.o.MaxBody)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("payload larger than %d bytes (webhook.max_body_bytes); lower max_alerts in Alertmanager's webhook_configs", w.o.MaxBody))
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "reading body: "+err.Error())
	}
	msg, err := decodePayload(body)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "malformed JSON: "+err.Error())
	}
	if msg.Version != "4" {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("unsupported payload version %q: node-healer reads Alertmanager webhook version \"4\"", msg.Version))
	}
	if len(msg.Alerts) == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "payload has no alerts")
	}
	ctx := r.Context()
	results := make([]AlertResult, len(msg.Alerts))
	reqs := make([]runbooks.Request, 0, len(msg.Alerts))
	reqIdx := make([]int, 0, len(msg.Alerts))
	var resolved map[string]time.Time
	var firing map[string]string
	for i, a := range msg.Alerts {
		res := &results[i]
		res.Fingerprint = a.Fingerprint
		res.Outcome = "ignored"
		if a.Fingerprint == "" {
			res.Reason, res.Detail = metrics.OutcomeNoRoute, "alert has no fingerprint"
			continue
		}
		if a.Status == "resolved" {
			res.Reason = metrics.OutcomeResolved
			if resolved == nil {
				resolved = map[string]time.Time{}
			}
			resolved[a.Fingerprint] = a.EndsAt
			continue
		}
		lbls := a.Labels
		route := w.o.Router.Match(lbls)
		if route == nil {
			res.Reason = metrics.OutcomeNoRoute
			continue
		}
		res.Route, res.Runbook = route.Name, route.Runbook
		node, ok := route.Node(lbls)
		if !ok {
			res.Reason, res.Detail = metrics.OutcomeNoNodeLabel, fmt.Sprintf("label %q is missing or empty", route.NodeLabel)
			continue
		}
		res.Node = node
		if w.o.Nodes != nil {
			exists, err := w.o.Nodes.NodeExists(ctx, node)
			if err != nil {
				// Cannot verify (API server unreachable since start): accept;
				// the worker checks again before acting.
				res.Detail = "node not verified: " + err.Error()
			} else if !exists {
				res.Reason = metrics.OutcomeUnknownNode
				continue
			}
		}
		// Only alerts for nodes of this cluster count toward the breaker.
		if firing == nil {
			firing = make(map[string]string, len(msg.Alerts))
		}
		firing[a.Fingerprint] = node
		res.RunID = runbooks.RunID(a.Fingerprint, a.StartsAt)
		reqs = append(reqs, runbooks.Request{
			RunID: res.RunID, Fingerprint: a.Fingerprint, StartsAt: a.StartsAt, Node: node,
			Route: route.Name, Runbook: route.Runbook, DryRun: route.DryRun || w.o.DryRun,
			Labels: lbls, Params: route.Params, Enqueued: w.o.Now(),
		})
		reqIdx = append(reqIdx, i)
	}
	if len(reqs) > 0 || len(firing) > 0 || len(resolved) > 0 {
		added, err := w.o.Intake.Record(ctx, reqs, firing, resolved)
		if err != nil {
			return w.unavailable(err)
		}
		if len(added) != len(reqs) {
			return w.unavailable(fmt.Errorf("intake answered %d results for %d requests", len(added), len(reqs)))
		}
		for k, i := range reqIdx {
			if added[k] {
				results[i].Outcome, results[i].Reason = "accepted", metrics.OutcomeAccepted
			} else {
				results[i].Reason = metrics.OutcomeDuplicate
			}
		}
	}
	reply := Reply{Alerts: results}
	var runs, nodes []string
	seenNode := map[string]bool{}
	debug := w.o.Log.Enabled(ctx, slog.LevelDebug)
	byReason := map[string]int{}
	for _, res := range results {
		if res.Outcome == "accepted" {
			reply.Accepted++
			runs = append(runs, res.RunID)
			if !seenNode[res.Node] {
				seenNode[res.Node] = true
				nodes = append(nodes, res.Node)
			}
		} else {
			reply.Ignored++
		}
		byReason[res.Reason]++
		if debug {
			w.o.Log.Debug("alert", "outcome", res.Outcome, "reason", res.Reason, "run", res.RunID, "node", res.Node, "route", res.Route,
				"runbook", res.Runbook, "fingerprint", res.Fingerprint, "detail", res.Detail)
		}
	}
	if w.o.Metrics != nil {
		for reason, n := range byReason {
			w.o.Metrics.Alerts.WithLabelValues(reason).Add(float64(n))
		}
	}
	// One line per payload, not per alert: Alertmanager sends up to
	// max_alerts (often 100) per payload, and a line each was a third of
	// the handler's CPU. Each run's own lines follow from the worker.
	if reply.Accepted > 0 {
		w.o.Log.Info("alerts accepted", "accepted", reply.Accepted, "ignored", reply.Ignored,
			"runs", strings.Join(runs, ","), "nodes", strings.Join(nodes, ","))
	}
	// Encoded whole, then written once with its length: echo's c.JSON
	// streams through the connection's 4-KiB buffer, a write(2) per 4 KiB
	// of a 100-alert reply (≈ 20 KiB) — under load, the handler's largest
	// cost in the receiver's profile.
	out, err := json.Marshal(&reply)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentLength, strconv.Itoa(len(out)))
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, out)
}

// unavailable answers 503 (Alertmanager retries 5xx) when alerts cannot be persisted.
func (w *webhookHandler) unavailable(err error) error {
	if w.o.Metrics != nil {
		w.o.Metrics.RedisErrors.WithLabelValues("enqueue").Inc()
	}
	w.o.Log.Error("cannot persist alerts; answering 503 so Alertmanager retries", "err", err)
	return echo.NewHTTPError(http.StatusServiceUnavailable, "could not persist alerts (Redis unavailable); Alertmanager will retry")
}

// readBody reads a request body in one allocation when its length is
// known (Alertmanager sends Content-Length), growing otherwise.
func readBody(r io.Reader, length, limit int64) ([]byte, error) {
	if length <= 0 || length > limit {
		return io.ReadAll(r)
	}
	buf := make([]byte, length+1) // +1: a body longer than said ends in EOF, not silence
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.ErrUnexpectedEOF && int64(n) == length:
		return buf[:n], nil // the whole body, then EOF
	case err == io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("body ended after %d of %d bytes", n, length)
	case err != nil:
		return nil, err
	}
	// More than Content-Length (net/http stops at it, so not over HTTP).
	rest, err := io.ReadAll(r)
	return append(buf, rest...), err
}
