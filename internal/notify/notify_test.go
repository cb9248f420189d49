package notify_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/notify"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

type fakeRuns struct {
	mu   sync.Mutex
	runs []*runbooks.Run
}

func (f *fakeRuns) List(context.Context, int) ([]*runbooks.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs, nil
}

func (f *fakeRuns) set(rs ...*runbooks.Run) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs = rs
}

type fakeNodes struct {
	mu    sync.Mutex
	nodes []*corev1.Node
}

func (f *fakeNodes) list() ([]*corev1.Node, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes, nil
}

func (f *fakeNodes) set(ns ...*corev1.Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes = ns
}

func escalatedNode(name, reason, run string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels:      map[string]string{runbooks.LabelNeedsAttention: "true"},
		Annotations: map[string]string{runbooks.AnnotationNeedsAttention: reason, runbooks.AnnotationEscalatedBy: run}}}
}

type env struct {
	am     *testenv.Alertmanager
	humans *testenv.Paged
	redis  *testenv.Redis
	runs   *fakeRuns
	nodes  *fakeNodes
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server and alertmanager")
	}
	h, am := testenv.NewPagedAlertmanager(t)
	return &env{am: am, humans: h, redis: testenv.NewRedis(t),
		runs: &fakeRuns{}, nodes: &fakeNodes{}}
}

func (e *env) notifier(t *testing.T, replica string, reg prometheus.Registerer, mod func(*notify.Options)) *notify.Notifier {
	t.Helper()
	c := e.redis.Client(0)
	t.Cleanup(func() { c.Close() })
	o := notify.Options{Targets: []notify.Target{{URLs: []string{e.am.URL}}}, Redis: c, Prefix: "nh", Replica: replica,
		Runs: e.runs, Nodes: e.nodes.list, ExternalURL: "http://node-healer:9095", RunbookURL: "https://example.org/README.md",
		HeldAfter: 10 * time.Minute, Interval: time.Second, Registerer: reg}
	if mod != nil {
		mod(&o)
	}
	n, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An escalated node raises NodeHealerEscalated at a real Alertmanager,
// which delivers it by its route with the node, run and reason; when the
// operator removes the label, the next round resolves it.
func TestEscalatedUntilLabelRemoved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.runs.set(&runbooks.Run{ID: "r1", Node: "n1", Runbook: "reboot", Status: runbooks.StatusEscalated})
	e.nodes.set(escalatedNode("n1", "no BMC for a node that needs a power-cycle", "r1"))
	n := e.notifier(t, "a", nil, nil)
	if err := n.Round(ctx); err != nil {
		t.Fatal(err)
	}
	alerts, err := e.am.Alerts(ctx)
	if err != nil || len(alerts) != 1 {
		t.Fatalf("alerts at Alertmanager: %+v, %v", alerts, err)
	}
	a := alerts[0]
	want := map[string]string{"alertname": "NodeHealerEscalated", "severity": "critical", "source": "node-healer", "node": "n1", "run": "r1",
		"runbook": "reboot", "reason": "no BMC for a node that needs a power-cycle"}
	for k, v := range want {
		if a.Labels[k] != v {
			t.Errorf("label %s=%q, want %q (labels %v)", k, a.Labels[k], v, a.Labels)
		}
	}
	if a.GeneratorURL != "http://node-healer:9095/api/v1/runs/r1" || a.Annotations["runbook_url"] != "https://example.org/README.md#nodehealerescalated" ||
		!strings.Contains(a.Annotations["summary"], "n1") {
		t.Errorf("links and summary: %q %v", a.GeneratorURL, a.Annotations)
	}
	waitFor(t, "the escalation delivered to the humans' receiver", 10*time.Second, func() bool {
		return e.humans.Find("firing", "NodeHealerEscalated", "n1") != nil
	})

	e.nodes.set() // kubectl label node n1 node-healer.io/needs-attention-
	if err := n.Round(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resolution delivered", 10*time.Second, func() bool {
		return e.humans.Find("resolved", "NodeHealerEscalated", "n1") != nil
	})
	if alerts, _ := e.am.Alerts(ctx); len(alerts) != 0 {
		t.Errorf("alerts still active after the label went: %+v", alerts)
	}
}

// Held runs raise NodeHealerRunHeld only past held_after, resolve when the
// run proceeds; failed runs raise NodeHealerRunFailed; remediating runs
// only when asked for.
func TestRunAlerts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	held := &runbooks.Run{ID: "held", Node: "n2", Runbook: "reboot", Status: runbooks.StatusHeld,
		Hold: &runbooks.Hold{Kind: "silence", Reason: "silenced by ops", Since: now.Add(-11 * time.Minute)}}
	young := &runbooks.Run{ID: "young", Node: "n3", Runbook: "reboot", Status: runbooks.StatusDeferred,
		Hold: &runbooks.Hold{Kind: "breaker", Since: now.Add(-time.Minute)}}
	failed := &runbooks.Run{ID: "failed", Node: "n4", Runbook: "reboot", Status: runbooks.StatusFailed, Error: "step drain: boom", Updated: now.Add(-time.Minute)}
	oldFail := &runbooks.Run{ID: "old", Node: "n5", Runbook: "reboot", Status: runbooks.StatusFailed, Error: "x", Updated: now.Add(-2 * time.Hour)}
	running := &runbooks.Run{ID: "running", Node: "n6", Runbook: "reboot", Status: runbooks.StatusRunning, Created: now}
	e.runs.set(held, young, failed, oldFail, running)

	n := e.notifier(t, "a", nil, nil)
	cur, err := n.Current(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range cur {
		got[a.Labels["run"]] = a.Labels["alertname"] + "/" + a.Labels["reason"]
	}
	if fmt.Sprint(got) != fmt.Sprint(map[string]string{"held": "NodeHealerRunHeld/silence", "failed": "NodeHealerRunFailed/step drain: boom"}) {
		t.Fatalf("alerts %v", got)
	}
	withRemediating := e.notifier(t, "b", nil, func(o *notify.Options) { o.Remediating = true })
	cur, _ = withRemediating.Current(ctx, now)
	found := false
	for _, a := range cur {
		found = found || (a.Labels["alertname"] == "NodeHealerRemediating" && a.Labels["severity"] == "info" && a.Labels["node"] == "n6")
	}
	if !found {
		t.Errorf("no NodeHealerRemediating with remediating on: %+v", cur)
	}

	if err := n.Round(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "NodeHealerRunHeld delivered", 10*time.Second, func() bool {
		l := e.humans.Find("firing", "NodeHealerRunHeld", "n2")
		return l != nil && l["run"] == "held"
	})
	held2 := *held
	held2.Status, held2.Hold = runbooks.StatusRunning, nil // the silence expired, the run goes on
	e.runs.set(&held2, failed)
	if err := n.Round(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "NodeHealerRunHeld resolved", 10*time.Second, func() bool {
		return e.humans.Find("resolved", "NodeHealerRunHeld", "n2") != nil
	})
}

// Two replicas: one posts (the lease holder), Alertmanager holds one
// alert; the other takes over when the first stops.
func TestOneReplicaPosts(t *testing.T) {
	e := newEnv(t)
	e.nodes.set(escalatedNode("n7", "hung", "r7"))
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := e.notifier(t, "a", regA, func(o *notify.Options) { o.Interval = 200 * time.Millisecond })
	b := e.notifier(t, "b", regB, func(o *notify.Options) { o.Interval = 200 * time.Millisecond })
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA := make(chan struct{})
	go func() { a.Run(ctxA); close(doneA) }()
	time.Sleep(300 * time.Millisecond) // a takes the lease first
	go b.Run(ctxB)
	posts := func(reg *prometheus.Registry) float64 {
		mfs, _ := reg.Gather()
		total := 0.0
		for _, mf := range mfs {
			if mf.GetName() == "node_healer_notify_requests_total" {
				for _, m := range mf.Metric {
					total += m.GetCounter().GetValue()
				}
			}
		}
		return total
	}
	waitFor(t, "several rounds", 10*time.Second, func() bool { return posts(regA) >= 4 })
	if p := posts(regB); p != 0 {
		t.Fatalf("the replica without the lease posted %v times", p)
	}
	alerts, err := e.am.Alerts(context.Background())
	if err != nil || len(alerts) != 1 {
		t.Fatalf("alerts at Alertmanager: %+v, %v", alerts, err)
	}
	stopA()
	<-doneA // releases the lease
	waitFor(t, "the other replica to take over", 10*time.Second, func() bool { return posts(regB) >= 1 })
}

// Alertmanager down: a round fails fast with the error counted; nothing
// piles up, and the next round after it is back delivers.
func TestAlertmanagerDown(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.nodes.set(escalatedNode("n8", "hung", "r8"))
	reg := prometheus.NewRegistry()
	n := e.notifier(t, "a", reg, nil)
	e.am.Stop()
	start := time.Now()
	if err := n.Round(ctx); err == nil {
		t.Fatal("round succeeded with Alertmanager down")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a round against a dead Alertmanager took %s", d)
	}
	if v := testutil.ToFloat64(metric(t, reg, "error")); v != 1 {
		t.Errorf("errors counted: %v", v)
	}
	if err := e.am.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := n.Round(ctx); err != nil {
		t.Fatalf("round after Alertmanager came back: %v", err)
	}
	waitFor(t, "the escalation delivered after the outage", 10*time.Second, func() bool {
		return e.humans.Find("firing", "NodeHealerEscalated", "n8") != nil
	})
}

func metric(t *testing.T, reg *prometheus.Registry, result string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "node_healer_notify_requests_total" {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "result" && l.GetValue() == result {
					return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	t.Fatalf("no node_healer_notify_requests_total{result=%q}", result)
	return nil
}
