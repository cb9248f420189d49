package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Manual runs: POST /api/v1/runs (receiver heal) asks for a runbook on a
// node by hand. The request becomes a runbooks.Request like an accepted
// alert and goes through the same queue, worker and safety gate
// (silences, pause, opt-out, breaker, caps, reboot rate, the maintenance
// windows of a route named "manual").
const (
	// ManualRoute is the Route of a manual run, and the alertname label
	// silences see (`alertname="manual"` holds every manual run).
	ManualRoute = "manual"
	// ManualDedupe: identical requests (node, runbook, params, dry run)
	// within the same period of this length name the same run, so a
	// retried POST or a double submit does not start a second run.
	ManualDedupe = time.Minute
	// maxReason bounds the reason kept in the run, the logs and Events.
	maxReason = 1024
	// manualRecent is how many of the newest runs are searched for an
	// identical unfinished manual run.
	manualRecent = 200
)

// ManualRequest is the body of POST /api/v1/runs.
type ManualRequest struct {
	Node        string            `json:"node"`
	Runbook     string            `json:"runbook"`
	Reason      string            `json:"reason"`
	Params      map[string]string `json:"params,omitempty"`
	DryRun      bool              `json:"dry_run,omitempty"`
	RequestedBy string            `json:"requested_by,omitempty"`
}

// ManualReply is the answer: 202 for a new run, 200 when an identical
// request already named a run (Duplicate).
type ManualReply struct {
	Run       string `json:"run"`
	Node      string `json:"node"`
	Runbook   string `json:"runbook"`
	DryRun    bool   `json:"dry_run"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Status    string `json:"status,omitempty"` // of the existing run, when Duplicate
	Detail    string `json:"detail,omitempty"`
}

type manualHandler struct {
	o     Options
	known []string
}

func newManualHandler(o Options) *manualHandler {
	names := []string{}
	for _, b := range runbooks.Builtin() {
		names = append(names, b.Name)
	}
	sort.Strings(names)
	return &manualHandler{o: o, known: names}
}

func (m *manualHandler) handle(c echo.Context) error {
	r := c.Request()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, m.o.MaxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", m.o.MaxBody))
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "reading body: "+err.Error())
	}
	var req ManualRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "malformed JSON: "+err.Error()+` (want {"node", "runbook", "reason", "params", "dry_run"})`)
	}
	if user, _, ok := r.BasicAuth(); ok && user != "" {
		// Admitted by the web configuration's basic_auth_users: the
		// authenticated name wins over what the client says.
		req.RequestedBy = user
	}
	rep, code, err := m.submit(r.Context(), req)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/runs/"+rep.Run)
	return c.JSON(code, rep)
}

// submit is a manual run's path after decoding, shared by the API and the
// operator page: validate, check the node, answer with an identical run
// or queue a new one. code is 202 (new run) or 200 (Duplicate); err is an
// *echo.HTTPError.
func (m *manualHandler) submit(ctx context.Context, req ManualRequest) (ManualReply, int, error) {
	if err := m.validate(&req); err != nil {
		return ManualReply{}, 0, m.refuse(req, err)
	}
	detail := ""
	if m.o.Nodes != nil {
		exists, err := m.o.Nodes.NodeExists(ctx, req.Node)
		switch {
		case err != nil:
			// As the webhook: accept; the worker checks again before acting.
			detail = "node not verified: " + err.Error()
		case !exists:
			return ManualReply{}, 0, m.refuse(req, echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf("node %q is not in the cluster", req.Node)))
		}
	}
	q := m.request(req)
	if m.o.Runs != nil {
		// An identical manual run that has not finished is the answer, even
		// from an earlier dedupe period.
		runs, err := m.o.Runs.List(ctx, manualRecent)
		if err != nil {
			return ManualReply{}, 0, m.unavailable(req, err)
		}
		for _, run := range runs {
			if run.Route == ManualRoute && !run.Status.Final() && sameManual(run, q) {
				return m.reply(req, run.ID, string(run.Status), detail)
			}
		}
	}
	added, err := m.o.Intake.Enqueue(ctx, []runbooks.Request{q})
	if err != nil {
		return ManualReply{}, 0, m.unavailable(req, err)
	}
	if len(added) != 1 || !added[0] {
		status := ""
		if m.o.Runs != nil {
			if run, err := m.o.Runs.Load(ctx, q.RunID); err == nil {
				status = string(run.Status)
			}
		}
		if status == "" {
			status = string(runbooks.StatusPending)
		}
		return m.reply(req, q.RunID, status, detail)
	}
	m.o.Log.Info("manual run accepted", "run", q.RunID, "node", q.Node, "runbook", q.Runbook, "dry_run", q.DryRun,
		"requested_by", q.RequestedBy, "reason", q.Reason, "params", q.Params, "detail", detail)
	return ManualReply{Run: q.RunID, Node: q.Node, Runbook: q.Runbook, DryRun: q.DryRun, Detail: detail}, http.StatusAccepted, nil
}

// reply answers a request an existing run already stands for.
func (m *manualHandler) reply(req ManualRequest, id, status, detail string) (ManualReply, int, error) {
	m.o.Log.Info("manual run requested again: answered with the identical run", "run", id, "node", req.Node, "runbook", req.Runbook,
		"status", status, "requested_by", req.RequestedBy, "reason", req.Reason)
	return ManualReply{Run: id, Node: req.Node, Runbook: req.Runbook, DryRun: req.DryRun || m.o.DryRun,
		Duplicate: true, Status: status, Detail: detail}, http.StatusOK, nil
}

func (m *manualHandler) validate(req *ManualRequest) error {
	unprocessable := func(format string, a ...any) error {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf(format, a...))
	}
	req.Node, req.Runbook = strings.TrimSpace(req.Node), strings.TrimSpace(req.Runbook)
	req.Reason, req.RequestedBy = strings.TrimSpace(req.Reason), strings.TrimSpace(req.RequestedBy)
	switch {
	case req.Node == "":
		return unprocessable("node: required")
	case req.Runbook == "":
		return unprocessable("runbook: required (known: %s)", strings.Join(m.known, ", "))
	case !slices.Contains(m.known, req.Runbook):
		return unprocessable("runbook: unknown runbook %q (known: %s)", req.Runbook, strings.Join(m.known, ", "))
	case req.Reason == "":
		return unprocessable("reason: required (it is kept in the run and logged)")
	case len(req.Reason) > maxReason:
		return unprocessable("reason: longer than %d bytes", maxReason)
	case len(req.RequestedBy) > 256:
		return unprocessable("requested_by: longer than 256 bytes")
	}
	if err := runbooks.ValidateParams(req.Params); err != nil {
		return unprocessable("params: %v", err)
	}
	return nil
}

// request is the queued request of a manual run. Its ID hashes what the
// run does (node, runbook, params, dry run) and the dedupe period: who
// asks and why do not make a different run.
func (m *manualHandler) request(req ManualRequest) runbooks.Request {
	now := m.o.Now()
	dry := req.DryRun || m.o.DryRun
	keys := make([]string, 0, len(req.Params))
	for k := range req.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var id strings.Builder
	fmt.Fprintf(&id, "%s|%s|%s|%t", ManualRoute, req.Node, req.Runbook, dry)
	for _, k := range keys {
		fmt.Fprintf(&id, "|%s=%s", k, strconv.Quote(req.Params[k]))
	}
	var params map[string]string
	if len(req.Params) > 0 {
		params = req.Params
	}
	// The reason label is what the reset steps write on the node (the
	// last-remediation annotation, the NodeHealerRebooting Event).
	why := req.Reason
	if req.RequestedBy != "" {
		why += " (requested by " + req.RequestedBy + ")"
	}
	return runbooks.Request{
		RunID: runbooks.RunID(id.String(), now.Truncate(ManualDedupe)), Node: req.Node,
		Route: ManualRoute, Runbook: req.Runbook, DryRun: dry, Params: params, Enqueued: now,
		Labels:      map[string]string{"alertname": ManualRoute, "node": req.Node, "reason": why},
		RequestedBy: req.RequestedBy, Reason: req.Reason,
	}
}

// sameManual: the stored run does what the request asks for.
func sameManual(run *runbooks.Run, q runbooks.Request) bool {
	if run.Node != q.Node || run.Runbook != q.Runbook || run.DryRun != q.DryRun || len(run.Params) != len(q.Params) {
		return false
	}
	for k, v := range q.Params {
		if w, ok := run.Params[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// refuse logs a refused request (at info: a person is waiting for the
// answer) and returns the error to send.
func (m *manualHandler) refuse(req ManualRequest, err error) error {
	msg := err.Error()
	if he, ok := err.(*echo.HTTPError); ok {
		msg = fmt.Sprint(he.Message)
	}
	m.o.Log.Info("manual run refused", "node", req.Node, "runbook", req.Runbook, "requested_by", req.RequestedBy, "reason", req.Reason, "err", msg)
	return err
}

// unavailable answers 503 when the request cannot be read against or
// written to Redis; nothing was queued.
func (m *manualHandler) unavailable(req ManualRequest, err error) error {
	if m.o.Metrics != nil {
		m.o.Metrics.RedisErrors.WithLabelValues("enqueue").Inc()
	}
	m.o.Log.Error("cannot queue a manual run; answering 503", "node", req.Node, "runbook", req.Runbook, "requested_by", req.RequestedBy, "err", err)
	return echo.NewHTTPError(http.StatusServiceUnavailable, "could not queue the run (Redis unavailable); nothing was started, try again")
}
