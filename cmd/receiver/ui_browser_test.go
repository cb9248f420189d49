package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/handlers"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// chromium is the browser binary: $CHROMIUM, else chromium on PATH
// (scripts/deps.sh installs Debian's package).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("headless Chromium is needed: run scripts/deps.sh (apt-get install chromium) or set $CHROMIUM")
	}
	return p
}

// artifacts is where the browser test saves screenshots:
// $NODE_HEALER_ARTIFACTS/ui when set (kept), else a test temp dir.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("NODE_HEALER_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "ui")
		must(t, os.MkdirAll(dir, 0o755))
	}
	return dir
}

// newChrome starts headless Chromium with the flags this machine needs
// as root and on a closed network, and a fresh profile; it stops at
// cleanup. Every request carries the basic auth credentials.
func newChrome(t *testing.T, user, pass string) context.Context {
	t.Helper()
	out := &syncWriter{w: &bytes.Buffer{}}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.CombinedOutput(out),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	})
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	setAuth := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": "Basic " + auth}})
		return err
	})
	if err := chromedp.Do(ctx, setAuth); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// jsTrue polls a JavaScript expression until it is true. The page
// reloads itself, so a failed evaluation (context gone mid-reload) is
// retried, not fatal.
func jsTrue(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(ectx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			html := pageHTML(ctx)
			t.Fatalf("browser: timed out after %s waiting for %s (last error %v); page:\n%s", timeout, what, err, html)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// jsString evaluates an expression that returns a string ("" on error).
func jsString(ctx context.Context, expr string) string {
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ectx, chromedp.Evaluate[string](expr))
	if err != nil {
		return ""
	}
	return s
}

// jsBool evaluates an expression that returns a boolean (false on error).
func jsBool(ctx context.Context, expr string) bool {
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ok, err := chromedp.Run(ectx, chromedp.Evaluate[bool](expr))
	return err == nil && ok
}

// pageHTML is the page's main element, for failure messages.
func pageHTML(ctx context.Context) string {
	ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	html, _ := chromedp.Run(ectx, chromedp.OuterHTML(chromedp.CSS("main")))
	return html
}

// act runs browser actions on a page that may reload under them: retried
// until done (what the person sees afterwards is checked by the caller).
func act(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	var err error
	for range 5 {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = chromedp.Do(actx, actions...)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("browser: %s: %v", what, err)
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) string {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, png, 0o644))
	t.Logf("screenshot %s", p)
	return p
}

// TestUIBrowserFollowsAHealing: a person watches the operator page in a
// real browser (headless Chromium over the DevTools protocol) while the
// pipeline heals a node: an alert starts a reboot run, the page shows it
// step by step (held in the drain by a PodDisruptionBudget), the person
// pauses node-healer with a reason, the run — its drain let through —
// holds before the soft reboot and the page says why, the person
// resumes, and the run finishes. The BMC simulator takes one graceful
// restart; the run page shows the whole timeline.
func TestUIBrowserFollowsAHealing(t *testing.T) {
	if testing.Short() {
		t.Skip("needs chromium, redis-server, kube-apiserver and kwok (integration)")
	}
	chromium(t)
	const nodeName = "uib-n1"
	createNodes(t, nodeName)
	bmc := startBMC(t, bmcsim.System{ID: nodeName})
	ctx := context.Background()
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	must(t, cluster.EnsureNamespace(ctx, "uib"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "uib", "db", nodeName, 1); err != nil {
		t.Fatal(err)
	}
	pdb := blockingPDB(t, "uib", "db")

	// Alertmanager posts as one basic auth user, the on-call engineer
	// signs in as another.
	const oncall, oncallPass = "oncall", "page-me-not"
	hash, err := bcrypt.GenerateFromPassword([]byte(oncallPass), 4)
	must(t, err)
	routes := `
routes:
  - name: deadlock
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: reboot
    params: {reboot_timeout: 4s, ready_timeout: 60s, healthy_for: 2s, drain_timeout: 120s}
`
	extra := "bmc: {inventory_file: " + bmc.Inventory + ", timeout: 3s}\nwebhook: {auth: {allow_unauthenticated: true}}"
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, webConfig, fmt.Sprintf("basic_auth_users:\n  %s: %s\n  %s: %s\n", webUser, webPasswordHash, oncall, hash))
	r := testenv.NewRedis(t)
	rec, _ := startReceiverSetup(t, fmt.Sprintf("redis: {url: %q}", r.URL(0)), extra, routes, "ui-browser", receiverSetup{
		Options: func(o *serveOptions) { o.WebConfigFile, o.uiRefresh = webConfig, time.Second },
		Request: func(r *http.Request) { r.SetBasicAuth(webUser, webPassword) },
	})
	dir := artifacts(t)
	browser := newChrome(t, oncall, oncallPass)

	act(t, browser, "open the overview", chromedp.Navigate(rec.URL+"/"))
	jsTrue(t, browser, "the overview, not paused, signed in", `!!document.querySelector("#not-paused") && document.querySelector("#user").textContent === "oncall"`, 20*time.Second)
	screenshot(t, browser, dir, "1-idle.png")

	// Alertmanager delivers the alert (basic auth, as its http_config would).
	am := newBrowser(t, rec.URL, webUser, webPassword)
	// The alert fired a minute ago (the run page counts from there).
	startsAt := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	payload := strings.Replace(amPayload("NodeKernelDeadlock", nodeName, "fp-uib"), "2026-11-26T10:00:00Z", startsAt.Format(time.RFC3339), 1)
	req, _ := http.NewRequest(http.MethodPost, rec.URL+"/webhook", strings.NewReader(payload))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(webUser, webPassword)
	resp, err := am.c.Do(req)
	must(t, err)
	var reply handlers.Reply
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || reply.Accepted != 1 {
		t.Fatalf("webhook: %d %+v %v", resp.StatusCode, reply, err)
	}
	id := reply.Alerts[0].RunID
	if id != runbooks.RunID("fp-uib", startsAt) {
		t.Fatalf("run ID %s", id)
	}

	// What the page shows of the run, polled as the page refreshes itself.
	var seen []string
	watch := func() {
		step := jsString(browser, fmt.Sprintf(`(document.querySelector('#active tr[data-run=%q]') || {dataset: {}}).dataset.step || ""`, id))
		if step != "" && (len(seen) == 0 || seen[len(seen)-1] != step) {
			seen = append(seen, step)
		}
	}
	row := fmt.Sprintf(`#active tr[data-run=%q][data-step="drain"]`, id)
	jsTrue(t, browser, "the run draining (PDB) in the active table", `!!document.querySelector('`+row+`')`, 60*time.Second)
	watch()
	screenshot(t, browser, dir, "2-draining.png")

	// Pause, with a reason, from the page.
	act(t, browser, "pause", chromedp.Navigate(rec.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#pause-reason")),
		chromedp.SendKeys(chromedp.CSS("#pause-reason"), "hardware check by DC ops"), chromedp.Click(chromedp.CSS("#pause-button")))
	jsTrue(t, browser, "the paused banner", `!!document.querySelector("#paused") && document.querySelector("#pause").textContent.includes("hardware check by DC ops")`, 20*time.Second)
	// (The "paused by" confirmation is said once: the next refresh drops
	// it, so it is checked in internal/ui, not raced here.)

	// The drain is let through; the run must hold before the reboot.
	allowPDB(t, pdb)
	held := fmt.Sprintf(`#held tr[data-run=%q][data-hold="paused"]`, id)
	var heldRow string
	for deadline := time.Now().Add(60 * time.Second); ; {
		watch()
		// The row's text, read in the same evaluation that finds it (the
		// page may reload right after).
		if heldRow = jsString(browser, `(document.querySelector('`+held+`') || {textContent: ""}).textContent`); heldRow != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never showed as held (paused); page:\n%s", pageHTML(browser))
		}
		time.Sleep(150 * time.Millisecond)
	}
	if !strings.Contains(heldRow, "soft-reboot") || !strings.Contains(heldRow, "hardware check by DC ops") {
		t.Errorf("held row %q: want the step it waits before (soft-reboot) and the pause reason", heldRow)
	}
	screenshot(t, browser, dir, "3-paused-held.png")
	time.Sleep(2 * time.Second)
	if n := len(bmc.Sim.Resets(nodeName)); n != 0 {
		t.Fatalf("the BMC was reset %d times while paused", n)
	}

	// Resume; the run goes on and finishes.
	act(t, browser, "resume", chromedp.Navigate(rec.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#resume-button")), chromedp.Click(chromedp.CSS("#resume-button")))
	jsTrue(t, browser, "not paused any more", `!!document.querySelector("#not-paused")`, 20*time.Second)
	done := fmt.Sprintf(`#finished tr[data-run=%q][data-status="succeeded"]`, id)
	for deadline := time.Now().Add(120 * time.Second); ; {
		watch()
		if jsBool(browser, `!!document.querySelector('`+done+`')`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never showed as succeeded; page:\n%s", pageHTML(browser))
		}
		time.Sleep(150 * time.Millisecond)
	}
	screenshot(t, browser, dir, "4-finished.png")
	t.Logf("steps the page showed while the run was active: %v", seen)
	order := map[string]int{}
	for i, s := range []string{"cordon", "drain", "capture", "soft-reboot", "wait-reboot", "power-cycle", "wait-ready", "verify-health", "uncordon"} {
		order[s] = i
	}
	for i := 1; i < len(seen); i++ {
		if order[seen[i]] < order[seen[i-1]] {
			t.Errorf("steps shown out of order: %v", seen)
		}
	}
	if len(seen) == 0 || seen[0] != "drain" {
		t.Errorf("steps shown %v: want drain first (where the PDB held it)", seen)
	}

	// The run page: the timeline as the seed's healing log.
	act(t, browser, "open the run", chromedp.Navigate(rec.URL+"/runs/"+id))
	want := "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:skipped wait-ready:done verify-health:done uncordon:done"
	got := jsString(browser, `Array.from(document.querySelectorAll("#timeline li")).map(li => li.dataset.step + ":" + li.dataset.outcome).join(" ")`)
	if got != want {
		t.Errorf("run page timeline %q, want %q", got, want)
	}
	body := jsString(browser, `document.querySelector("main").innerText`)
	for _, w := range []string{"NodeKernelDeadlock", "worker ui-browser", "fence", "NodeHealerCordon", "NodeHealerRebooting"} {
		if !strings.Contains(body, w) {
			t.Errorf("run page: missing %q", w)
		}
	}
	screenshot(t, browser, dir, "5-run.png")
	if got := bmc.resets(nodeName); fmt.Sprint(got) != "[GracefulRestart]" {
		t.Errorf("BMC resets %v, want one GracefulRestart", got)
	}

	// The node page: back in service, its run, its Events.
	act(t, browser, "open the node", chromedp.Navigate(rec.URL+"/nodes/"+nodeName))
	nodeText := jsString(browser, `document.querySelector("main").innerText`)
	for _, w := range []string{"schedulable", id, "NodeHealerUncordon", "Start a manual heal"} {
		if !strings.Contains(nodeText, w) {
			t.Errorf("node page: missing %q in\n%s", w, nodeText)
		}
	}
	screenshot(t, browser, dir, "6-node.png")

	// On a phone: the overview in a 390-pixel-wide viewport, no sideways
	// scrolling of the page itself.
	act(t, browser, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(rec.URL+"/"))
	jsTrue(t, browser, "the overview on a phone", `!!document.querySelector("#not-paused")`, 20*time.Second)
	var width string
	waitFor(t, "the page width", 20*time.Second, func() bool {
		width = jsString(browser, `document.querySelector("#not-paused") ? String(document.documentElement.scrollWidth) : ""`)
		return width != ""
	})
	if w, _ := strconv.Atoi(width); w > 390 {
		t.Errorf("the overview is %s px wide on a 390 px phone screen", width)
	}
	screenshot(t, browser, dir, "7-phone.png")
}
