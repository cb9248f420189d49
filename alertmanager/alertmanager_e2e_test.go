package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// webhookSink stands in for node-healer: it records what Alertmanager posts.
type webhookSink struct {
	mu    sync.Mutex
	auth  []string
	nodes map[string]string // node → alertname, from delivered alerts
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Version string `json:"version"`
		Alerts  []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	for _, a := range msg.Alerts {
		s.nodes[a.Labels["node"]] = a.Labels["alertname"]
	}
	w.WriteHeader(http.StatusOK)
}

func (s *webhookSink) delivered(node string) (string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[node], append([]string(nil), s.auth...)
}

// TestWithRealAlertmanager runs alertmanager.yml in the real Alertmanager,
// with the webhook pointed at a local sink: remediation alerts are delivered
// with the bearer token from the credentials file, and the inhibition rules
// hold (cluster-wide alert → remediation alerts; NotReady → same node).
func TestWithRealAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("runs alertmanager")
	}
	bin, err := testenv.ToolPath("alertmanager")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sink := &webhookSink{nodes: map[string]string{}}
	srv := httptest.NewServer(sink)
	defer srv.Close()

	token := filepath.Join(dir, "webhook-token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("alertmanager.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"http://node-healer.node-healer.svc:9095/webhook", srv.URL+"/webhook",
		"/etc/node-healer/webhook-token", token,
	).Replace(string(b))
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfgPath,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--cluster.listen-address=",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("alertmanager log:\n%s", out)
		}
	})
	waitReady(t, base+"/-/ready")

	// 1. A remediation alert alone reaches node-healer, with the token;
	// node-healer's own alerts posted with it never do, even one carrying
	// the remediation labels.
	post(t, base, alert("NodeKernelDeadlock", "n3", true),
		selfAlert("NodeHealerEscalated", "n5", true),
		selfAlert("NodeHealerRunFailed", "n6", false))
	deadline := time.Now().Add(30 * time.Second)
	for {
		name, auth := sink.delivered("n3")
		if name == "NodeKernelDeadlock" {
			for _, a := range auth {
				if a != "Bearer s3cret" {
					t.Errorf("webhook Authorization = %q, want %q", a, "Bearer s3cret")
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("NodeKernelDeadlock for n3 was not delivered to the webhook within 30 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Had they been routed to node-healer, their groups (group_wait 1s)
	// would have been flushed with n3's.
	time.Sleep(3 * time.Second)
	for _, n := range []string{"n5", "n6"} {
		if name, _ := sink.delivered(n); name != "" {
			t.Errorf("node-healer's own alert %s for %s was delivered to node-healer's webhook", name, n)
		}
	}

	// 2. Inhibitions.
	post(t, base,
		map[string]any{"labels": map[string]string{"alertname": "NodeHealerManyNodesUnhealthy", "severity": "critical"}},
		alert("NodeKernelDeadlock", "n1", true),
		alert("NodeNotReady", "n2", true),
		map[string]any{"labels": map[string]string{"alertname": "NodeDiskIOSaturated", "node": "n2", "device": "sda", "severity": "warning"}},
		map[string]any{"labels": map[string]string{"alertname": "NodeDiskIOSaturated", "node": "n4", "device": "sda", "severity": "warning"}},
		selfAlert("NodeHealerEscalated", "n2", false),
	)
	want := map[string]bool{ // alertname/node → inhibited
		"NodeHealerManyNodesUnhealthy/": false,
		"NodeKernelDeadlock/n1":         true,  // by the cluster-wide alert
		"NodeKernelDeadlock/n3":         true,  // likewise, now that it fires
		"NodeNotReady/n2":               true,  // remediation: by the cluster-wide alert
		"NodeDiskIOSaturated/n2":        true,  // by NodeNotReady on n2
		"NodeDiskIOSaturated/n4":        false, // other node, not remediation
		"NodeHealerEscalated/n2":        false, // node-healer's own: never muted by NodeNotReady
		"NodeHealerEscalated/n5":        false, // nor by the cluster-wide alert, node_healer or not
		"NodeHealerRunFailed/n6":        false,
	}
	var got map[string]bool
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got = inhibited(t, base); equal(got, want) {
			return
		}
	}
	t.Errorf("inhibited alerts:\n got %v\nwant %v", sorted(got), sorted(want))
}

func alert(name, node string, remediation bool) map[string]any {
	l := map[string]string{"alertname": name, "node": node, "severity": "critical"}
	if remediation {
		l["node_healer"], l["remediation"] = "true", "reboot"
	}
	return map[string]any{"labels": l}
}

// selfAlert is an alert node-healer pushes about a node; withRemediation
// adds the labels of a remediation alert, which must not change its routing.
func selfAlert(name, node string, withRemediation bool) map[string]any {
	l := map[string]string{"alertname": name, "node": node, "run": "r-" + node, "runbook": "reboot",
		"reason": "test", "severity": "critical", "source": "node-healer"}
	if withRemediation {
		l["node_healer"], l["remediation"] = "true", "reboot"
	}
	return map[string]any{"labels": l}
}

func post(t *testing.T, base string, alerts ...map[string]any) {
	t.Helper()
	for _, a := range alerts {
		a["startsAt"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		a["endsAt"] = time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	}
	b, _ := json.Marshal(alerts)
	resp, err := http.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /api/v2/alerts: %s: %s", resp.Status, body)
	}
}

func inhibited(t *testing.T, base string) map[string]bool {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, a := range alerts {
		out[a.Labels["alertname"]+"/"+a.Labels["node"]] = len(a.Status.InhibitedBy) > 0
	}
	return out
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready at %s within 30 s (last error %v)", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func equal(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if got, ok := a[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func sorted(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%v ", k, m[k])
	}
	return b.String()
}
