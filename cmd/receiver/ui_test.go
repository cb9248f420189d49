package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/testenv"
)

// startUIReceiver runs serve behind a web configuration with one basic
// auth user (plain HTTP) on its own Redis: the operator page's setup.
func startUIReceiver(t *testing.T, extra, routes, replica string, adjust func(*serveOptions)) *receiver {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, webConfig, fmt.Sprintf("basic_auth_users:\n  %s: %s\n", webUser, webPasswordHash))
	r := testenv.NewRedis(t)
	rec, _ := startReceiverSetup(t, fmt.Sprintf("redis: {url: %q}", r.URL(0)), extra, routes, replica, receiverSetup{
		Options: func(o *serveOptions) {
			o.WebConfigFile = webConfig
			if adjust != nil {
				adjust(o)
			}
		},
		Request: func(r *http.Request) { r.SetBasicAuth(webUser, webPassword) },
	})
	rec.Redis = r
	return rec
}

// browser is a person's HTTP client on the operator page: basic auth,
// cookies kept, redirects not followed (the tests look at them).
type browser struct {
	t          *testing.T
	base       string
	user, pass string
	c          *http.Client
}

func newBrowser(t *testing.T, base, user, pass string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, user: user, pass: pass, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.user != "" {
		req.SetBasicAuth(b.user, b.pass)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

func (b *browser) page(path string) string {
	b.t.Helper()
	code, body, _ := b.do(http.MethodGet, path, nil)
	if code != http.StatusOK {
		b.t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return body
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token is the CSRF token of the forms on a page.
func (b *browser) token(path string) string {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(b.page(path))
	if m == nil {
		b.t.Fatalf("no form with a CSRF token on %s", path)
	}
	return m[1]
}

// run reads a run from the API, nil when there is none.
func (b *browser) run(id string) *runbooks.Run {
	b.t.Helper()
	code, body, _ := b.do(http.MethodGet, "/api/v1/runs/"+id, nil)
	if code != http.StatusOK {
		return nil
	}
	run := &runbooks.Run{}
	if err := json.Unmarshal([]byte(body), run); err != nil {
		b.t.Fatal(err)
	}
	return run
}

func (b *browser) waitRun(id string, timeout time.Duration) *runbooks.Run {
	b.t.Helper()
	var run *runbooks.Run
	waitFor(b.t, "run "+id+" to finish", timeout, func() bool {
		run = b.run(id)
		return run != nil && run.Status.Final()
	})
	return run
}

func pausedNow(t *testing.T, rec *receiver) *safety.PauseInfo {
	t.Helper()
	rdb := rec.Redis.Client(0)
	defer rdb.Close()
	p, err := safety.Paused(context.Background(), rdb, "node-healer")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUIAuthCSRFAndActions: behind basic auth, every page answers 401
// without credentials; an action without the page's CSRF token is
// refused (403) and changes nothing; with it, pause, resume, a manual
// heal and clearing an escalation act on the real Redis and cluster, and
// are audited.
func TestUIAuthCSRFAndActions(t *testing.T) {
	rec := startUIReceiver(t, "", defaultRoutes, "ui", nil)
	createNodes(t, "ui-n1", "ui-esc")
	ctx := context.Background()

	anon := newBrowser(t, rec.URL, "", "")
	for _, p := range []string{"/", "/runs", "/runs/x", "/nodes/ui-n1", "/static/style.css"} {
		if code, _, h := anon.do(http.MethodGet, p, nil); code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s without credentials: %d %v, want 401 with a challenge", p, code, h)
		}
	}
	if code, _, _ := newBrowser(t, rec.URL, webUser, "wrong").do(http.MethodGet, "/", nil); code != http.StatusUnauthorized {
		t.Errorf("GET / with a wrong password: %d", code)
	}
	if code, _, _ := anon.do(http.MethodPost, "/actions/pause", url.Values{"reason": {"x"}}); code != http.StatusUnauthorized {
		t.Errorf("POST /actions/pause without credentials: %d", code)
	}

	b := newBrowser(t, rec.URL, webUser, webPassword)
	if !strings.Contains(b.page("/"), `signed in as <b id="user">`+webUser+`</b>`) {
		t.Error("overview does not say who is signed in")
	}
	// No token (a forged form from elsewhere): refused, nothing paused.
	other := newBrowser(t, rec.URL, webUser, webPassword) // has no cookie either
	for _, f := range []url.Values{{"reason": {"forged"}}, {"reason": {"forged"}, "csrf": {strings.Repeat("A", 43)}}} {
		if code, body, _ := other.do(http.MethodPost, "/actions/pause", f); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
			t.Errorf("pause without a valid CSRF token: %d %s", code, body)
		}
	}
	if code, _, _ := b.do(http.MethodPost, "/actions/pause", url.Values{"reason": {"forged"}, "csrf": {"nope"}}); code != http.StatusForbidden {
		t.Errorf("pause with a wrong token and the cookie: %d", code)
	}
	if p := pausedNow(t, rec); p != nil {
		t.Fatalf("paused by a refused request: %+v", p)
	}
	if code, _, _ := other.do(http.MethodPost, "/actions/heal", url.Values{"node": {"ui-n1"}, "runbook": {"cordon"}, "reason": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("heal without a token: %d", code)
	}
	if _, body, _ := b.do(http.MethodGet, "/api/v1/runs", nil); body != `{"runs":[]}`+"\n" {
		t.Fatalf("a refused heal queued a run: %s", body)
	}

	// Pause and resume with the page's token.
	tok := b.token("/")
	code, _, h := b.do(http.MethodPost, "/actions/pause", url.Values{"reason": {"change freeze"}, "csrf": {tok}})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/?done=") {
		t.Fatalf("pause: %d %v", code, h)
	}
	if p := pausedNow(t, rec); p == nil || p.By != webUser || p.Reason != "change freeze" {
		t.Fatalf("pause state %+v, want by %s: change freeze", p, webUser)
	}
	ov := b.page("/")
	if !strings.Contains(ov, `id="paused"`) || !strings.Contains(ov, "change freeze") || !strings.Contains(ov, `id="resume-button"`) {
		t.Errorf("overview while paused:\n%s", ov)
	}
	if _, body, _ := b.do(http.MethodGet, "/api/v1/status", nil); !strings.Contains(body, `"by":"`+webUser+`"`) {
		t.Errorf("API status while paused: %s", body)
	}
	if code, _, _ := b.do(http.MethodPost, "/actions/resume", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("resume: %d", code)
	}
	if p := pausedNow(t, rec); p != nil {
		t.Fatalf("still paused after resume: %+v", p)
	}

	// A manual heal: the API's path (validation, gates), requested by the
	// signed-in user.
	tok = b.token("/nodes/ui-n1")
	code, body, _ := b.do(http.MethodPost, "/actions/heal", url.Values{"node": {"no-such-node"}, "runbook": {"cordon"}, "reason": {"x"}, "csrf": {tok}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "is not in the cluster") {
		t.Errorf("heal of an unknown node: %d %s", code, body)
	}
	code, _, h = b.do(http.MethodPost, "/actions/heal", url.Values{"node": {"ui-n1"}, "runbook": {"cordon"}, "reason": {"disk noise"}, "csrf": {tok}})
	loc := h.Get("Location")
	if code != http.StatusSeeOther || !strings.HasPrefix(loc, "/runs/") {
		t.Fatalf("heal: %d %v", code, h)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(loc, "/runs/"), "?")
	run := b.waitRun(id, 30*time.Second)
	if run.Status != runbooks.StatusSucceeded || run.Route != "manual" || run.RequestedBy != webUser || run.Reason != "disk noise" {
		t.Fatalf("manual run %+v", run)
	}
	if !node(t, "ui-n1").Spec.Unschedulable {
		t.Error("the manual cordon run did not cordon")
	}
	rp := b.page(loc)
	for _, want := range []string{`data-step="cordon" data-outcome="done"`, "requested by", "NodeHealerCordon"} {
		if !strings.Contains(rp, want) {
			t.Errorf("run page: missing %q", want)
		}
	}
	np := b.page("/nodes/ui-n1")
	if !strings.Contains(np, "by node-healer run <a href=\"/runs/"+id+"\">") {
		t.Errorf("node page does not say which run cordoned it:\n%s", np)
	}

	// An escalation for real: ui-esc already had the per-node cap's runs
	// (safety.node_runs, 3 a day by default), so the next one is handed
	// to a human.
	window := locks.NewWindow(rec.Redis.ClientFor(t, 0), "node-healer")
	for _, id := range []string{"earlier-1", "earlier-2", "earlier-3"} {
		if _, err := window.Record(ctx, "node-runs:ui-esc", id, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	tok = b.token("/nodes/ui-esc")
	code, _, h = b.do(http.MethodPost, "/actions/heal", url.Values{"node": {"ui-esc"}, "runbook": {"cordon"}, "reason": {"disk noise again"}, "csrf": {tok}})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/runs/") {
		t.Fatalf("heal of ui-esc: %d %v", code, h)
	}
	escID, _, _ := strings.Cut(strings.TrimPrefix(h.Get("Location"), "/runs/"), "?")
	if run := b.waitRun(escID, 30*time.Second); run.Status != runbooks.StatusEscalated || !strings.Contains(run.Error, "cap 3") {
		t.Fatalf("run past the per-node cap: %s %q, want escalated by the cap", run.Status, run.Error)
	}

	// Clear the escalation: the marks go, an Event says who, and the
	// node's run count starts again.
	waitFor(t, "the escalated node on the overview", 10*time.Second, func() bool {
		return strings.Contains(b.page("/"), `data-node="ui-esc"`)
	})
	tok = b.token("/nodes/ui-esc")
	if np := b.page("/nodes/ui-esc"); !strings.Contains(np, `id="clear-button"`) || !strings.Contains(np, `<dd id="run-cap">3 of 3 runs within 1d — <b>reached</b>`) {
		t.Fatalf("the escalated node's page lacks the clear button or the reached cap:\n%s", np)
	}
	if code, _, _ := other.do(http.MethodPost, "/actions/clear-escalation", url.Values{"node": {"ui-esc"}, "reason": {"x"}}); code != http.StatusForbidden {
		t.Errorf("clear without a token: %d", code)
	}
	if node(t, "ui-esc").Labels[runbooks.LabelNeedsAttention] == "" {
		t.Fatal("a refused clear removed the label")
	}
	code, _, h = b.do(http.MethodPost, "/actions/clear-escalation", url.Values{"node": {"ui-esc"}, "reason": {"replaced the DIMM"}, "csrf": {tok}})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/nodes/ui-esc?done=") {
		t.Fatalf("clear: %d %v", code, h)
	}
	n := node(t, "ui-esc")
	if n.Labels[runbooks.LabelNeedsAttention] != "" || n.Annotations[runbooks.AnnotationNeedsAttention] != "" || n.Annotations[runbooks.AnnotationEscalatedBy] != "" {
		t.Errorf("marks left: labels %v annotations %v", n.Labels, n.Annotations)
	}
	if n, err := window.Count(ctx, "node-runs:ui-esc", 24*time.Hour); n != 0 || err != nil {
		t.Errorf("per-node run count after clearing: %d, %v; want 0", n, err)
	}
	if code, body, _ := b.do(http.MethodPost, "/actions/clear-escalation", url.Values{"node": {"ui-esc"}, "reason": {"again"}, "csrf": {tok}}); code != http.StatusConflict {
		t.Errorf("clearing twice: %d %s", code, body)
	}
	var cleared bool
	for _, e := range nodeEvents(t, "ui-esc") {
		if e.Reason == "NodeHealerEscalationCleared" && strings.Contains(e.Message, "by "+webUser+" (run "+escID+"): replaced the DIMM (per-node run count reset: 3 run(s) within 1d forgotten)") {
			cleared = true
		}
	}
	if !cleared {
		t.Errorf("no NodeHealerEscalationCleared Event: %+v", nodeEvents(t, "ui-esc"))
	}
	// The node page lists the node's Events, read from the API server.
	if np := b.page("/nodes/ui-esc"); !strings.Contains(np, "NodeHealerEscalationCleared") || strings.Contains(np, `id="clear-button"`) || !strings.Contains(np, `<dd id="run-cap">0 of 3 runs within 1d</dd>`) {
		t.Errorf("node page after clearing:\n%s", np)
	}

	log := rec.Log.String()
	for _, a := range []string{"action=pause by=" + webUser, "action=resume by=" + webUser, "action=heal by=" + webUser, "action=clear-escalation by=" + webUser} {
		if !strings.Contains(log, "msg=audit audit=true "+a) {
			t.Errorf("no audit line %q", a)
		}
	}
	if strings.Contains(log, webPassword) {
		t.Error("the password is in the log")
	}
}

// TestUIClearEscalationRedisDown: with Redis unreachable, clearing an
// escalation fails with the reason (503, an error log line) and changes
// nothing on the node; once Redis is back the same form clears it.
func TestUIClearEscalationRedisDown(t *testing.T) {
	rec := startUIReceiver(t, "", defaultRoutes, "ui-redis-down", nil)
	createNodes(t, "ui-esc-rd")
	ctx := context.Background()
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"},"annotations":{%q:"node not back after a power-cycle"}}}`,
		runbooks.LabelNeedsAttention, runbooks.AnnotationNeedsAttention)
	if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, "ui-esc-rd", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, rec.URL, webUser, webPassword)
	tok := b.token("/nodes/ui-esc-rd")

	rec.Redis.Stop()
	code, body, _ := b.do(http.MethodPost, "/actions/clear-escalation", url.Values{"node": {"ui-esc-rd"}, "reason": {"reseated the NIC"}, "csrf": {tok}})
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "reset the per-node run count of ui-esc-rd in Redis (nothing was changed; try again)") {
		t.Errorf("clear with Redis down: %d %s", code, body)
	}
	if n := node(t, "ui-esc-rd"); n.Labels[runbooks.LabelNeedsAttention] == "" || n.Annotations[runbooks.AnnotationNeedsAttention] == "" {
		t.Errorf("a failed clear changed the node: labels %v annotations %v", n.Labels, n.Annotations)
	}
	if log := rec.Log.String(); !strings.Contains(log, `msg="ui action refused" path=/actions/clear-escalation user=`+webUser+" code=503") {
		t.Errorf("no error line for the failed clear:\n%s", log)
	}

	if err := rec.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	code, _, h := b.do(http.MethodPost, "/actions/clear-escalation", url.Values{"node": {"ui-esc-rd"}, "reason": {"reseated the NIC"}, "csrf": {tok}})
	if code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/nodes/ui-esc-rd?done=") {
		t.Fatalf("clear once Redis is back: %d %v", code, h)
	}
	if n := node(t, "ui-esc-rd"); n.Labels[runbooks.LabelNeedsAttention] != "" {
		t.Errorf("label left after clearing: %v", n.Labels)
	}
}

// TestKubectlClearResetsRunCount: removing the needs-attention label
// with kubectl (a merge patch here) resets that node's per-node run count,
// as the page's clear does; a node still marked, and one never marked
// whose labels change, keep theirs.
func TestKubectlClearResetsRunCount(t *testing.T) {
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "", defaultRoutes, "kubectl-clear")
	createNodes(t, "kc-cleared", "kc-marked", "kc-other")
	ctx := context.Background()
	rdb := rec.Redis.ClientFor(t, 0)
	window := locks.NewWindow(rdb, "node-healer")
	patch := func(node, labels string) {
		t.Helper()
		if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(`{"metadata":{"labels":`+labels+`}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mark := fmt.Sprintf(`{%q:"true"}`, runbooks.LabelNeedsAttention)
	for _, n := range []string{"kc-cleared", "kc-marked", "kc-other"} {
		for _, id := range []string{"r1", "r2", "r3"} {
			if _, err := window.Record(ctx, "node-runs:"+n, id, 24*time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	patch("kc-cleared", mark)
	patch("kc-marked", mark)
	// The informer hands every update over in order, so it sees the mark
	// come and go even when both land before it looks.
	patch("kc-cleared", fmt.Sprintf(`{%q:null}`, runbooks.LabelNeedsAttention))
	patch("kc-other", `{"team":"storage"}`)
	count := func(n string) int {
		c, err := window.Count(ctx, "node-runs:"+n, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitFor(t, "kc-cleared's run count reset", 10*time.Second, func() bool { return count("kc-cleared") == 0 })
	// The line comes once Redis answered, a moment after the count is 0.
	waitFor(t, "the log line for the reset", 5*time.Second, func() bool {
		return strings.Contains(rec.Log.String(), `msg="escalation cleared (needs-attention label removed): per-node run count reset" node=kc-cleared forgotten_runs=3 window=1d`)
	})
	time.Sleep(time.Second) // give a wrong reset of the others time to happen
	if c, o := count("kc-marked"), count("kc-other"); c != 3 || o != 3 {
		t.Errorf("run counts of the still-marked node %d and the never-marked one %d, want 3 and 3", c, o)
	}

	// Redis down when the label goes: a warning says the count stays.
	rec.Redis.Stop()
	patch("kc-marked", fmt.Sprintf(`{%q:null}`, runbooks.LabelNeedsAttention))
	waitFor(t, "the warning that the count could not be reset", 15*time.Second, func() bool {
		return strings.Contains(rec.Log.String(), `msg="escalation cleared (needs-attention label removed), but the per-node run count could not be reset: the node escalates again on its next alert until the window passes" node=kc-marked`)
	})
}

// TestUIOperators: with ui.operators set, a signed-in user not listed
// reads the page without forms and cannot act; a reload that lists them
// lets them act at once, and one that takes them off refuses their next
// action even with the page's token.
func TestUIOperators(t *testing.T) {
	rec := startUIReceiver(t, "ui:\n  operators: [oncall-lead]\n", defaultRoutes, "ui-operators",
		func(o *serveOptions) { o.EnableLifecycle = true })
	// oncall-lead has no basic_auth_users entry: said at start-up.
	if !strings.Contains(rec.Log.String(), `msg="ui.operators names users the web configuration file has no basic_auth_users entry for: nobody can sign in as them (a typo?)" users=[oncall-lead]`) {
		t.Error("no warning about an operator nobody can sign in as")
	}
	b := newBrowser(t, rec.URL, webUser, webPassword)
	ov := b.page("/")
	for _, want := range []string{`signed in as <b id="user">` + webUser + `</b> (read-only)`, "actions off: " + webUser + " is not in ui.operators (read-only)"} {
		if !strings.Contains(ov, want) {
			t.Errorf("overview for a user not in ui.operators lacks %q", want)
		}
	}
	if strings.Contains(ov, `name="csrf"`) {
		t.Error("the overview offers forms to a read-only user")
	}

	setOperators := func(list string) {
		t.Helper()
		cfg, err := os.ReadFile(rec.ConfigFile)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.Index(string(cfg), "operators: [")
		j := strings.Index(string(cfg)[i:], "]")
		writeFile(t, rec.ConfigFile, string(cfg[:i])+"operators: ["+list+string(cfg[i+j:]))
		if code, body, _ := b.do(http.MethodPost, "/-/reload", nil); code != http.StatusOK {
			t.Fatalf("reload: %d %s", code, body)
		}
	}
	setOperators("oncall-lead, " + webUser)
	tok := b.token("/")
	if code, _, h := b.do(http.MethodPost, "/actions/pause", url.Values{"reason": {"drill"}, "csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("pause by an operator: %d %v", code, h)
	}
	if p := pausedNow(t, rec); p == nil || p.By != webUser {
		t.Fatalf("pause state %+v", p)
	}

	setOperators("oncall-lead")
	code, body, _ := b.do(http.MethodPost, "/actions/resume", url.Values{"csrf": {tok}})
	if code != http.StatusForbidden || !strings.Contains(body, "refused: "+webUser+" is not in ui.operators (read-only)") {
		t.Errorf("resume by a user no longer in ui.operators: %d %s", code, body)
	}
	if pausedNow(t, rec) == nil {
		t.Error("a refused resume resumed")
	}
	if log := rec.Log.String(); !strings.Contains(log, `msg="ui action refused" path=/actions/resume user=`+webUser+" code=403") {
		t.Error("no log line for the refused resume")
	}
}

// TestUIReadOnlyWithoutAuth: with no web configuration the pages are
// readable but have no forms, and actions are refused.
func TestUIReadOnlyWithoutAuth(t *testing.T) {
	rec := startReceiver(t)
	b := newBrowser(t, rec.URL, "someone", "anything") // unverified: no basic_auth_users
	ov := b.page("/")
	if strings.Contains(ov, `name="csrf"`) || !strings.Contains(ov, "read-only") || !strings.Contains(ov, "no --web.config.file") {
		t.Errorf("overview without auth:\n%s", ov)
	}
	if code, _, _ := b.do(http.MethodPost, "/actions/pause", url.Values{"reason": {"x"}}); code != http.StatusForbidden {
		t.Errorf("pause without auth: %d", code)
	}
	if p := pausedNow(t, rec); p != nil {
		t.Fatalf("paused: %+v", p)
	}
}

func TestCheckUIAlertmanagerURL(t *testing.T) {
	for s, ok := range map[string]bool{"": true, "http://am:9093": true, "https://mon.example/alertmanager": true,
		"am:9093": false, "ftp://am": false, "http://u:p@am:9093": false, "http://am/#/alerts": false, "http://am/?x=1": false} {
		if err := checkUIAlertmanagerURL(s); (err == nil) != ok {
			t.Errorf("%q: %v", s, err)
		}
	}
	if got := withoutUserinfo("http://u:p@am:9093/x"); got != "http://am:9093/x" {
		t.Errorf("withoutUserinfo: %q", got)
	}
}

// TestUIClientCertificate: with TLS and required client certificates (no
// basic auth), the person is the certificate's common name, the CSRF
// cookie carries the __Host- prefix (Secure, this host only), and the
// actions work.
func TestUIClientCertificate(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	dir := t.TempDir()
	serverCert, _ := selfSigned(t, dir, "server")
	_, clientPair := selfSigned(t, dir, "client")
	roots := x509.NewCertPool()
	roots.AddCert(serverCert)
	webConfig := filepath.Join(dir, "web.yml")
	writeFile(t, webConfig, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.crt\n")
	tc := newTLSClient(roots, &clientPair)
	r := testenv.NewRedis(t)
	rec, _ := startReceiverSetup(t, fmt.Sprintf("redis: {url: %q}", r.URL(0)), "", defaultRoutes, "ui-tls", receiverSetup{
		Options: func(o *serveOptions) { o.WebConfigFile = webConfig },
		Scheme:  "https", Client: tc,
	})
	rec.Redis = r
	b := newBrowser(t, rec.URL, "", "")
	b.c.Transport = tc.Transport
	if !strings.Contains(b.page("/"), `signed in as <b id="user">cert:client</b>`) {
		t.Fatal("the client certificate's name is not shown as the user")
	}
	u, _ := url.Parse(rec.URL)
	var names []string
	for _, c := range b.c.Jar.Cookies(u) {
		names = append(names, c.Name)
	}
	if fmt.Sprint(names) != "[__Host-node-healer-csrf]" {
		t.Errorf("cookies %v, want the __Host- CSRF cookie over TLS", names)
	}
	tok := b.token("/")
	if code, _, _ := b.do(http.MethodPost, "/actions/pause", url.Values{"reason": {"rack move"}}); code != http.StatusForbidden {
		t.Errorf("pause without the token: %d", code)
	}
	if code, _, _ := b.do(http.MethodPost, "/actions/pause", url.Values{"reason": {"rack move"}, "csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("pause: %d", code)
	}
	if p := pausedNow(t, rec); p == nil || p.By != "cert:client" || p.Reason != "rack move" {
		t.Fatalf("pause state %+v", p)
	}
}

// TestUISilencesFromAlertmanager: the node page asks the configured
// Alertmanager (a real one) which silences hold the node, and links to
// its new-silence form prefilled for the node; the run page links to the
// alert there.
func TestUISilencesFromAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("needs alertmanager, redis-server, kube-apiserver and kwok (integration)")
	}
	am := testenv.NewAlertmanager(t, "")
	createNodes(t, "ui-sil", "ui-nosil")
	rec := startUIReceiver(t, "alertmanagers: [{urls: ["+am.URL+"]}]\nwebhook: {auth: {allow_unauthenticated: true}}", defaultRoutes, "ui-sil", nil)
	b := newBrowser(t, rec.URL, webUser, webPassword)
	if _, err := am.AddSilence(context.Background(), []string{`node="ui-sil"`}, time.Hour, "PSU swap <b>today</b>"); err != nil {
		t.Fatal(err)
	}
	var page string
	waitFor(t, "the silence on the node page", 10*time.Second, func() bool {
		page = b.page("/nodes/ui-sil")
		return strings.Contains(page, `id="silence"`)
	})
	for _, want := range []string{"PSU swap &lt;b&gt;today&lt;/b&gt;", `node=&#34;ui-sil&#34;`,
		`id="silence-link" href="` + am.URL + `/#/silences/new?filter=%7Bnode%3D%22ui-sil%22%7D"`} {
		if !strings.Contains(page, want) {
			t.Errorf("node page: missing %q in\n%s", want, page)
		}
	}
	if !strings.Contains(b.page("/nodes/ui-nosil"), `id="no-silence"`) {
		t.Error("a node no silence matches shows one")
	}
	// An alert's run links to the alert; a manual run has none to link to.
	req, _ := http.NewRequest(http.MethodPost, rec.URL+"/webhook", strings.NewReader(amPayload("NodeRehearsal", "ui-nosil", "fp-ui-sil")))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(webUser, webPassword)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	id := runbooks.RunID("fp-ui-sil", time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	b.waitRun(id, 30*time.Second)
	want := `id="alert-link" href="` + am.URL + `/#/alerts?silenced=true&amp;inhibited=true&amp;filter=%7Balertname%3D%22NodeRehearsal%22%2Cnode%3D%22ui-nosil%22%2Cseverity%3D%22critical%22%7D"`
	if run := b.page("/runs/" + id); !strings.Contains(run, want) {
		t.Errorf("run page: no link to the alert in Alertmanager (%s):\n%s", want, run)
	}
	tok := b.token("/nodes/ui-sil")
	_, _, h := b.do(http.MethodPost, "/actions/heal", url.Values{"node": {"ui-sil"}, "runbook": {"cordon"}, "reason": {"x"}, "dry_run": {"1"}, "csrf": {tok}})
	// The run is stored once a worker picks it up (until then its page
	// says "queued").
	loc := strings.SplitN(h.Get("Location"), "?", 2)[0]
	waitFor(t, "the manual run to be stored", 30*time.Second, func() bool { return b.run(strings.TrimPrefix(loc, "/runs/")) != nil })
	if run := b.page(loc); strings.Contains(run, `id="alert-link"`) || !strings.Contains(run, "manual run") {
		t.Errorf("manual run page:\n%s", run)
	}
}
