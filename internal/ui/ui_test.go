package ui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

type env struct {
	t       *testing.T
	srv     *httptest.Server
	actions *fakeActions
	heals   []HealRequest
	log     *bytes.Buffer
}

func newEnv(t *testing.T, runs []*runbooks.Run, adjust func(*Options)) *env {
	t.Helper()
	en := &env{t: t, actions: &fakeActions{}, log: &bytes.Buffer{}}
	o := Options{
		Status: statusOf(nil), Runs: &fakeRuns{runs: runs}, Actions: en.actions, Identity: basicIdentity,
		Runbooks: []string{"cordon", "reboot"}, AlertmanagerURL: "http://am.example:9093/",
		Heal: func(_ context.Context, r HealRequest) (HealReply, error) {
			if r.Runbook == "nope" {
				return HealReply{}, &Error{Code: http.StatusUnprocessableEntity, Msg: `runbook: unknown runbook "nope"`}
			}
			en.heals = append(en.heals, r)
			return HealReply{Run: "manual-1"}, nil
		},
		Log: slog.New(slog.NewTextHandler(en.log, nil)), Now: func() time.Time { return t0.Add(10 * time.Minute) },
	}
	if adjust != nil {
		adjust(&o)
	}
	u, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	u.Mount(e)
	en.srv = httptest.NewServer(e)
	t.Cleanup(en.srv.Close)
	return en
}

type resp struct {
	code int
	body string
	h    http.Header
}

// do sends a request as user alice (basic auth) unless anonymous.
func (en *env) do(method, path string, form url.Values, hdr map[string]string) resp {
	en.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, en.srv.URL+path, body)
	if err != nil {
		en.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if _, ok := hdr["anonymous"]; !ok {
		req.SetBasicAuth("alice", "pw")
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		en.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header}
}

func (en *env) get(path string) resp {
	en.t.Helper()
	r := en.do(http.MethodGet, path, nil, nil)
	if r.code != http.StatusOK {
		en.t.Fatalf("GET %s: %d\n%s", path, r.code, r.body)
	}
	if ct := r.h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		en.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	return r
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// session is a token and its cookie, as a browser gets them from a page.
func (en *env) session() (token, cookie string) {
	en.t.Helper()
	r := en.get("/")
	m := csrfRe.FindStringSubmatch(r.body)
	if m == nil {
		en.t.Fatalf("no CSRF field on the overview:\n%s", r.body)
	}
	for _, c := range (&http.Response{Header: r.h}).Cookies() {
		if c.Name == "node-healer-csrf" {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				en.t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/", c)
			}
			return m[1], c.Name + "=" + c.Value
		}
	}
	en.t.Fatalf("no CSRF cookie set: %v", r.h)
	return "", ""
}

func mustContain(t *testing.T, page, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: missing %q", page, w)
		}
	}
}

func mustNotContain(t *testing.T, page, body string, bad ...string) {
	t.Helper()
	for _, w := range bad {
		if strings.Contains(body, w) {
			t.Errorf("%s: contains %q", page, w)
		}
	}
}

func TestPagesEmpty(t *testing.T) {
	en := newEnv(t, nil, nil)
	r := en.get("/")
	mustContain(t, "overview", r.body, `id="not-paused"`, "Nothing running.", "No node is waiting for a human.", "No finished run stored.",
		`id="pause-button"`, "signed in as <b id=\"user\">alice</b>", "1 of 5 nodes", "<b>0</b> left", "2026-12-06 03:07:00 UTC",
		`data-refresh="10"`, `<meta http-equiv="refresh" content="10">`)
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if r.h.Get(h) == "" {
			t.Errorf("overview: no %s header", h)
		}
	}
	mustContain(t, "runs", en.get("/runs").body, "0 of 0 matching, 0 stored runs", "No run matches.")
	if r := en.do(http.MethodGet, "/runs/nope", nil, nil); r.code != 404 || !strings.Contains(r.body, `no run with ID &#34;nope&#34;`) {
		t.Errorf("unknown run: %d %s", r.code, r.body)
	}
	// Right after the heal form, the run is queued but not stored yet: the
	// page says so and refreshes instead of answering 404.
	if r := en.do(http.MethodGet, "/runs/nope?done=started", nil, nil); r.code != http.StatusAccepted ||
		!strings.Contains(r.body, "Run nope is queued") || strings.Contains(r.body, `data-refresh="0"`) {
		t.Errorf("just-queued run: %d\n%s", r.code, r.body)
	}
	if r := en.do(http.MethodGet, "/nodes/n1", nil, nil); r.code != 200 || !strings.Contains(r.body, "No stored run on this node.") {
		t.Errorf("node page without a cluster: %d %s", r.code, r.body)
	}
	if r := en.do(http.MethodGet, "/static/", nil, nil); r.code != 404 {
		t.Errorf("/static/ lists the assets: %d", r.code)
	}
	// Assets are embedded and served.
	for _, a := range []string{"/static/style.css", "/static/refresh.js"} {
		if r := en.do(http.MethodGet, a, nil, nil); r.code != 200 || len(r.body) < 100 {
			t.Errorf("%s: %d, %d bytes", a, r.code, len(r.body))
		}
	}
}

func TestPagesOneRunOfEachStatus(t *testing.T) {
	runs := oneOfEach()
	nodes := &fakeNodes{nodes: map[string]*NodeState{
		"node-escalated": {Name: "node-escalated", Unschedulable: true, CordonedByRun: "run-escalated", NeedsAttention: true,
			Attention: "drain did not finish within 10m", EscalatedByRun: "run-escalated", Ready: "True"},
		"node-running": {Name: "node-running", Unschedulable: true, CordonedByRun: "run-running", Ready: "True"},
		"node-idle":    {Name: "node-idle", Ready: "True"},
	}, events: map[string][]Event{"node-running": {{Time: t0, Type: "Normal", Reason: "NodeHealerCordon", Note: "cordoned by run run-running", Reporter: "replica-a", Count: 2}}}}
	en := newEnv(t, runs, func(o *Options) {
		o.Nodes = nodes
		o.RunCap = func(_ context.Context, node string) (RunCap, error) {
			switch node {
			case "node-escalated":
				return RunCap{Runs: 3, Max: 3, Window: "1d"}, nil
			case "node-running":
				return RunCap{Runs: 1, Max: 3, Window: "1d"}, nil
			}
			return RunCap{}, errors.New("redis: connection refused")
		}
		paused := statusOf(&safety.PauseInfo{By: "bob", Reason: "change freeze", Since: t0})
		o.Status = func(ctx context.Context, rl safety.RunLister) (*safety.Status, error) {
			st, err := paused(ctx, rl)
			if err == nil {
				st.Breaker.Open, st.Breaker.GroupBy = true, "topology.kubernetes.io/zone"
				st.Breaker.Groups = []safety.GroupState{{Value: "zone-a", Open: true, Unhealthy: 3, Total: 4}, {Value: "zone-b", Unhealthy: 0, Total: 4}, {Value: "", Total: 1}}
			}
			return st, err
		}
		o.Silences = func(_ context.Context, node string) (safety.Hold, error) {
			if node == "node-escalated" {
				return safety.Hold{Held: true, Reason: `silence 5b1f by carol: DIMM swap (matchers node="node-escalated") until 05:00 UTC`}, nil
			}
			return safety.Hold{}, nil
		}
	})
	ov := en.get("/").body
	mustContain(t, "overview", ov, `id="paused"`, "by <b>bob</b>", "change freeze", `id="resume-button"`,
		// active: the running and the pending run, with the current step
		`data-run="run-running" data-step="drain"`, `data-run="run-pending" data-step=""`,
		// held, with the step it waits before and why
		`data-run="run-held" data-hold="paused"`, "<td>soft-reboot</td>", "paused by alice: change freeze",
		`data-run="run-deferred" data-hold="breaker"`, "4 of 10 nodes unhealthy", "(next try 03:04:00)",
		// escalated node from the node's mark
		`data-node="node-escalated"`, "drain did not finish within 10m",
		// finished
		`data-run="run-succeeded" data-status="succeeded"`, `data-run="run-failed" data-status="failed"`,
		`data-run="run-escalated" data-status="escalated"`, `data-run="run-cancelled" data-status="cancelled"`)
	mustNotContain(t, "overview", ov, `id="pause-button"`, `data-run="run-held" data-status`)
	// The breaker, per group.
	mustContain(t, "overview", ov, `<span class="badge bad">OPEN</span> no new runs start`, "<th>topology.kubernetes.io/zone</th>",
		"<tr><td>zone-a</td><td><span class=\"badge bad\">OPEN</span></td><td>3 / 4</td></tr>",
		"<tr><td>zone-b</td><td><span class=\"badge ok\">closed</span></td><td>0 / 4</td></tr>", "<i>(none)</i>")
	for _, st := range allStatuses {
		p := en.get("/runs/run-" + string(st)).body
		mustContain(t, "run "+string(st), p, `<code id="run-id">run-`+string(st)+`</code>`, `<span class="badge `+statusClass(st)+`">`+string(st)+`</span>`)
		mustContain(t, "runs?status="+string(st), en.get("/runs?status="+string(st)).body, `data-run="run-`+string(st)+`"`, "1 of 1 matching, 8 stored runs")
	}
	ok := en.get("/runs/run-succeeded").body
	mustContain(t, "succeeded run", ok, `data-step="cordon" data-outcome="done"`, `data-step="power-cycle" data-outcome="skipped"`,
		`data-step="uncordon" data-outcome="done"`, "+1m30s", "worker replica-a", "fence 7", "did soft-reboot", "took 10s",
		// the alert, linked into Alertmanager
		`<code>node="node-succeeded"</code>`, `href="http://am.example:9093/#/alerts?silenced=true&amp;inhibited=true&amp;filter=%7Balertname%3D%22NodeKernelDeadlock%22%2Cnode%3D%22node-succeeded%22%2Cseverity%3D%22critical%22%7D"`)
	mustContain(t, "running run", en.get("/runs/run-running").body, `data-step="drain" data-outcome="started"`, "for 8m", `Cordon`, "cordoned by run run-running", "×2", `data-refresh="10"`)
	mustContain(t, "held run", en.get("/runs/run-held").body, `id="run-hold"`, "before soft-reboot")
	mustContain(t, "escalated run", en.get("/runs/run-escalated").body, `id="run-error"`, `data-outcome="escalated"`)
	mustContain(t, "deferred run", en.get("/runs/run-deferred").body, "No step has run yet.")

	n := en.get("/nodes/node-escalated").body
	mustContain(t, "escalated node", n, `<span class="badge bad">yes</span> drain did not finish within 10m`,
		`by node-healer run <a href="/runs/run-escalated">`, `id="clear-button"`, `data-run="run-escalated"`,
		`href="http://am.example:9093/#/silences/new?filter=%7Bnode%3D%22node-escalated%22%7D"`, `id="heal-button"`)
	mustContain(t, "escalated node", n, `<dd id="run-cap">3 of 3 runs within 1d — <b>reached</b>: the next alert escalates to a human</dd>`)
	mustContain(t, "escalated node", n, `id="silence">silence 5b1f by carol: DIMM swap (matchers node=&#34;node-escalated&#34;) until 05:00 UTC`)
	rn := en.get("/nodes/node-running").body
	mustNotContain(t, "running node", rn, `id="clear-button"`)
	mustContain(t, "running node", rn, `id="no-silence"`, "cordoned</b> by node-healer run", "NodeHealerCordon", `<dd id="run-cap">1 of 3 runs within 1d</dd>`)
	if r := en.do(http.MethodGet, "/nodes/ghost", nil, nil); r.code != 404 {
		t.Errorf("unknown node with no run: %d", r.code)
	}
	// The run count unreadable: the page still renders and says why.
	mustContain(t, "node with Redis down", en.get("/nodes/node-idle").body, `<dd id="run-cap" class="warn">cannot read the run count: redis: connection refused</dd>`)
	// A node gone from the cluster still shows its runs.
	mustContain(t, "node gone", en.get("/nodes/node-failed").body, "not in the cluster (any more)", `data-run="run-failed"`)
	if r := en.do(http.MethodGet, "/runs?status=bogus", nil, nil); r.code != 400 {
		t.Errorf("bad status filter: %d", r.code)
	}
}

func TestPages500Runs(t *testing.T) {
	runs := many(500)
	en := newEnv(t, runs, nil)
	ov := en.get("/").body
	if got := strings.Count(ov, `data-status="`); got != recentFinished {
		t.Errorf("overview lists %d finished runs, want the %d newest", got, recentFinished)
	}
	mustContain(t, "overview", ov, `data-run="run-0499"`, "all 500 stored runs")
	mustNotContain(t, "overview", ov, `data-run="run-0479"`)
	first := en.get("/runs").body
	if got := strings.Count(first, `data-status="`); got != runsPageLimit {
		t.Errorf("/runs lists %d runs, want the first %d", got, runsPageLimit)
	}
	mustContain(t, "runs", first, "200 of 500 matching, 500 stored runs", `<a href="/runs?limit=1000" id="more">show all</a>`)
	all := en.get("/runs?limit=1000").body
	if got := strings.Count(all, `data-status="`); got != 500 {
		t.Errorf("/runs?limit=1000 lists %d runs, want 500", got)
	}
	mustContain(t, "runs", all, "500 of 500 matching, 500 stored runs")
	mustNotContain(t, "runs", all, `id="more"`)
	if r := en.do(http.MethodGet, "/runs?limit=0", nil, nil); r.code != 400 || !strings.Contains(r.body, "limit: a number from 1 to 1000") {
		t.Errorf("bad limit: %d", r.code)
	}
	node := en.get("/nodes/node-3").body
	if got := strings.Count(node, `data-status="`); got != 50 {
		t.Errorf("node page lists %d runs, want 50", got)
	}
	if got := strings.Count(en.get("/runs?node=node-3&status=failed").body, `data-status="failed"`); got != 7 {
		t.Errorf("filter node and status: %d runs, want 7", got)
	}
}

// TestEscaping: what alerts, runs and nodes carry is data, never markup.
func TestEscaping(t *testing.T) {
	r := fixtureRun("run-x", "node-x", runbooks.StatusHeld, t0)
	r.Labels["summary"] = evil
	r.Labels[`we"ird`] = `a"b`
	r.Timeline[0].Detail = evil
	r.Hold.Reason = evil
	r.Evidence = []runbooks.Evidence{{Command: "dmesg " + evil, Output: "</pre>" + evil, At: t0}}
	r.RequestedBy, r.Reason = evil, evil
	nodes := &fakeNodes{nodes: map[string]*NodeState{"node-x": {Name: "node-x", NeedsAttention: true, Attention: evil, EscalatedByRun: "run-x"}},
		events: map[string][]Event{"node-x": {{Time: t0, Type: "Warning", Reason: evil, Note: evil}}}}
	en := newEnv(t, []*runbooks.Run{r}, func(o *Options) {
		o.Nodes = nodes
		o.Status = statusOf(&safety.PauseInfo{By: evil, Reason: evil, Since: t0})
		o.Silences = func(context.Context, string) (safety.Hold, error) { return safety.Hold{Held: true, Reason: evil}, nil }
	})
	for _, p := range []string{"/", "/runs", "/runs/run-x", "/nodes/node-x", "/?done=" + url.QueryEscape(evil)} {
		body := en.get(p).body
		mustNotContain(t, p, body, "<script>alert", "</pre><script>")
		if p != "/runs" { // the list shows none of these fields
			mustContain(t, p, body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;")
		}
	}
	// A hostile value in a link's filter stays inside the query string.
	body := en.get("/runs/run-x").body
	mustContain(t, "alert link", body, "%3Cscript%3E", "we%22ird%3D%22a%5C%22b%22")
	// Runs and nodes named with markup are escaped in links too.
	if r := en.do(http.MethodGet, "/nodes/"+url.PathEscape(evil), nil, nil); r.code != 404 || strings.Contains(r.body, "<script>alert") {
		t.Errorf("node named with markup: %d %s", r.code, r.body)
	}
}

func TestActionsNeedCSRF(t *testing.T) {
	en := newEnv(t, oneOfEach(), func(o *Options) { o.Nodes = &fakeNodes{nodes: map[string]*NodeState{}} })
	token, cookie := en.session()
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	refused := []struct {
		name string
		path string
		form url.Values
		hdr  map[string]string
	}{
		{"no token, no cookie", "/actions/pause", form("reason", "x"), nil},
		{"cookie, no token", "/actions/pause", form("reason", "x"), map[string]string{"Cookie": cookie}},
		{"token, no cookie", "/actions/pause", form("reason", "x", "csrf", token), nil},
		{"wrong token", "/actions/resume", form("csrf", strings.Repeat("A", 43)), map[string]string{"Cookie": cookie}},
		{"token of another cookie", "/actions/pause", form("reason", "x", "csrf", token), map[string]string{"Cookie": "node-healer-csrf=" + strings.Repeat("B", 43)}},
		{"cross-site, valid token", "/actions/pause", form("reason", "x", "csrf", token), map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "cross-site"}},
		{"other origin, valid token", "/actions/resume", form("csrf", token), map[string]string{"Cookie": cookie, "Origin": "http://evil.example"}},
		{"no user, valid token", "/actions/pause", form("reason", "x", "csrf", token), map[string]string{"Cookie": cookie, "anonymous": ""}},
		{"heal, no token", "/actions/heal", form("node", "n1", "runbook", "reboot", "reason", "x"), map[string]string{"Cookie": cookie}},
		{"clear, no token", "/actions/clear-escalation", form("node", "n1", "reason", "x"), map[string]string{"Cookie": cookie}},
	}
	for _, c := range refused {
		r := en.do(http.MethodPost, c.path, c.form, c.hdr)
		if r.code != http.StatusForbidden || !strings.Contains(r.body, "refused") {
			t.Errorf("%s: %d, want 403\n%s", c.name, r.code, r.body)
		}
	}
	if got := en.actions.calls(); len(got) != 0 || len(en.heals) != 0 {
		t.Fatalf("refused requests acted: %v %v", got, en.heals)
	}
	if strings.Contains(en.log.String(), "audit=true") {
		t.Fatalf("refused requests audited as done:\n%s", en.log)
	}
	// With the token: done, audited, redirected with what happened.
	ok := map[string]string{"Cookie": cookie, "Sec-Fetch-Site": "same-origin", "Origin": en.srv.URL}
	r := en.do(http.MethodPost, "/actions/pause", form("reason", " change freeze ", "csrf", token), ok)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/?done=paused" {
		t.Fatalf("pause: %d %v\n%s", r.code, r.h, r.body)
	}
	// The page says what happened, in its own words only.
	mustContain(t, "after pausing", en.get("/?done=paused").body, `id="flash">Paused: no run starts`)
	mustNotContain(t, "a crafted link", en.get("/?done=Your+cluster+was+deleted").body, "Your cluster", `id="flash"`)
	r = en.do(http.MethodPost, "/actions/resume", form("csrf", token), ok)
	if r.code != http.StatusSeeOther {
		t.Fatalf("resume: %d", r.code)
	}
	r = en.do(http.MethodPost, "/actions/clear-escalation", form("node", "n1", "reason", "replaced the DIMM", "csrf", token), ok)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/nodes/n1?done=cleared" {
		t.Fatalf("clear: %d %v", r.code, r.h)
	}
	r = en.do(http.MethodPost, "/actions/heal", form("node", "n1", "runbook", "reboot", "reason", "kernel hang", "dry_run", "1", "csrf", token), ok)
	if r.code != http.StatusSeeOther || r.h.Get("Location") != "/runs/manual-1?done=started" {
		t.Fatalf("heal: %d %v", r.code, r.h)
	}
	want := []string{"pause alice: change freeze", "resume alice", "clear n1 alice: replaced the DIMM"}
	if got := en.actions.calls(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("actions %q, want %q", got, want)
	}
	if len(en.heals) != 1 || en.heals[0] != (HealRequest{Node: "n1", Runbook: "reboot", Reason: "kernel hang", By: "alice", DryRun: true}) {
		t.Errorf("heals %+v", en.heals)
	}
	for _, a := range []string{"action=pause by=alice source=ui reason=\"change freeze\"", "action=resume by=alice", "action=clear-escalation by=alice source=ui node=n1",
		"action=heal by=alice source=ui node=n1 runbook=reboot run=manual-1 dry_run=true"} {
		if !strings.Contains(en.log.String(), "msg=audit audit=true "+a) {
			t.Errorf("no audit line %q in\n%s", a, en.log)
		}
	}
}

func TestActionsBadInput(t *testing.T) {
	en := newEnv(t, nil, nil)
	token, cookie := en.session()
	hdr := map[string]string{"Cookie": cookie}
	cases := []struct {
		path string
		form url.Values
		code int
		msg  string
	}{
		{"/actions/pause", url.Values{"csrf": {token}}, 422, "reason: required"},
		{"/actions/pause", url.Values{"csrf": {token}, "reason": {"   "}}, 422, "reason: required"},
		{"/actions/pause", url.Values{"csrf": {token}, "reason": {strings.Repeat("x", 1025)}}, 422, "longer than 1024 bytes"},
		{"/actions/clear-escalation", url.Values{"csrf": {token}, "reason": {"x"}}, 422, "node: required"},
		{"/actions/clear-escalation", url.Values{"csrf": {token}, "reason": {"x"}, "node": {"ghost"}}, 404, "no node ghost"},
		{"/actions/heal", url.Values{"csrf": {token}, "reason": {"x"}, "node": {"n1"}, "runbook": {"nope"}}, 422, "unknown runbook"},
		{"/actions/pause", url.Values{"csrf": {token}, "reason": {strings.Repeat("x", 20000)}}, 400, "cannot read the form"},
	}
	for _, c := range cases {
		r := en.do(http.MethodPost, c.path, c.form, hdr)
		if r.code != c.code || !strings.Contains(r.body, c.msg) {
			t.Errorf("%s %v: %d, want %d with %q\n%s", c.path, c.form.Get("node"), r.code, c.code, c.msg, r.body)
		}
	}
	if got := en.actions.calls(); len(got) != 0 {
		t.Fatalf("bad input acted: %v", got)
	}
	// A failing backend is a 503 that says so.
	en.actions.err = errors.New("redis: connection refused")
	r := en.do(http.MethodPost, "/actions/resume", url.Values{"csrf": {token}}, hdr)
	if r.code != 503 || !strings.Contains(r.body, "resume failed (Redis): redis: connection refused") {
		t.Errorf("resume with redis down: %d %s", r.code, r.body)
	}
}

// TestReadOnlyUser: a signed-in user MayAct refuses (not in ui.operators)
// sees the pages without forms and why, and every action is refused with
// 403, logged, and changes nothing, even with a valid CSRF token.
func TestReadOnlyUser(t *testing.T) {
	var operator atomic.Bool // read by the server's goroutines
	operator.Store(true)
	en := newEnv(t, oneOfEach(), func(o *Options) {
		o.MayAct = func(user string) (bool, string) {
			if operator.Load() {
				return true, ""
			}
			return false, user + " is not in ui.operators (read-only)"
		}
	})
	token, cookie := en.session() // taken while alice may still act
	operator.Store(false)
	for _, p := range []string{"/", "/nodes/n1"} {
		r := en.get(p)
		mustContain(t, p, r.body, `signed in as <b id="user">alice</b> (read-only)`, "actions off: alice is not in ui.operators (read-only)")
		mustNotContain(t, p, r.body, "<form method=\"post\"", `name="csrf"`)
	}
	hdr := map[string]string{"Cookie": cookie}
	for _, c := range []struct {
		path string
		form url.Values
	}{
		{"/actions/pause", url.Values{"csrf": {token}, "reason": {"x"}}},
		{"/actions/resume", url.Values{"csrf": {token}}},
		{"/actions/clear-escalation", url.Values{"csrf": {token}, "reason": {"x"}, "node": {"n1"}}},
		{"/actions/heal", url.Values{"csrf": {token}, "reason": {"x"}, "node": {"n1"}, "runbook": {"cordon"}}},
	} {
		r := en.do(http.MethodPost, c.path, c.form, hdr)
		if r.code != http.StatusForbidden || !strings.Contains(r.body, "refused: alice is not in ui.operators (read-only)") {
			t.Errorf("%s by a read-only user: %d %s", c.path, r.code, r.body)
		}
	}
	if got := en.actions.calls(); len(got) != 0 || len(en.heals) != 0 {
		t.Fatalf("a read-only user acted: %v %v", got, en.heals)
	}
	if !strings.Contains(en.log.String(), `msg="ui action refused" path=/actions/pause user=alice code=403`) {
		t.Errorf("no log line for the refusal:\n%s", en.log)
	}
	// An operator again: the same token works.
	operator.Store(true)
	if r := en.do(http.MethodPost, "/actions/pause", url.Values{"csrf": {token}, "reason": {"x"}}, hdr); r.code != http.StatusSeeOther {
		t.Errorf("pause by an operator: %d %s", r.code, r.body)
	}
}

// TestReadOnlyWithoutIdentity: with no authentication configured, the
// pages are readable and have no forms; actions are refused.
func TestReadOnlyWithoutIdentity(t *testing.T) {
	en := newEnv(t, oneOfEach(), func(o *Options) { o.Identity = nil })
	r := en.get("/")
	mustContain(t, "overview", r.body, "read-only", "actions off: no authentication configured")
	mustNotContain(t, "overview", r.body, "<form method=\"post\"", `name="csrf"`)
	if c := r.h.Get("Set-Cookie"); c != "" {
		t.Errorf("a read-only page set a cookie: %s", c)
	}
}

func TestStoreDown(t *testing.T) {
	en := newEnv(t, nil, func(o *Options) { o.Runs = &fakeRuns{err: errors.New("dial tcp: connection refused")} })
	for _, p := range []string{"/", "/runs", "/runs/x", "/nodes/n1"} {
		r := en.do(http.MethodGet, p, nil, nil)
		if r.code != 503 || !strings.Contains(r.body, "connection refused") {
			t.Errorf("%s with Redis down: %d %s", p, r.code, r.body)
		}
	}
	en = newEnv(t, oneOfEach(), func(o *Options) {
		o.Status = func(context.Context, safety.RunLister) (*safety.Status, error) {
			return nil, errors.New("breaker state: timeout")
		}
		o.Nodes = &fakeNodes{err: errors.New("forbidden")}
	})
	mustContain(t, "overview", en.get("/").body, `id="status-error"`, "breaker state: timeout", "Cannot list escalated nodes: forbidden", `data-run="run-running"`)
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{850 * time.Millisecond: "850ms", 42 * time.Second: "42s", 185 * time.Second: "3m05s",
		2*time.Hour + 10*time.Minute: "2h10m", 76 * time.Hour: "3d4h", -5 * time.Second: "-5s"} {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestManualRunPage: a run asked for by hand says who and why, and links
// to no alert.
func TestManualRunPage(t *testing.T) {
	r := fixtureRun("run-m", "node-m", runbooks.StatusSucceeded, t0)
	r.Route, r.AlertStart, r.RequestedBy, r.Reason = "manual", time.Time{}, "alice", "ECC errors"
	r.Labels = map[string]string{"alertname": "manual", "node": "node-m", "reason": "ECC errors (requested by alice)"}
	p := newEnv(t, []*runbooks.Run{r}, nil).get("/runs/run-m").body
	mustContain(t, "manual run", p, "<h2>Manual run</h2>", "Asked for by hand by <b>alice</b>: ECC errors", "— (manual run)", "(manual run: since it was created)", "+0s")
	mustNotContain(t, "manual run", p, `id="alert-link"`)
}
