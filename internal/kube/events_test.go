package kube

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func TestActionOfAndNote(t *testing.T) {
	a1, a2 := actionOf("NodeHealerHeld", "held: silenced"), actionOf("NodeHealerHeld", "held: window")
	if !strings.HasPrefix(a1, "Held-") || a1 == a2 || a1 != actionOf("NodeHealerHeld", "held: silenced") {
		t.Errorf("actions %q %q: want Held-<hash of the note>, equal only for equal notes", a1, a2)
	}
	if a := actionOf("DeployTest", "x"); !strings.HasPrefix(a, "DeployTest-") {
		t.Errorf("action %q", a)
	}
	long := strings.Repeat("é", 600) // 1200 bytes
	n := truncateNote(long)
	if len(n) > noteLimit || !strings.HasSuffix(n, "…") || !strings.HasPrefix(long, strings.TrimSuffix(n, "…")) {
		t.Errorf("truncated note: %d bytes, %q…", len(n), n[:20])
	}
	if truncateNote("short") != "short" {
		t.Error("a short note was changed")
	}
}

// nodeEventsV1 lists the events.k8s.io/v1 Events regarding a Node.
func nodeEventsV1(t *testing.T, c kubernetes.Interface, node string) []eventsv1.Event {
	t.Helper()
	l, err := c.EventsV1().Events(metav1.NamespaceDefault).List(t.Context(),
		metav1.ListOptions{FieldSelector: "regarding.kind=Node,regarding.name=" + node})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

func waitEvents(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func uidOf(t *testing.T, node string) func(string) types.UID {
	t.Helper()
	n, err := cluster.Client.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return func(name string) types.UID {
		if name == node {
			return n.UID
		}
		return ""
	}
}

// TestEventOnNode: a cordon Event is an events.k8s.io/v1 Event regarding
// the Node (with its UID), from node-healer.io/receiver and this replica,
// and the queries of kubectl describe node and kubectl events --for
// node/NAME (core/v1 field selectors) find it.
func TestEventOnNode(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: needs kube-apiserver")
	}
	ctx := t.Context()
	const name = "events-cordon"
	if err := cluster.CreateNodes(ctx, name); err != nil {
		t.Fatal(err)
	}
	uids := uidOf(t, name)
	// The UID from the node informer, as the receiver does.
	cache := StartNodeCache(ctx, cluster.Client, 0)
	if !cache.WaitSynced(ctx) {
		t.Fatal("node cache did not sync")
	}
	if got := cache.NodeUID(name); got != uids(name) || got == "" {
		t.Fatalf("NodeCache.NodeUID(%s) = %q, want %q", name, got, uids(name))
	}
	if got := cache.NodeUID("events-uncached"); got != "" {
		t.Fatalf("NodeCache.NodeUID of an unknown node = %q", got)
	}
	e := NewEvents(cluster.Client, EventOptions{Instance: "replica-a", NodeUID: cache.NodeUID})
	defer e.Stop(5 * time.Second)
	nodes := &Nodes{Client: cluster.Client, Instance: "replica-a", Events: e}
	note := "node-healer run r-1 (reboot): cordoned"
	if err := nodes.Event(ctx, name, corev1.EventTypeNormal, "NodeHealerCordon", note); err != nil {
		t.Fatal(err)
	}
	var evs []eventsv1.Event
	waitEvents(t, "the cordon Event", 10*time.Second, func() bool {
		evs = nodeEventsV1(t, cluster.Client, name)
		return len(evs) > 0
	})
	if len(evs) != 1 {
		t.Fatalf("%d Events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	want := corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: name, UID: uids(name)}
	if ev.Regarding != want {
		t.Errorf("regarding %+v, want %+v", ev.Regarding, want)
	}
	if ev.ReportingController != ReportingController || ev.ReportingInstance != "replica-a" {
		t.Errorf("reported by %q/%q, want %s/replica-a", ev.ReportingController, ev.ReportingInstance, ReportingController)
	}
	if ev.Type != corev1.EventTypeNormal || ev.Reason != "NodeHealerCordon" || ev.Note != note || !strings.HasPrefix(ev.Action, "Cordon-") ||
		ev.Series != nil || ev.EventTime.IsZero() || ev.Namespace != metav1.NamespaceDefault {
		t.Errorf("event %+v", ev)
	}
	// kubectl describe node: involvedObject name, kind and the node's UID.
	// kubectl events --for node/NAME: kind, apiVersion and name.
	for _, sel := range []string{
		fmt.Sprintf("involvedObject.name=%s,involvedObject.namespace=,involvedObject.kind=Node,involvedObject.uid=%s", name, uids(name)),
		fmt.Sprintf("involvedObject.kind=Node,involvedObject.apiVersion=v1,involvedObject.name=%s", name),
	} {
		l, err := cluster.Client.CoreV1().Events("").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 1 || l.Items[0].Message != note {
			t.Errorf("core/v1 query %s: %+v", sel, l.Items)
		}
	}

	// A node the cache does not know: its name as UID, as the kubelet does.
	const other = "events-uncached"
	if err := nodes.Event(ctx, other, corev1.EventTypeWarning, "NodeHealerEscalated", "needs a human"); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, "the uncached node's Event", 10*time.Second, func() bool {
		evs = nodeEventsV1(t, cluster.Client, other)
		return len(evs) == 1
	})
	if evs[0].Regarding.UID != other || evs[0].Type != corev1.EventTypeWarning {
		t.Errorf("uncached node's Event: %+v", evs[0])
	}

	// Not Normal/Warning: refused at once, counted.
	if err := nodes.Event(ctx, name, "Info", "NodeHealerCordon", "x"); err == nil {
		t.Error("an Info event was accepted")
	}
	if got := testutil.ToFloat64(e.dropped.WithLabelValues(DropInvalid)); got != 1 {
		t.Errorf("dropped{invalid} = %v, want 1", got)
	}
}

// TestEventsAggregate: 100 holds of one kind on one node are ONE Event
// object, a series. What client-go's events library writes at once: the
// first occurrence (create, no series) and the second (patch, series
// count 2); occurrences 3..100 are counted in memory (its count is written
// when the series has been quiet 6 minutes, or every 30). So the API
// server holds exactly one object with series.count == 2, written with
// exactly one create and one patch — unless the two raced, which the
// library resolves with a retry. Holds of another kind, and events with
// other notes, are objects of their own.
func TestEventsAggregate(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: needs kube-apiserver")
	}
	ctx := t.Context()
	const name = "events-holds"
	if err := cluster.CreateNodes(ctx, name); err != nil {
		t.Fatal(err)
	}
	e := NewEvents(cluster.Client, EventOptions{Instance: "replica-a", NodeUID: uidOf(t, name)})
	defer e.Stop(5 * time.Second)
	const held = "a run is held before a destructive step: silenced"
	for range 100 {
		if err := e.Event(ctx, name, corev1.EventTypeWarning, "NodeHealerHeld", held); err != nil {
			t.Fatal(err)
		}
	}
	var evs []eventsv1.Event
	// 15s: a create/patch race costs the library one retry, 10s ± 25%.
	waitEvents(t, "one Event with series.count 2", 15*time.Second, func() bool {
		evs = nodeEventsV1(t, cluster.Client, name)
		return len(evs) == 1 && evs[0].Series != nil && evs[0].Series.Count == 2
	})
	// Nothing more is written for the other 98 (give it a moment to show).
	time.Sleep(500 * time.Millisecond)
	evs = nodeEventsV1(t, cluster.Client, name)
	if len(evs) != 1 || evs[0].Series == nil || evs[0].Series.Count != 2 || evs[0].Note != held || evs[0].Reason != "NodeHealerHeld" {
		t.Fatalf("after 100 holds: %d Events, want one with series.count 2: %+v", len(evs), evs)
	}
	creates, patches := e.sink.creates.Load(), e.sink.patches.Load()
	t.Logf("100 holds: %d creates, %d patches; series %+v", creates, patches, evs[0].Series)
	if creates < 1 || patches < 1 || creates+patches > 4 {
		t.Errorf("%d creates and %d patches for 100 holds; want 1 and 1 (2 and 2 after a race)", creates, patches)
	}

	// Another hold kind, and events whose notes differ, are their own objects.
	if err := e.Event(ctx, name, corev1.EventTypeWarning, "NodeHealerHeld", "a run is held before a destructive step: window"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := e.Event(ctx, name, corev1.EventTypeNormal, "NodeHealerCordon", fmt.Sprintf("node-healer run r-%d: cordoned", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitEvents(t, "5 Events", 10*time.Second, func() bool { return len(nodeEventsV1(t, cluster.Client, name)) == 5 })
	time.Sleep(200 * time.Millisecond)
	if evs := nodeEventsV1(t, cluster.Client, name); len(evs) != 5 {
		t.Fatalf("%d Events, want 5: the series, the other hold kind, 3 cordons", len(evs))
	}
}

// TestEventsStop: Stop writes what was accepted before it, refuses what
// comes after; a write the API server refuses is counted, not silent.
func TestEventsStop(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: needs kube-apiserver")
	}
	ctx := t.Context()
	const name = "events-stop"
	reg := prometheus.NewRegistry()
	e := NewEvents(cluster.Client, EventOptions{Instance: "replica-a", Registerer: reg})
	for i := range 5 {
		if err := e.Event(ctx, name, corev1.EventTypeNormal, "NodeHealerCordon", fmt.Sprintf("run %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	e.Stop(10 * time.Second)
	if evs := nodeEventsV1(t, cluster.Client, name); len(evs) != 5 {
		t.Errorf("%d Events written by Stop, want 5", len(evs))
	}
	if err := e.Event(ctx, name, corev1.EventTypeNormal, "NodeHealerCordon", "late"); !errors.Is(err, errEventsStopped) {
		t.Errorf("Event after Stop: %v", err)
	}
	if got := testutil.ToFloat64(e.dropped.WithLabelValues(DropStopped)); got != 1 {
		t.Errorf("dropped{stopped} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "node_healer_events_dropped_total", "node_healer_event_write_errors_total"); err != nil || n != 5 {
		t.Errorf("registered series: %d, %v", n, err)
	}

	// A user without any rights: the API server refuses (Forbidden), the
	// library does not retry; counted as dropped and as a write error.
	cfg := rest.CopyConfig(cluster.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "nobody"}
	nobody, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := NewEvents(nobody, EventOptions{Instance: "replica-b"})
	defer d.Stop(time.Second)
	if err := d.Event(ctx, name, corev1.EventTypeNormal, "NodeHealerCordon", "forbidden"); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, "the refused write counted", 10*time.Second, func() bool {
		return testutil.ToFloat64(d.dropped.WithLabelValues(DropRejected)) == 1
	})
	if got := testutil.ToFloat64(d.sink.errors.WithLabelValues("create")); got != 1 {
		t.Errorf("write errors{create} = %v, want 1", got)
	}
}
