package kube

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Unit tests of the drain (run under -short): policy, ordering, API error
// handling and the watch, with client-go's fake clientset.

func testPod(name string, mut ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name),
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", Controller: ptr.To(true)}}},
		Spec:   corev1.PodSpec{NodeName: "n1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, m := range mut {
		m(p)
	}
	return p
}

func unmanaged(p *corev1.Pod) { p.OwnerReferences = nil }

func prio(v int32) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Spec.Priority = &v } }

func phase(ph corev1.PodPhase) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Status.Phase = ph } }

func TestClassifyPod(t *testing.T) {
	ds := func(p *corev1.Pod) { p.OwnerReferences[0].Kind = "DaemonSet" }
	critical := func(p *corev1.Pod) { p.Spec.PriorityClassName = "system-node-critical" }
	deleting := func(p *corev1.Pod) { p.DeletionTimestamp = ptr.To(metav1.Now()) }
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		o       DrainOptions
		action  podAction
		reasons []string
	}{
		{"managed", testPod("a"), DrainOptions{}, actionEvict, nil},
		{"mirror", testPod("a", mirror, unmanaged), DrainOptions{Force: true}, actionSkip, []string{ReasonMirror}},
		{"daemonset", testPod("a", ds, withEmptyDir), DrainOptions{}, actionSkip, []string{ReasonDaemonSet}},
		{"critical", testPod("a", critical), DrainOptions{}, actionSkip, []string{ReasonCritical}},
		{"critical allowed", testPod("a", critical), DrainOptions{EvictCritical: true}, actionEvict, nil},
		{"terminating", testPod("a", deleting, unmanaged), DrainOptions{}, actionWait, []string{ReasonTerminating}},
		{"finished unmanaged emptyDir", testPod("a", phase(corev1.PodFailed), unmanaged, withEmptyDir), DrainOptions{}, actionEvict, nil},
		{"unmanaged", testPod("a", unmanaged), DrainOptions{}, actionRefuse, []string{ReasonUnmanaged}},
		{"unmanaged forced", testPod("a", unmanaged), DrainOptions{Force: true}, actionEvict, nil},
		{"emptyDir", testPod("a", withEmptyDir), DrainOptions{}, actionRefuse, []string{ReasonEmptyDir}},
		{"both", testPod("a", withEmptyDir, unmanaged), DrainOptions{}, actionRefuse, []string{ReasonUnmanaged, ReasonEmptyDir}},
		{"emptyDir allowed", testPod("a", withEmptyDir), DrainOptions{DeleteEmptyDirData: true}, actionEvict, nil},
		{"hostPath needs no option", testPod("a", withHostPath), DrainOptions{}, actionEvict, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			action, reasons := classifyPod(tc.pod, tc.o)
			if action != tc.action || !slices.Equal(reasons, tc.reasons) {
				t.Errorf("classifyPod = %v %v, want %v %v", action, reasons, tc.action, tc.reasons)
			}
		})
	}
}

func TestWaves(t *testing.T) {
	var pods []PlannedPod
	for _, p := range []*corev1.Pod{
		testPod("high", prio(1000)),
		testPod("none-b"),
		testPod("none-a"),
		testPod("neg", prio(-5)),
		testPod("done", prio(2000), phase(corev1.PodSucceeded)),
		testPod("cache", prio(0), withEmptyDir),
		testPod("db", prio(1000), withHostPath),
		testPod("logs", prio(1000), withHostPath),
	} {
		pods = append(pods, describePod(p))
	}
	var got []string
	for _, w := range waves(pods) {
		var names []string
		for _, p := range w.Pods {
			names = append(names, p.Name)
		}
		got = append(got, strings.Join(names, ","))
	}
	want := []string{"done", "neg", "none-a,none-b", "high", "cache", "db,logs"}
	if !slices.Equal(got, want) {
		t.Errorf("waves = %q, want %q", got, want)
	}
}

func TestPlanErr(t *testing.T) {
	p := &DrainPlan{Node: "n1", Refused: []PlannedPod{
		{Namespace: "a", Name: "x", Reasons: []string{ReasonUnmanaged}},
		{Namespace: "a", Name: "y", Reasons: []string{ReasonUnmanaged, ReasonEmptyDir}},
	}}
	err := p.Err()
	if !errors.Is(err, ErrDrainRefused) {
		t.Fatalf("Err() = %v", err)
	}
	want := "drain refused: node n1: 2 pod(s) not managed by a controller would be lost for good (allow with the force option): a/x, a/y; " +
		"1 pod(s) with emptyDir data would lose it (allow with the delete-emptydir-data option): a/y"
	if err.Error() != want {
		t.Errorf("Err() =\n%s\nwant\n%s", err, want)
	}
	if (&DrainPlan{}).Err() != nil {
		t.Error("empty plan has an error")
	}
}

func TestDrainTimeoutError(t *testing.T) {
	err := error(&DrainTimeoutError{Node: "n1", Timeout: time.Minute, Remaining: []RemainingPod{
		{Namespace: "a", Name: "db", PDB: "db-pdb"}, {Namespace: "a", Name: "web", Evicted: true}, {Namespace: "b", Name: "x"}}})
	if !errors.Is(err, ErrDrainTimeout) {
		t.Error("not ErrDrainTimeout")
	}
	want := "drain timed out: node n1 after 1m0s, 3 pod(s) still there: a/db (blocked by PodDisruptionBudget a/db-pdb), a/web (evicted, still terminating), b/x"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
}

func TestBackoff(t *testing.T) {
	var b backoff
	base := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, d := range base {
		got := b.next()
		if got < d*8/10 || got > d*12/10 {
			t.Errorf("delay %d = %s, want %s ±20%%", i, got, d)
		}
	}
	for range 100 {
		if d := b.next(); d > 6*time.Second {
			t.Fatalf("delay %s above the cap", d)
		}
	}
}

// pdbRefusal is the eviction handler's 429 for an exhausted budget.
func pdbRefusal(name string) error {
	err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
	err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
		Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget " + name + " needs 1 healthy pods and has 1 currently"})
	return err
}

func multiplePDBs() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusInternalServerError,
		Message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."}}
}

func TestEvictOnce(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		name string
		err  error
		want evictOutcome
		pdb  string
		is   error
	}{
		{"accepted", nil, evictDone, "", nil},
		{"not found", apierrors.NewNotFound(gr, "p"), evictGone, "", nil},
		{"uid changed", apierrors.NewConflict(gr, "p", errors.New("uid precondition")), evictGone, "", nil},
		{"pdb", pdbRefusal("web-pdb"), evictBlocked, "web-pdb", nil},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), evictRetry, "", nil},
		{"unavailable", apierrors.NewServiceUnavailable("etcd"), evictRetry, "", nil},
		{"multiple pdbs", multiplePDBs(), evictFailed, "", ErrMultiplePDBs},
		{"forbidden", apierrors.NewForbidden(gr, "p", errors.New("rbac")), evictFailed, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset()
			var got *policyv1.Eviction
			cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if a.GetSubresource() != "eviction" {
					return false, nil, nil
				}
				got = a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
				return true, nil, tc.err
			})
			d := &Drainer{Client: cs}
			rc := &requestCounter{}
			outcome, pdb, err := d.evictOnce(context.Background(), describePod(testPod("p")), rc)
			if outcome != tc.want || pdb != tc.pdb {
				t.Errorf("outcome %v pdb %q (err %v), want %v %q", outcome, pdb, err, tc.want, tc.pdb)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want %v", err, tc.is)
			}
			if got == nil || got.Name != "p" || got.DeleteOptions == nil || *got.DeleteOptions.Preconditions.UID != "uid-p" {
				t.Errorf("eviction sent = %+v, want one for p with a UID precondition", got)
			}
			if got.DeleteOptions.GracePeriodSeconds != nil {
				t.Errorf("eviction overrides the grace period: %d", *got.DeleteOptions.GracePeriodSeconds)
			}
			if rc.get() != 1 {
				t.Errorf("%d requests counted, want 1", rc.get())
			}
		})
	}
}

// fakeWatches hands out controllable watches and records their options.
type fakeWatches struct {
	mu       sync.Mutex
	watchers []*watch.FakeWatcher
	rvs      []string
	ch       chan *watch.FakeWatcher
}

func newFakeWatches(cs *fake.Clientset) *fakeWatches {
	fw := &fakeWatches{ch: make(chan *watch.FakeWatcher, 10)}
	cs.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		w := watch.NewFakeWithChanSize(10, false)
		fw.mu.Lock()
		fw.watchers = append(fw.watchers, w)
		fw.rvs = append(fw.rvs, a.(k8stesting.WatchActionImpl).GetWatchRestrictions().ResourceVersion)
		fw.mu.Unlock()
		fw.ch <- w
		return true, w, nil
	})
	return fw
}

func (fw *fakeWatches) next(t *testing.T) *watch.FakeWatcher {
	t.Helper()
	select {
	case w := <-fw.ch:
		return w
	case <-time.After(5 * time.Second):
		t.Fatal("no watch started")
		return nil
	}
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not gone", what)
	}
}

func assertOpen(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: gone too early", what)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestGoneWatch(t *testing.T) {
	a, b, c, d := testPod("a"), testPod("b"), testPod("c"), testPod("d")
	cs := fake.NewClientset(d) // what the relist will find: only d
	fw := newFakeWatches(cs)
	rc := &requestCounter{}
	g := newGoneWatch(&Drainer{Client: cs}, rc, "n1", "100")
	goneA := g.track("ns", "a", a.UID)
	goneB := g.track("ns", "b", b.UID)
	goneC := g.track("ns", "c", c.UID)
	goneD := g.track("ns", "d", d.UID)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.run(ctx); close(done) }()

	w1 := fw.next(t)
	withRV := func(p *corev1.Pod, rv string) *corev1.Pod { p = p.DeepCopy(); p.ResourceVersion = rv; return p }
	w1.Modify(withRV(a, "101")) // a is being deleted: not gone yet
	assertOpen(t, "a after a modification", goneA)
	w1.Delete(withRV(a, "102"))
	waitClosed(t, "a deleted", goneA)
	replacement := withRV(b, "103")
	replacement.UID = "uid-b-2" // a StatefulSet pod back under the same name
	w1.Add(replacement)
	waitClosed(t, "b replaced", goneB)

	// The watch ends: it resumes from the last resourceVersion seen.
	w1.Stop()
	w2 := fw.next(t)
	// Too old: list again; c is not in the list (gone), d is.
	w2.Error(&apierrors.NewResourceExpired("too old").ErrStatus)
	waitClosed(t, "c missing from the relist", goneC)
	assertOpen(t, "d, still listed", goneD)
	fw.next(t)
	fw.mu.Lock()
	rvs := slices.Clone(fw.rvs)
	fw.mu.Unlock()
	if len(rvs) != 3 || rvs[0] != "100" || rvs[1] != "103" || rvs[2] == "" {
		t.Errorf("watch resourceVersions = %q, want 100, 103, then the relist's", rvs)
	}
	cancel()
	<-done
	if got := rc.get(); got != 4 {
		t.Errorf("%d requests counted, want 4 (3 watches, 1 list)", got)
	}
}

// TestDrainFake runs a whole drain against the fake clientset: a budget
// refuses the low-priority pod twice; the next wave goes ahead meanwhile;
// the drain ends when every pod is gone; requests are counted.
func TestDrainFake(t *testing.T) {
	low, high, done := testPod("low", prio(1)), testPod("high", prio(10)), testPod("done", phase(corev1.PodSucceeded))
	cs := fake.NewClientset(low, high, done)
	var (
		mu      sync.Mutex
		order   []string
		refusal = 2
	)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		mu.Lock()
		order = append(order, ev.Name)
		if ev.Name == "low" && refusal > 0 {
			refusal--
			mu.Unlock()
			return true, nil, pdbRefusal("low-pdb")
		}
		mu.Unlock()
		// The "kubelet": the pod goes at once.
		return true, nil, cs.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "ns", ev.Name)
	})
	res, err := (&Drainer{Client: cs}).Drain(context.Background(), "n1", DrainOptions{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"done", "low", "high", "low", "low"}
	if !slices.Equal(order, want) {
		t.Errorf("eviction calls = %v, want %v", order, want)
	}
	if len(res.Evicted) != 3 || res.Blocked != 2 || res.Evicted[2].Name != "low" || res.Evicted[2].Attempts != 3 {
		t.Errorf("result: evicted %+v, blocked %d; want low last after 3 attempts, 2 refusals", res.Evicted, res.Blocked)
	}
	if res.APIRequests != 7 { // list, watch, 5 evictions
		t.Errorf("%d API requests, want 7", res.APIRequests)
	}
}

func TestDrainUnavailable(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("down")
	})
	_, err := (&Drainer{Client: cs}).Drain(context.Background(), "n1", DrainOptions{})
	if !errors.Is(err, runbooks.ErrUnavailable) {
		t.Errorf("err = %v, want runbooks.ErrUnavailable", err)
	}
}

// TestDrainWatchForbidden: without the right to watch pods the drain
// fails before it evicts anything.
func TestDrainWatchForbidden(t *testing.T) {
	cs := fake.NewClientset(testPod("a"))
	cs.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("rbac"))
	})
	evictions := 0
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		evictions++
		return true, nil, nil
	})
	_, err := (&Drainer{Client: cs}).Drain(context.Background(), "n1", DrainOptions{Timeout: 10 * time.Second})
	if !apierrors.IsForbidden(err) || evictions != 0 {
		t.Errorf("err = %v after %d evictions, want Forbidden before any", err, evictions)
	}
}
