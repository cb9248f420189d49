package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/handlers"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// heal posts a manual run request; auth "" sends no Authorization header.
func (r *receiver) heal(t *testing.T, body, auth string) (int, handlers.ManualReply, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.URL+"/api/v1/runs", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var reply handlers.ManualReply
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, &reply); err != nil || reply.Run == "" {
			t.Fatalf("reply %s: %v", b, err)
		}
		if loc := resp.Header.Get("Location"); loc != "/api/v1/runs/"+reply.Run {
			t.Errorf("Location %q", loc)
		}
	}
	return resp.StatusCode, reply, string(b)
}

func TestManualCordonRuns(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "man-n1")
	code, reply, body := rec.heal(t, `{"node":"man-n1","runbook":"cordon","reason":"disk smart errors (OPS-42)","requested_by":"alice"}`, token)
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	run := rec.waitRun(t, reply.Run)
	if run.Status != runbooks.StatusSucceeded || run.Route != "manual" || run.Reason != "disk smart errors (OPS-42)" ||
		run.RequestedBy != "alice" || run.Labels["alertname"] != "manual" || run.DryRun {
		t.Fatalf("run %+v", run)
	}
	if n := node(t, "man-n1"); !n.Spec.Unschedulable {
		t.Fatal("manual cordon run did not cordon the node")
	}
	if !strings.Contains(rec.Log.String(), "disk smart errors (OPS-42)") {
		t.Error("the reason is not in the log")
	}
	if strings.Contains(rec.Log.String(), token) {
		t.Error("the token is in the log")
	}
	// The same request again while the first is recent: the same run.
	code, again, body := rec.heal(t, `{"node":"man-n1","runbook":"cordon","reason":"again"}`, token)
	if code != http.StatusOK || !again.Duplicate || again.Run != reply.Run {
		t.Fatalf("repeat: %d %s", code, body)
	}
}

func TestManualDryRunChangesNothing(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "man-dry-n1")
	code, reply, body := rec.heal(t, `{"node":"man-dry-n1","runbook":"cordon","reason":"rehearsal","dry_run":true}`, token)
	if code != http.StatusAccepted || !reply.DryRun {
		t.Fatalf("%d %s", code, body)
	}
	run := rec.waitRun(t, reply.Run)
	if !run.DryRun || run.Status != runbooks.StatusSucceeded || run.Timeline[0].Outcome != runbooks.OutcomeDryRun {
		t.Fatalf("run %+v", run)
	}
	if n := node(t, "man-dry-n1"); n.Spec.Unschedulable {
		t.Fatal("a dry run cordoned the node")
	}
}

// TestManualRebootSilenced: a silence on the node holds a manual reboot
// like an alert's (deferred, nothing done to the node); once it expires
// the reboot runs, and the node's Event says why.
func TestManualRebootSilenced(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	createNodes(t, "man-sil-n1")
	b := startBMC(t, bmcsim.System{ID: "man-sil-n1"})
	am := testenv.NewAlertmanager(t, "")
	ctx := context.Background()
	silID, err := am.AddSilence(ctx, []string{`node="man-sil-n1"`}, time.Hour, "hardware swap")
	if err != nil {
		t.Fatal(err)
	}
	extra := "bmc: {inventory_file: " + b.Inventory + "}\nalertmanager: {urls: [" + am.URL + "]}\nsafety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}"
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), extra, defaultRoutes, "manual-silence")
	code, reply, body := rec.heal(t, `{"node":"man-sil-n1","runbook":"reboot","reason":"kernel oops","requested_by":"bob",
"params":{"reboot_timeout":"4s","ready_timeout":"60s","healthy_for":"500ms","drain_timeout":"30s"}}`, token)
	if code != http.StatusAccepted {
		t.Fatalf("%d %s", code, body)
	}
	waitFor(t, "the manual reboot to be deferred by the silence", 30*time.Second, func() bool {
		run := rec.run(t, reply.Run)
		return run != nil && run.Status == runbooks.StatusDeferred && run.Hold != nil && run.Hold.Kind == "silenced"
	})
	time.Sleep(time.Second)
	run := rec.run(t, reply.Run)
	if run.Status != runbooks.StatusDeferred || len(run.Timeline) != 0 || !strings.Contains(run.Hold.Reason, "hardware swap") {
		t.Fatalf("run %+v hold %+v", run, run.Hold)
	}
	if n := node(t, "man-sil-n1"); n.Spec.Unschedulable || len(b.Sim.Resets("man-sil-n1")) != 0 {
		t.Fatal("a manual reboot touched a silenced node")
	}
	must(t, am.ExpireSilence(ctx, silID))
	run = rec.waitRunFor(t, reply.Run, 90*time.Second)
	if run.Status != runbooks.StatusSucceeded || len(b.Sim.Resets("man-sil-n1")) != 1 {
		t.Fatalf("run %s: %s resets %v\n%s", run.Status, run.Error, b.Sim.Resets("man-sil-n1"), stepsOutcomes(run))
	}
	found := false
	for _, e := range nodeEvents(t, "man-sil-n1") {
		if e.Reason == "NodeHealerRebooting" && strings.Contains(e.Message, "kernel oops (requested by bob)") && strings.Contains(e.Message, "alert manual") {
			found = true
		}
	}
	if !found {
		t.Errorf("no NodeHealerRebooting Event with the manual reason: %+v", nodeEvents(t, "man-sil-n1"))
	}
}

func TestManualRejected(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "man-rej-n1")
	for _, c := range []struct {
		name, body, auth string
		code             int
		want             string
	}{
		{"missing auth", `{"node":"man-rej-n1","runbook":"cordon","reason":"r"}`, "", 401, "unauthorized"},
		{"bad token", `{"node":"man-rej-n1","runbook":"cordon","reason":"r"}`, "wrong", 401, "unauthorized"},
		{"unknown node", `{"node":"no-such-node","runbook":"cordon","reason":"r"}`, token, 422, `node \"no-such-node\" is not in the cluster`},
		{"unknown runbook", `{"node":"man-rej-n1","runbook":"reboot-now","reason":"r"}`, token, 422, "known: cordon"},
		{"bad param", `{"node":"man-rej-n1","runbook":"reboot","reason":"r","params":{"reboot_timeout":"-1s"}}`, token, 422, "reboot_timeout"},
	} {
		code, _, body := rec.heal(t, c.body, c.auth)
		if code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.want)
		}
	}
	if runs := rec.listRuns(t); len(runs) != 0 {
		t.Fatalf("refused requests made runs: %+v", runs)
	}
	time.Sleep(300 * time.Millisecond)
	if n := node(t, "man-rej-n1"); n.Spec.Unschedulable {
		t.Fatal("node changed although every request was refused")
	}
}

func TestManualRedisDown(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "man-redis-n1")
	rec.Redis.Stop()
	code, _, body := rec.heal(t, `{"node":"man-redis-n1","runbook":"cordon","reason":"r"}`, token)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("%d %s with redis down, want 503", code, body)
	}
	must(t, rec.Redis.Restart())
}

func (r *receiver) listRuns(t *testing.T) []*runbooks.Run {
	t.Helper()
	resp, err := http.Get(r.URL + "/api/v1/runs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Runs []*runbooks.Run }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Runs
}

func TestHeal_CLI(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "heal-cli-n1")
	tokenFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))

	code, out, errs := runCLI("heal", "heal-cli-n1", "--runbook=cordon", "--reason=bad DIMM", "--url", rec.URL, "--token-file", tokenFile)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	m := regexp.MustCompile(`(?m)^run ([0-9a-f]{16}): cordon on node heal-cli-n1 queued`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "receiver runs show "+m[1]) {
		t.Fatalf("output does not name the run and how to follow it:\n%s", out)
	}
	run := rec.waitRun(t, m[1])
	if run.Status != runbooks.StatusSucceeded || run.Reason != "bad DIMM" || run.RequestedBy == "" {
		t.Fatalf("run %+v", run)
	}
	if strings.Contains(out+errs, token) {
		t.Error("the token was printed")
	}

	// The token from the environment; a server refusal exits 1 with its message.
	t.Setenv("NODE_HEALER_TOKEN", token)
	code, out, errs = runCLI("heal", "heal-cli-n1", "--runbook=rebooot", "--reason=r", "--url", rec.URL)
	if code != 1 || !strings.Contains(errs, `unknown runbook "rebooot"`) || !strings.Contains(errs, "reboot") {
		t.Fatalf("unknown runbook: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = runCLI("heal", "no-such-node", "--runbook=cordon", "--reason=r", "--url", rec.URL, "--dry-run")
	if code != 1 || !strings.Contains(errs, "not in the cluster") {
		t.Fatalf("unknown node: exit %d\n%s", code, errs)
	}
	code, _, errs = runCLI("heal", "heal-cli-n1", "--runbook=reboot", "--reason=r", "--param", "drain_timeout=soon", "--url", rec.URL)
	if code != 1 || !strings.Contains(errs, "drain_timeout") {
		t.Fatalf("bad param: exit %d\n%s", code, errs)
	}
	t.Setenv("NODE_HEALER_TOKEN", "")
	code, _, errs = runCLI("heal", "heal-cli-n1", "--runbook=cordon", "--reason=r", "--url", rec.URL)
	if code != 1 || !strings.Contains(errs, "401") || !strings.Contains(errs, "--token-file") {
		t.Fatalf("no token: exit %d\n%s", code, errs)
	}
	code, _, errs = runCLI("heal", "heal-cli-n1", "--runbook=cordon", "--url", rec.URL)
	if code != 2 || !strings.Contains(errs, "reason") {
		t.Fatalf("no --reason: exit %d\n%s", code, errs)
	}
}
