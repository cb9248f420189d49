package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/node-healer/node-healer/internal/handlers"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

var cluster *testenv.Cluster

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithCluster(m, testenv.ClusterOptions{}, &cluster))
}

const token = "s3cret-token"

// receiver is a node-healer serve process (in-process: runServe) on a
// free port, with its own redis-server, against the shared cluster.
type receiver struct {
	URL   string
	Redis *testenv.Redis
	Log   *bytes.Buffer
	// ConfigFile is the configuration it runs with (reload tests rewrite it).
	ConfigFile string
}

// receiverSetup changes how startReceiverSetup starts a receiver: serve
// options (web config, lifecycle), and how its readiness is asked for.
type receiverSetup struct {
	Options func(*serveOptions)
	Scheme  string       // "https" with a TLS web config
	Client  *http.Client // default http.DefaultClient
	Request func(*http.Request)
}

const defaultRoutes = `
routes:
  - name: deadlock
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: cordon
  - name: uncordon
    matchers: ['alertname="NodeHealerUncordon"']
    runbook: uncordon
  - name: rehearsal
    matchers: ['alertname="NodeRehearsal"']
    runbook: cordon
    dry_run: true
`

func startReceiver(t *testing.T) *receiver {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	rec, _ := startReceiverWith(t, testenv.NewRedis(t), "", defaultRoutes, "test")
	return rec
}

// startReceiverWith runs `serve` in process with the given extra config
// and routes on redis r. stop ends it (as a SIGTERM would); it is also
// called at cleanup.
func startReceiverWith(t *testing.T, r *testenv.Redis, extra, routes, replica string) (*receiver, func()) {
	t.Helper()
	rec, stop := startReceiverOn(t, fmt.Sprintf("redis: {url: %q}", r.URL(0)), extra, routes, replica)
	rec.Redis = r
	return rec, stop
}

// startReceiverOn is startReceiverWith with the config's redis section
// given as it is (a Sentinel or a Cluster topology).
func startReceiverOn(t *testing.T, redisSection, extra, routes, replica string) (*receiver, func()) {
	t.Helper()
	return startReceiverSetup(t, redisSection, extra, routes, replica, receiverSetup{})
}

// startReceiverOpts is startReceiverOn with a hook that adjusts the serve
// options (test-only switches).
func startReceiverOpts(t *testing.T, redisSection, extra, routes, replica string, adjust func(*serveOptions)) (*receiver, func()) {
	t.Helper()
	return startReceiverSetup(t, redisSection, extra, routes, replica, receiverSetup{Options: adjust})
}

// startReceiverSetup is startReceiverOn with setup applied.
func startReceiverSetup(t *testing.T, redisSection, extra, routes, replica string, setup receiverSetup) (*receiver, func()) {
	t.Helper()
	// Where node-exec pods go by default (node_exec.namespace).
	if err := cluster.EnsureNamespace(context.Background(), "node-healer-exec"); err != nil {
		t.Fatal(err)
	}
	if setup.Scheme == "" {
		setup.Scheme = "http"
	}
	if setup.Client == nil {
		setup.Client = http.DefaultClient
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Defaults for what extra does not set: no settle time, quick claims.
	for key, def := range map[string]string{"safety:": "safety: {settle: 10ms, breaker: {max_unhealthy_percent: 100}}", "workers:": "workers: {count: 2, claim_after: 2s}", "locks:": "locks: {ttl: 3s}"} {
		if !strings.Contains(extra, key) {
			extra += "\n" + def
		}
	}
	// Every test here is its own node-healer (its own Redis) on one shared
	// cluster: its reconciler would take other tests' cordoned nodes for
	// orphans. Tests of the reconciler itself live in internal/reconcile.
	if !strings.Contains(extra, "reconcile_interval") {
		extra = strings.Replace(extra, "workers: {", "workers: {reconcile_interval: 10m, ", 1)
	}
	webhook := "webhook: {auth: {bearer_token_file: token}}"
	if strings.Contains(extra, "webhook:") { // the test's own (e.g. basic auth alone)
		webhook = ""
	}
	cfg := fmt.Sprintf("%s\n%s\n%s\n%s", redisSection, webhook, extra, routes)
	cfgFile := filepath.Join(dir, "node-healer.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	rec := &receiver{URL: fmt.Sprintf("%s://127.0.0.1:%d", setup.Scheme, port), Log: &bytes.Buffer{}, ConfigFile: cfgFile}
	so := serveOptions{ConfigFile: cfgFile, ListenAddress: fmt.Sprintf("127.0.0.1:%d", port),
		Kubeconfig: cluster.Kubeconfig, Replica: replica, Log: logOptions{Format: "logfmt", Level: "debug"}}
	if setup.Options != nil {
		setup.Options(&so)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	lw := &syncWriter{w: rec.Log}
	go func() {
		done <- runServe(ctx, so, lw)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve returned %v", err)
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("receiver %s log:\n%s", replica, lw.String())
		}
		clearEscalations(t)
	})
	waitFor(t, "receiver ready", 30*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v", err)
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, rec.URL+"/-/ready", nil)
		if setup.Request != nil {
			setup.Request(req)
		}
		resp, err := setup.Client.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return rec, stop
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func amPayload(alertname, node, fp string) string {
	return fmt.Sprintf(`{"version":"4","groupKey":"{}:{}","status":"firing","receiver":"node-healer",
"groupLabels":{"alertname":%[1]q},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am:9093",
"alerts":[{"status":"firing","labels":{"alertname":%[1]q,"node":%[2]q,"severity":"critical"},"annotations":{},
"startsAt":"2026-11-26T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prom/graph","fingerprint":%[3]q}]}`, alertname, node, fp)
}

func (r *receiver) post(t *testing.T, body string) (int, handlers.Reply) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.URL+"/webhook", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var reply handlers.Reply
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &reply); err != nil {
			t.Fatalf("reply %s: %v", b, err)
		}
		if len(reply.Alerts) == 0 {
			t.Fatalf("reply without alert results: %s", b)
		}
	} else {
		t.Logf("webhook answered %d: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, reply
}

func (r *receiver) run(t *testing.T, id string) *runbooks.Run {
	t.Helper()
	resp, err := http.Get(r.URL + "/api/v1/runs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil
	}
	run := &runbooks.Run{}
	if err := json.NewDecoder(resp.Body).Decode(run); err != nil {
		t.Fatal(err)
	}
	return run
}

func (r *receiver) waitRun(t *testing.T, id string) *runbooks.Run {
	t.Helper()
	var run *runbooks.Run
	waitFor(t, "run "+id+" to finish", 30*time.Second, func() bool {
		run = r.run(t, id)
		return run != nil && run.Status.Final()
	})
	return run
}

func node(t *testing.T, name string) *corev1.Node {
	t.Helper()
	n, err := cluster.Client.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// nodeEvents lists the events.k8s.io/v1 Events regarding the node, as
// core/v1 Events (Message is the note), one element per occurrence: a
// series of count n is there n times. node-healer writes Events in the
// background, so it polls: until the list is non-empty and has not
// changed for 200ms, or for 3s while it is empty.
func nodeEvents(t *testing.T, name string) []corev1.Event {
	t.Helper()
	list := func() ([]corev1.Event, string) {
		evs, err := cluster.Client.EventsV1().Events("").List(context.Background(), metav1.ListOptions{FieldSelector: "regarding.name=" + name + ",regarding.kind=Node"})
		if err != nil {
			t.Fatal(err)
		}
		var out []corev1.Event
		var key strings.Builder
		for _, e := range evs.Items {
			n := int32(1)
			if e.Series != nil {
				n = e.Series.Count
			}
			fmt.Fprintf(&key, "%s/%s/%d ", e.Name, e.ResourceVersion, n)
			ev := corev1.Event{ObjectMeta: e.ObjectMeta, InvolvedObject: e.Regarding, Reason: e.Reason, Message: e.Note, Type: e.Type,
				Action: e.Action, EventTime: e.EventTime, Count: n, ReportingController: e.ReportingController, ReportingInstance: e.ReportingInstance}
			for range n {
				out = append(out, ev)
			}
		}
		return out, key.String()
	}
	start := time.Now()
	evs, key := list()
	since := start
	for {
		switch {
		case len(evs) > 0 && time.Since(since) >= 200*time.Millisecond,
			len(evs) == 0 && time.Since(start) >= 3*time.Second,
			time.Since(start) >= 10*time.Second:
			return evs
		}
		time.Sleep(50 * time.Millisecond)
		if next, nextKey := list(); nextKey != key {
			evs, key, since = next, nextKey, time.Now()
		}
	}
}

func createNodes(t *testing.T, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cluster.CreateNodes(ctx, names...); err != nil {
		t.Fatal(err)
	}
}

func TestWebhookCordonsNode(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "cordon-n1")
	code, reply := rec.post(t, amPayload("NodeKernelDeadlock", "cordon-n1", "fp-cordon-1"))
	if code != 200 || reply.Accepted != 1 {
		t.Fatalf("%d %+v", code, reply)
	}
	run := rec.waitRun(t, reply.Alerts[0].RunID)
	if run.Status != runbooks.StatusSucceeded || len(run.Timeline) != 1 || run.Timeline[0].Outcome != runbooks.OutcomeDone {
		t.Fatalf("run %+v", run)
	}
	n := node(t, "cordon-n1")
	if !n.Spec.Unschedulable || n.Annotations[runbooks.AnnotationCordonedBy] != run.ID || n.Annotations[runbooks.AnnotationWasUnschedulable] != "false" {
		t.Fatalf("node not cordoned with ownership: unschedulable=%v annotations=%v", n.Spec.Unschedulable, n.Annotations)
	}
	evs := nodeEvents(t, "cordon-n1")
	if len(evs) != 1 || evs[0].Reason != "NodeHealerCordon" || !strings.Contains(evs[0].Message, run.ID) {
		t.Fatalf("events %+v", evs)
	}
	if !strings.Contains(rec.Log.String(), "msg=audit") {
		t.Error("no audit line logged")
	}
}

func TestOperatorCordonSurvivesUncordon(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "op-n1")
	ctx := context.Background()
	n := node(t, "op-n1")
	n.Spec.Unschedulable = true // the operator's cordon
	if _, err := cluster.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, reply := rec.post(t, amPayload("NodeKernelDeadlock", "op-n1", "fp-op-1"))
	rec.waitRun(t, reply.Alerts[0].RunID)
	_, reply = rec.post(t, amPayload("NodeHealerUncordon", "op-n1", "fp-op-2"))
	run := rec.waitRun(t, reply.Alerts[0].RunID)
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("uncordon run %+v", run)
	}
	n = node(t, "op-n1")
	if !n.Spec.Unschedulable {
		t.Fatal("node-healer removed an operator's cordon")
	}
	if _, ok := n.Annotations[runbooks.AnnotationCordonedBy]; ok {
		t.Errorf("ownership annotation left behind: %v", n.Annotations)
	}
}

func TestDuplicateDeliveriesStartOneRun(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "dup-n1")
	body := amPayload("NodeKernelDeadlock", "dup-n1", "fp-dup-1")
	var mu sync.Mutex
	accepted, dup := 0, 0
	var wg sync.WaitGroup
	// Two Alertmanager replicas each deliver (and retry) the same notification.
	for range 2 {
		wg.Go(func() {
			for range 4 {
				code, reply := rec.post(t, body)
				if code != 200 {
					t.Errorf("status %d", code)
					return
				}
				mu.Lock()
				accepted += reply.Accepted
				if reply.Alerts[0].Reason == "duplicate" {
					dup++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if accepted != 1 || dup != 7 {
		t.Fatalf("accepted %d duplicates %d, want 1 and 7", accepted, dup)
	}
	id := runbooks.RunID("fp-dup-1", time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	rec.waitRun(t, id)
	resp, err := http.Get(rec.URL + "/api/v1/runs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Runs []*runbooks.Run }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	if len(list.Runs) != 1 || list.Runs[0].Attempts != 1 {
		t.Fatalf("runs: %d (want 1, picked up once)", len(list.Runs))
	}
	if evs := nodeEvents(t, "dup-n1"); len(evs) != 1 {
		t.Fatalf("%d events, want 1", len(evs))
	}
}

func TestRedisDownAnswers503(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "redis-n1")
	rec.Redis.Stop()
	code, _ := rec.post(t, amPayload("NodeKernelDeadlock", "redis-n1", "fp-redis-1"))
	if code != 503 {
		t.Fatalf("status %d with redis down, want 503", code)
	}
	resp, err := http.Get(rec.URL + "/-/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("/-/ready %d with redis down", resp.StatusCode)
	}
	time.Sleep(500 * time.Millisecond)
	if n := node(t, "redis-n1"); n.Spec.Unschedulable {
		t.Fatal("node changed although the alert was refused")
	}
	if err := rec.Redis.Restart(); err != nil {
		t.Fatal(err)
	}
	// Alertmanager retries: now it is accepted and acted on.
	var reply handlers.Reply
	waitFor(t, "delivery to succeed after redis is back", 20*time.Second, func() bool {
		code, reply = rec.post(t, amPayload("NodeKernelDeadlock", "redis-n1", "fp-redis-1"))
		return code == 200
	})
	if reply.Accepted != 1 {
		t.Fatalf("%+v", reply)
	}
	rec.waitRun(t, reply.Alerts[0].RunID)
	if n := node(t, "redis-n1"); !n.Spec.Unschedulable {
		t.Fatal("not cordoned after redis came back")
	}
}

func TestDryRunRouteChangesNothing(t *testing.T) {
	rec := startReceiver(t)
	createNodes(t, "dry-n1")
	_, reply := rec.post(t, amPayload("NodeRehearsal", "dry-n1", "fp-dry-1"))
	run := rec.waitRun(t, reply.Alerts[0].RunID)
	if !run.DryRun || run.Timeline[0].Outcome != runbooks.OutcomeDryRun {
		t.Fatalf("run %+v", run)
	}
	if n := node(t, "dry-n1"); n.Spec.Unschedulable || len(n.Annotations[runbooks.AnnotationCordonedBy]) > 0 {
		t.Fatal("dry run changed the node")
	}
	if evs := nodeEvents(t, "dry-n1"); len(evs) != 0 {
		t.Fatalf("dry run emitted events: %+v", evs)
	}
}

func TestUnknownNodeIgnored(t *testing.T) {
	rec := startReceiver(t)
	code, reply := rec.post(t, amPayload("NodeKernelDeadlock", "no-such-node", "fp-ghost"))
	if code != 200 || reply.Accepted != 0 || reply.Alerts[0].Reason != "unknown_node" {
		t.Fatalf("%d %+v", code, reply)
	}
	resp, err := http.Get(rec.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), `node_healer_alerts_total{outcome="unknown_node"} 1`) {
		t.Errorf("metrics do not count the unknown node")
	}
}

// clearEscalations removes node-healer.io/needs-attention from every node
// once a test's receiver stopped, as the operator would: the tests share
// one cluster, and an escalated node counts as unhealthy in every later
// test's blast-radius breaker.
func clearEscalations(t *testing.T) {
	ctx := context.Background()
	nodes, err := cluster.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: runbooks.LabelNeedsAttention})
	if err != nil {
		t.Logf("clear escalations: %v", err)
		return
	}
	patch := []byte(`{"metadata":{"labels":{"` + runbooks.LabelNeedsAttention + `":null}}}`)
	for _, n := range nodes.Items {
		if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Logf("clear escalation of %s: %v", n.Name, err)
		}
	}
}
