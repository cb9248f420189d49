package kube

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaseRequests counts the requests that touch Leases, by verb.
type leaseRequests struct {
	rt http.RoundTripper
	mu sync.Mutex
	n  map[string]int
}

func (l *leaseRequests) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.Path, "/leases") {
		verb := r.Method
		if r.URL.Query().Get("watch") == "true" {
			verb = "WATCH"
		} else if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/leases") {
			verb = "LIST"
		}
		l.mu.Lock()
		l.n[verb]++
		l.mu.Unlock()
	}
	return l.rt.RoundTrip(r)
}

func (l *leaseRequests) count() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.n {
		out[k] = v
	}
	return out
}

// TestLeaseWatchOnDemand: the node cache watches no Lease until a
// node's status is asked for; then that one Lease, through one list and
// one watch, and Status follows its renewals without further requests;
// unread for the idle time, the watch stops, and nothing is requested
// after that.
func TestLeaseWatchOnDemand(t *testing.T) {
	lr := &leaseRequests{n: map[string]int{}}
	ctx, client := wrappedClient(t, func(rt http.RoundTripper) http.RoundTripper { lr.rt = rt; return lr })
	// Nodes kwok does not play: this test renews their Leases itself.
	names := []string{"lease-watched", "lease-other"}
	renew := map[string]time.Time{}
	for i, name := range names {
		if _, err := cluster.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		renew[name] = time.Now().Add(-time.Duration(i+1) * time.Minute).Truncate(time.Microsecond)
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{RenewTime: &metav1.MicroTime{Time: renew[name]}}}
		if _, err := cluster.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, l, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const idle = 2 * time.Second
	c := startNodeCache(ctx, client, 0, idle)
	if !c.WaitSynced(ctx) {
		t.Fatal("node cache not synced")
	}
	time.Sleep(500 * time.Millisecond)
	if got := lr.count(); len(got) != 0 || c.LeaseWatches() != 0 {
		t.Fatalf("before any Status: lease requests %v, watches %d; want none", got, c.LeaseWatches())
	}
	nodes := &Nodes{Client: client, Cache: c}
	st, err := nodes.Status(ctx, names[0])
	if err != nil {
		t.Fatal(err)
	}
	if !st.LeaseRenewed.Equal(renew[names[0]]) {
		t.Fatalf("first Status: LeaseRenewed %v, want %v", st.LeaseRenewed, renew[names[0]])
	}
	// Until the watch has synced Status GETs the Lease; wait for it.
	for deadline := time.Now().Add(10 * time.Second); !c.leaseWatchSynced(names[0]); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the Lease watch did not sync in 10 s")
		}
	}
	// The kubelet renews: Status sees it from the watch.
	next := time.Now().Truncate(time.Microsecond)
	l, err := cluster.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, names[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l.Spec.RenewTime = &metav1.MicroTime{Time: next}
	if _, err := cluster.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st, err := nodes.Status(ctx, names[0])
		if err != nil {
			t.Fatal(err)
		}
		if st.LeaseRenewed.Equal(next) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status still says the Lease was renewed at %v, want %v", st.LeaseRenewed, next)
		}
	}
	got := lr.count()
	// client-go lists through the watch where the server can (WatchList):
	// one WATCH, or a LIST and a WATCH.
	if got["WATCH"] != 1 || got["LIST"] > 1 || got["GET"] > 1 || len(got) > 3 {
		t.Errorf("lease requests for one watched node polled many times: %v; want 1 WATCH, at most 1 LIST, at most 1 GET (before the watch synced)", got)
	}
	if c.LeaseWatches() != 1 {
		t.Errorf("%d lease watches, want 1", c.LeaseWatches())
	}
	// Unread for the idle time: stopped; then nothing more is asked.
	for deadline := time.Now().Add(4 * idle); c.LeaseWatches() != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the lease watch still runs %s after its last read", 4*idle)
		}
	}
	before := lr.count()
	time.Sleep(idle)
	if after := lr.count(); after["LIST"] != before["LIST"] || after["WATCH"] != before["WATCH"] || after["GET"] != before["GET"] {
		t.Errorf("lease requests after the watch stopped: %v, then %v", before, after)
	}
	// Asked again: watched again, still right.
	st, err = nodes.Status(ctx, names[1])
	if err != nil {
		t.Fatal(err)
	}
	if !st.LeaseRenewed.Equal(renew[names[1]]) {
		t.Errorf("other node: LeaseRenewed %v, want %v", st.LeaseRenewed, renew[names[1]])
	}
}
