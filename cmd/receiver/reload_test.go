package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/metrics"
	"github.com/node-healer/node-healer/internal/testenv"
)

// reloadRoute is appended to the receiver's routes by the reload tests: a
// dry run, so a run it starts changes nothing in the shared cluster.
const reloadRoute = `
  - name: added-by-reload
    matchers: ['alertname="NodeReloadTest"']
    runbook: cordon
    dry_run: true
`

// metricValue reads one unlabelled series from /metrics.
func (r *receiver) metricValue(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(r.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return v
		}
	}
	t.Fatalf("%s not in /metrics", name)
	return ""
}

func (r *receiver) reload(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Post(r.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// reason posts an alert and returns what the webhook decided for it.
func (r *receiver) reason(t *testing.T, alertname, node, fp string) string {
	t.Helper()
	code, reply := r.post(t, amPayload(alertname, node, fp))
	if code != 200 {
		t.Fatalf("webhook answered %d", code)
	}
	if reply.Alerts[0].Reason != "" {
		return reply.Alerts[0].Reason
	}
	return reply.Alerts[0].Outcome
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b)+s)
}

// TestReloadHTTP: POST /-/reload with --web.enable-lifecycle. A good file
// takes effect (a new route, a new webhook token); a bad one is refused
// with 500 and the reason, counted, and the old configuration stays.
func TestReloadHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	rec, _ := startReceiverSetup(t, fmt.Sprintf("redis: {url: %q}", testenv.NewRedis(t).URL(0)), "", defaultRoutes, "reload-http",
		receiverSetup{Options: func(o *serveOptions) { o.EnableLifecycle = true }})
	createNodes(t, "reload-n1")
	if got := rec.reason(t, "NodeReloadTest", "reload-n1", "fp-reload-1"); got != metrics.OutcomeNoRoute {
		t.Fatalf("before the reload: %q, want %q", got, metrics.OutcomeNoRoute)
	}
	if v := rec.metricValue(t, "node_healer_config_last_reload_successful"); v != "1" {
		t.Errorf("last_reload_successful at start-up = %s, want 1", v)
	}
	started := rec.metricValue(t, "node_healer_config_last_reload_success_timestamp_seconds")

	good, err := os.ReadFile(rec.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, rec.ConfigFile, reloadRoute)
	time.Sleep(1100 * time.Millisecond) // a visibly newer timestamp
	if code, body := rec.reload(t); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if got := rec.reason(t, "NodeReloadTest", "reload-n1", "fp-reload-2"); got != metrics.OutcomeAccepted {
		t.Fatalf("after the reload: %q, want accepted", got)
	}
	if v := rec.metricValue(t, "node_healer_config_last_reload_success_timestamp_seconds"); v == started {
		t.Errorf("success timestamp unchanged by a good reload: %s", v)
	}

	// A bad file: an unknown runbook.
	reloaded, _ := os.ReadFile(rec.ConfigFile)
	writeFile(t, rec.ConfigFile, string(good)+"\n  - name: bad\n    matchers: ['alertname=\"X\"']\n    runbook: format-disk\n")
	code, body := rec.reload(t)
	if code != 500 || !strings.Contains(body, `unknown runbook \"format-disk\"`) {
		t.Errorf("bad reload: %d %s, want 500 naming the error", code, body)
	}
	if v := rec.metricValue(t, "node_healer_config_last_reload_successful"); v != "0" {
		t.Errorf("last_reload_successful after a bad file = %s, want 0", v)
	}
	if got := rec.reason(t, "NodeReloadTest", "reload-n1", "fp-reload-3"); got != metrics.OutcomeAccepted {
		t.Errorf("after the bad reload the old configuration (with the added route) should stay: %q", got)
	}
	if !strings.Contains(rec.Log.String(), "configuration reload failed") {
		t.Error("the failed reload was not logged")
	}

	// A new webhook token: the file is re-read on reload.
	writeFile(t, rec.ConfigFile, string(reloaded))
	writeFile(t, filepath.Join(filepath.Dir(rec.ConfigFile), "token"), "rotated-token\n")
	if code, body := rec.reload(t); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if v := rec.metricValue(t, "node_healer_config_last_reload_successful"); v != "1" {
		t.Errorf("last_reload_successful after a good file = %s, want 1", v)
	}
	for bearer, want := range map[string]int{token: 401, "rotated-token": 200} {
		code, body, _, err := webReq{method: http.MethodPost, path: "/webhook", body: amPayload("NodeReloadTest", "reload-n1", "fp-reload-4"), bearer: bearer}.do(t, http.DefaultClient, rec.URL)
		if err != nil || code != want {
			t.Errorf("webhook with token %q after rotation: %d %s %v, want %d", bearer, code, body, err, want)
		}
	}
	if strings.Contains(rec.Log.String(), "rotated-token") {
		t.Error("the webhook token was logged")
	}
	if strings.Contains(rec.Log.String(), "restart_required") {
		t.Error("restart asked for although only routes and the token changed")
	}

	// A section read only at start-up: reloaded, but a restart is asked for.
	appendFile(t, rec.ConfigFile, "\nkubernetes: {qps: 7}\n")
	if code, body := rec.reload(t); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if !strings.Contains(rec.Log.String(), "restart_required=[kubernetes]") {
		t.Errorf("no restart_required=[kubernetes] in the log:\n%s", rec.Log.String())
	}
}

// TestReloadSIGHUP: without --web.enable-lifecycle POST /-/reload is 403,
// and SIGHUP reloads. serve installs its SIGHUP handler with
// signal.Notify, so the test process survives the signal while the
// receiver runs (no other test runs in parallel with it here).
func TestReloadSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	rec := startReceiver(t)
	createNodes(t, "reload-n2")
	if code, body := rec.reload(t); code != 403 {
		t.Errorf("POST /-/reload without --web.enable-lifecycle: %d %s, want 403", code, body)
	}
	if got := rec.reason(t, "NodeReloadTest", "reload-n2", "fp-hup-1"); got != metrics.OutcomeNoRoute {
		t.Fatalf("before SIGHUP: %q, want %q", got, metrics.OutcomeNoRoute)
	}
	good, _ := os.ReadFile(rec.ConfigFile)
	writeFile(t, rec.ConfigFile, string(good)+"\nworkers: {count: 0}\n") // invalid (and a duplicate key)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "failed reload on SIGHUP", 10*time.Second, func() bool {
		return rec.metricValue(t, "node_healer_config_last_reload_successful") == "0"
	})
	if got := rec.reason(t, "NodeReloadTest", "reload-n2", "fp-hup-2"); got != metrics.OutcomeNoRoute {
		t.Errorf("after a bad file: %q, want the old routes (%q)", got, metrics.OutcomeNoRoute)
	}
	writeFile(t, rec.ConfigFile, string(good)+reloadRoute)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "good reload on SIGHUP", 10*time.Second, func() bool {
		return rec.metricValue(t, "node_healer_config_last_reload_successful") == "1"
	})
	if got := rec.reason(t, "NodeReloadTest", "reload-n2", "fp-hup-3"); got != metrics.OutcomeAccepted {
		t.Errorf("after SIGHUP: %q, want accepted", got)
	}
}

// TestRestartKeys: the sections read only at start-up are compared
// (alertmanagers with their HTTP configuration included) without false
// alarms for an unchanged file.
func TestRestartKeys(t *testing.T) {
	const base = `
webhook: {auth: {allow_unauthenticated: true}}
alertmanagers:
  - urls: [http://am-0:9093]
    http_config: {authorization: {credentials: x}}
routes: [{name: r, matchers: ['a="b"'], runbook: cordon}]
`
	parse := func(s string) *config.Config {
		c, err := config.Parse([]byte(s), ".", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if k := restartKeys(parse(base), parse(base)); len(k) != 0 {
		t.Errorf("unchanged file: restart required for %v", k)
	}
	if k := restartKeys(parse(base), parse(strings.Replace(base, "r, matchers", "r2, matchers", 1))); len(k) != 0 {
		t.Errorf("routes changed: restart required for %v", k)
	}
	changed := strings.Replace(base, "am-0", "am-1", 1) + "locks: {ttl: 1m}\n"
	if k := strings.Join(restartKeys(parse(base), parse(changed)), ","); k != "locks,alertmanagers" {
		t.Errorf("restart required for %q, want locks,alertmanagers", k)
	}
}

func TestWebAuthenticates(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]bool{
		"": false,
		"tls_server_config: {cert_file: a, key_file: b}\n":                                                                  false,
		"basic_auth_users: {am: $2a$04$FElQif/IFesl0kGcU9NfT.y4/btCMX22kkhKof/HPkRnkuRj5jgVu}\n":                            true,
		"tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAndVerifyClientCert, client_ca_file: c}\n": true,
		"tls_server_config: {cert_file: a, key_file: b, client_auth_type: VerifyClientCertIfGiven, client_ca_file: c}\n":    false,
	} {
		f := filepath.Join(dir, "web.yml")
		writeFile(t, f, content)
		if got := webAuthenticates(f); got != want {
			t.Errorf("%q: %v, want %v", content, got, want)
		}
	}
	if webAuthenticates("") || webAuthenticates(filepath.Join(dir, "missing.yml")) {
		t.Error("no file authenticates")
	}
}
