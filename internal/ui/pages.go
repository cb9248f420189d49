package ui

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// runsPageLimit is how many runs /runs shows unless ?limit= says more.
const runsPageLimit = 200

// newBase fills what every page shows: who is signed in, whether actions
// are possible, the CSRF token for the forms.
func (u *UI) newBase(c echo.Context, title string) base {
	b := base{Title: title, Now: u.o.Now(), Flash: flashes[c.QueryParam("done")], Runbooks: u.o.Runbooks, CanHeal: u.o.Heal != nil}
	user, err := u.o.Identity(c.Request())
	if err != nil {
		b.NoAuth = err.Error()
	} else {
		b.User = user
	}
	b.CanAct = b.User != "" && (u.o.Actions != nil || u.o.Heal != nil)
	if b.CanAct {
		if ok, why := u.o.MayAct(b.User); !ok {
			b.CanAct, b.NoAuth = false, why
		}
	}
	if b.CanAct {
		b.CSRF = u.csrfToken(c)
	}
	return b
}

func (u *UI) overview(c echo.Context) error {
	ctx := c.Request().Context()
	p := overviewPage{}
	runs, err := u.o.Runs.List(ctx, u.o.ListLimit)
	if err != nil {
		return u.fail(c, http.StatusServiceUnavailable, "cannot read runs from Redis: "+err.Error(), "")
	}
	st, serr := u.o.Status(ctx, listed(runs))
	var esc []*NodeState
	var escErr error
	if u.o.Nodes != nil {
		esc, escErr = u.o.Nodes.Escalated(ctx)
	}
	p = buildOverview(st, runs, esc, u.o.Nodes != nil && escErr == nil)
	if serr != nil {
		p.StatusErr = serr.Error()
	}
	if escErr != nil {
		p.EscErr = escErr.Error()
	}
	p.base = u.newBase(c, "node-healer")
	p.Refresh = int(u.o.Refresh.Seconds())
	if p.Refresh < 1 {
		p.Refresh = 1
	}
	return u.render(c, http.StatusOK, "overview", p)
}

func (u *UI) runList(c echo.Context) error {
	ctx := c.Request().Context()
	runs, err := u.o.Runs.List(ctx, u.o.ListLimit)
	if err != nil {
		return u.fail(c, http.StatusServiceUnavailable, "cannot read runs from Redis: "+err.Error(), "/")
	}
	p := runsPage{base: u.newBase(c, "runs"), Node: c.QueryParam("node"), Status: c.QueryParam("status"), Total: len(runs),
		Statuses: []string{"pending", "running", "held", "deferred", "succeeded", "failed", "escalated", "cancelled"}}
	if p.Status != "" && !slices.Contains(p.Statuses, p.Status) {
		return u.fail(c, http.StatusBadRequest, "status: unknown run status "+strconv.Quote(p.Status), "/runs")
	}
	limit := runsPageLimit
	if q := c.QueryParam("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > u.o.ListLimit {
			return u.fail(c, http.StatusBadRequest, fmt.Sprintf("limit: a number from 1 to %d", u.o.ListLimit), "/runs")
		}
		limit = n
	}
	for _, r := range runs {
		if (p.Node == "" || r.Node == p.Node) && (p.Status == "" || string(r.Status) == p.Status) {
			p.Matched++
			if len(p.Runs) < limit {
				p.Runs = append(p.Runs, viewOf(r))
			}
		}
	}
	if p.Matched > len(p.Runs) {
		q := c.QueryParams()
		q.Set("limit", strconv.Itoa(u.o.ListLimit))
		p.MoreURL = "/runs?" + q.Encode()
	}
	return u.render(c, http.StatusOK, "runs", p)
}

func (u *UI) run(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	r, err := u.o.Runs.Load(ctx, id)
	if errors.Is(err, runbooks.ErrRunNotFound) && c.QueryParam("done") == "started" {
		// Just queued by the heal form: a worker stores the run when it
		// picks it up, within seconds. Say so and look again.
		p := errorPage{base: u.newBase(c, "run "+id+" queued"), Code: http.StatusAccepted, Back: "/",
			Msg: "Run " + id + " is queued; its timeline shows here once a worker picks it up (this page refreshes)."}
		p.Refresh = max(int(u.o.Refresh.Seconds()), 1)
		return u.render(c, http.StatusAccepted, "error", p)
	}
	if errors.Is(err, runbooks.ErrRunNotFound) {
		return u.fail(c, http.StatusNotFound, "no run with ID "+strconv.Quote(id)+" (finished runs are kept for redis.run_ttl)", "/")
	}
	if err != nil {
		return u.fail(c, http.StatusServiceUnavailable, "cannot read the run from Redis: "+err.Error(), "/")
	}
	p := runPage{base: u.newBase(c, "run "+r.ID), Run: viewOf(r)}
	p.Steps = stepsOf(r, p.Now)
	if !r.Status.Final() {
		p.Refresh = int(u.o.Refresh.Seconds())
	}
	if u.o.Nodes != nil {
		if p.Events, err = u.o.Nodes.Events(ctx, r.Node); err != nil {
			p.EventsErr = err.Error()
		}
		if n, err := u.o.Nodes.Node(ctx, r.Node); err == nil {
			p.Node = n
		}
	}
	return u.render(c, http.StatusOK, "run", p)
}

func (u *UI) node(c echo.Context) error {
	ctx := c.Request().Context()
	name := c.Param("name")
	p := nodePage{base: u.newBase(c, "node "+name), Name: name, Silences: u.o.Silences != nil}
	runs, err := u.o.Runs.List(ctx, u.o.ListLimit)
	if err != nil {
		return u.fail(c, http.StatusServiceUnavailable, "cannot read runs from Redis: "+err.Error(), "/")
	}
	for _, r := range runs {
		if r.Node == name {
			p.Runs = append(p.Runs, viewOf(r))
			if !r.Status.Final() && p.ActiveRunID == "" {
				p.ActiveRunID = r.ID
			}
		}
	}
	if u.o.Nodes != nil {
		p.Node, err = u.o.Nodes.Node(ctx, name)
		switch {
		case errors.Is(err, ErrNodeNotFound):
			if len(p.Runs) == 0 {
				return u.fail(c, http.StatusNotFound, "no node "+strconv.Quote(name)+" in the cluster, and no run on it", "/")
			}
			p.NodeErr = "not in the cluster (any more)"
		case err != nil:
			p.NodeErr = err.Error()
		}
		if p.Node != nil {
			if p.Events, err = u.o.Nodes.Events(ctx, name); err != nil {
				p.EventsErr = err.Error()
			}
		}
	}
	if u.o.Silences != nil {
		h, err := u.o.Silences(ctx, name)
		if err != nil {
			p.SilenceErr = err.Error()
		} else if h.Held {
			p.Silence = &h
		}
	}
	if u.o.RunCap != nil {
		if rc, err := u.o.RunCap(ctx, name); err != nil {
			p.RunCapErr = err.Error()
		} else {
			p.RunCap = &rc
		}
	}
	if p.ActiveRunID != "" {
		p.Refresh = int(u.o.Refresh.Seconds())
	}
	return u.render(c, http.StatusOK, "node", p)
}

// fail renders the error page.
func (u *UI) fail(c echo.Context, code int, msg, back string) error {
	if back == "" {
		back = "/"
	}
	return u.render(c, code, "error", errorPage{base: u.newBase(c, http.StatusText(code)), Code: code, Msg: msg, Back: back})
}
