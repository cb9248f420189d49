package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/node-healer/node-healer/internal/runbooks"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckConfig(t *testing.T) {
	code, out, errs := runCLI("check-config", "../../internal/config/testdata/good.yml")
	if code != 0 || !strings.Contains(out, "OK — 1 routes, runbooks: cordon") {
		t.Fatalf("good config: exit %d, %q %q", code, out, errs)
	}
	// Every rejection fixture exits 1 with the file and a field-named error.
	files, _ := filepath.Glob("../../internal/config/testdata/bad.*.yml")
	if len(files) < 20 {
		t.Fatalf("only %d fixtures found", len(files))
	}
	for _, f := range files {
		if strings.HasSuffix(f, "bad.token-missing.yml") {
			continue // a secret file missing here is a warning (TestCheckConfigMissingSecrets)
		}
		code, out, errs := runCLI("check-config", f)
		if code != 1 || out != "" || !strings.HasPrefix(errs, "receiver: "+f+": ") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", f, code, out, errs)
		}
	}
	// The runbook names come from the real registry.
	_, _, errs = runCLI("check-config", "../../internal/config/testdata/bad.unknown-runbook.yml")
	if !strings.Contains(errs, `routes[0]: runbook: unknown runbook "format-disk" (known: cordon, disk-cleanup, drain, fence, power-cycle, reboot, restart-kubelet, restart-runtime, uncordon)`) {
		t.Errorf("unknown runbook message: %q", errs)
	}
}

func TestRouteTest(t *testing.T) {
	cfg := "--config.file=../../internal/config/testdata/good.yml"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alertname=NodeKernelDeadlock", "node=n1"}, "route deadlock → runbook cordon on node n1\n"},
		{[]string{`alertname="NodeKernelDeadlock"`}, "route deadlock → runbook cordon on node <missing: label \"node\">\n"},
		{[]string{"alertname=Watchdog"}, "no route\n"},
	} {
		code, out, errs := runCLI(append([]string{"route", "test", cfg}, tc.args...)...)
		if code != 0 || out != tc.want {
			t.Errorf("%v: exit %d %q %q, want %q", tc.args, code, out, errs, tc.want)
		}
	}
	// The shipped example needs no secret files for route tests.
	code, out, errs := runCLI("route", "test", "--config.file=../../examples/node-healer.yml", "node_healer=true", "remediation=cordon", "node=n3")
	if code != 0 || out != "route cordon → runbook cordon on node n3\n" {
		t.Errorf("example: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := runCLI("route", "test", cfg, "novalue"); code != 1 || !strings.Contains(errs, `label "novalue": want name=value`) {
		t.Errorf("bad label: %d %q", code, errs)
	}
}

func TestHelpAndUsageErrors(t *testing.T) {
	for _, cmd := range [][]string{{"--help"}, {"serve", "--help"}, {"check-config", "--help"}, {"route", "test", "--help"}, {"runs", "show", "--help"}} {
		code, _, errs := runCLI(cmd...)
		if code != 0 || !strings.Contains(errs, "usage: receiver") {
			t.Errorf("%v: exit %d %q", cmd, code, errs)
		}
	}
	code, _, errs := runCLI("serve", "--web.listen-adress=:1")
	if code != 2 || !strings.Contains(errs, "unknown long flag") {
		t.Errorf("misspelt flag: %d %q", code, errs)
	}
	if code, _, errs := runCLI("serve", "--config.file=/nonexistent.yml"); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing config: %d %q", code, errs)
	}
}

func TestCheckConfigParams(t *testing.T) {
	for f, want := range map[string]string{
		"testdata/bad.param-name.yml":  `routes[0].params: unknown parameter "drain_timout"`,
		"testdata/bad.param-value.yml": `routes[0].params: drain_timeout: "soon" is not a positive duration`,
	} {
		code, _, errs := runCLI("check-config", f)
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%s: exit %d %q, want %q", f, code, errs, want)
		}
	}
}

// TestExampleChecks: the shipped example passes check-config with the real
// runbook registry and parameter checks (its token path pointed at a file).
func TestExampleChecks(t *testing.T) {
	data, err := os.ReadFile("../../examples/node-healer.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "node-healer.yml")
	if err := os.WriteFile(f, []byte(strings.ReplaceAll(string(data), "/etc/node-healer/webhook-token", tok)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI("check-config", f)
	if code != 0 || !strings.Contains(out, "OK — 6 routes") {
		t.Fatalf("exit %d %q %q", code, out, errs)
	}
}

// TestCheckConfigMissingSecrets: check-config runs where the secrets are
// not mounted: a missing secret file is a warning naming the field (exit
// 0), an empty one still an error; runs/status read only Redis' secrets.
func TestCheckConfigMissingSecrets(t *testing.T) {
	f := "../../internal/config/testdata/bad.token-missing.yml"
	code, out, errs := runCLI("check-config", f)
	if code != 0 || !strings.Contains(out, f+": OK") ||
		!strings.Contains(out, "warning: webhook.auth.bearer_token_file: ") || !strings.Contains(out, "does-not-exist is not readable here (no such file or directory); serve needs it") {
		t.Fatalf("missing token file: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	f = "../../internal/config/testdata/bad.token-empty.yml"
	if code, out, errs := runCLI("check-config", f); code != 1 || !strings.Contains(errs, "webhook.auth.bearer_token_file") || !strings.Contains(errs, "is empty") {
		t.Fatalf("empty token file: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// runs/status: the webhook token is not read; the config loads and the
	// command fails only on Redis (nothing listens on port 1).
	code, _, errs = runCLI("runs", "list", "--config.file", "../../internal/config/testdata/bad.token-missing.yml", "--redis.url", "redis://127.0.0.1:1/0")
	if code != 1 || strings.Contains(errs, "bearer_token_file") || !strings.Contains(errs, "127.0.0.1:1") {
		t.Fatalf("runs list with the token missing: exit %d, stderr %q (want a Redis error, not a token error)", code, errs)
	}
}

// TestCheckConfigInventoryAndWebConfig: check-config validates the BMC
// inventory the config names (a bad entry is an error naming the file, a
// password file not mounted here a warning) and, with --web.config.file,
// the web configuration.
func TestCheckConfigInventoryAndWebConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("token", "t0ken\n")
	cfg := func(inv string) string {
		return write("nh-"+filepath.Base(inv), "webhook: {auth: {bearer_token_file: token}}\nbmc: {inventory_file: "+inv+"}\n"+
			"routes:\n  - name: r\n    matchers: ['alertname=\"NodeKernelDeadlock\"']\n    runbook: reboot\n")
	}
	good := write("inv-good.yml", "defaults: {username: admin, password_file: /nonexistent/bmc-password}\nnodes:\n  n1: {endpoint: 'https://10.0.0.1'}\n  n2: {endpoint: 'https://10.0.0.2'}\n")
	code, out, errs := runCLI("check-config", cfg(good))
	if code != 0 || !strings.Contains(out, "BMC inventory: 2 nodes") ||
		strings.Count(out, "password_file /nonexistent/bmc-password") != 1 || !strings.Contains(out, "is not readable here") {
		t.Fatalf("inventory with the password not mounted: exit %d, stdout %q, stderr %q (want OK, one warning)", code, out, errs)
	}
	bad := write("inv-bad.yml", "defaults: {username: admin, password_file: /nonexistent/bmc-password}\nnodes:\n  n1: {endpoint: 'ftp://10.0.0.1'}\n")
	code, out, errs = runCLI("check-config", cfg(bad))
	if code != 1 || !strings.Contains(errs, "bmc.inventory_file") || !strings.Contains(errs, "scheme must be https or http") {
		t.Fatalf("bad inventory: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	web := write("web.yml", "basic_auth_users:\n  ops: [not, a, string]\n")
	code, _, errs = runCLI("check-config", "--web.config.file", web, cfg(good))
	if code != 1 || !strings.Contains(errs, "--web.config.file "+web) {
		t.Fatalf("bad web config: exit %d, stderr %q", code, errs)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web = write("web-good.yml", "basic_auth_users:\n  ops: "+string(hash)+"\n")
	code, out, errs = runCLI("check-config", "--web.config.file", web, cfg(good))
	if code != 0 || !strings.Contains(out, "web-good.yml: OK — web configuration") {
		t.Fatalf("good web config: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestPrintRunManual: runs show says who asked for a manual run and why.
func TestPrintRunManual(t *testing.T) {
	var out bytes.Buffer
	PrintRun(&out, &runbooks.Run{ID: "r1", Runbook: "reboot", Node: "n1", Route: "manual", Status: runbooks.StatusPending,
		RequestedBy: "alice@laptop", Reason: "disk firmware update"})
	if !strings.Contains(out.String(), "requested by alice@laptop: disk firmware update\n") {
		t.Fatalf("runs show:\n%s", out.String())
	}
	out.Reset()
	PrintRun(&out, &runbooks.Run{ID: "r2", Runbook: "reboot", Node: "n1", Route: "deadlock", Status: runbooks.StatusPending})
	if strings.Contains(out.String(), "requested by") {
		t.Fatalf("an alert's run printed a requester:\n%s", out.String())
	}
}
