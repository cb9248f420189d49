package kube

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// contentTypes records the Content-Type of every response.
type contentTypes struct {
	rt http.RoundTripper
	mu sync.Mutex
	n  map[string]int
}

func (c *contentTypes) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if resp != nil {
		c.mu.Lock()
		c.n[resp.Header.Get("Content-Type")]++
		c.mu.Unlock()
	}
	return resp, err
}

// TestConfigSpeaksProtobuf: a client built by Config reads and watches in
// protobuf against the real API server, and the node cache (informers)
// works on it.
func TestConfigSpeaksProtobuf(t *testing.T) {
	ct := &contentTypes{n: map[string]int{}}
	ctx, client := wrappedClient(t, func(rt http.RoundTripper) http.RoundTripper { ct.rt = rt; return ct })
	name := "proto-node"
	if err := cluster.CreateNodes(ctx, name); err != nil {
		t.Fatal(err)
	}
	c := StartNodeCache(ctx, client, 0)
	if !c.WaitSynced(ctx) {
		t.Fatal("node cache not synced")
	}
	ok, err := c.NodeExists(ctx, name)
	if err != nil || !ok {
		t.Fatalf("NodeExists(%s) = %v, %v", name, ok, err)
	}
	n, err := (&Nodes{Client: client}).GetNode(ctx, name)
	if err != nil || n.Name != name {
		t.Fatalf("GetNode: %v %v", n, err)
	}
	// The node's kubelet Lease, from a watch of its own.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := (&Nodes{Client: client, Cache: c}).Status(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !st.LeaseRenewed.IsZero() && c.LeaseWatches() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Lease renewal seen for kwok node %s in 20 s (watches %d)", name, c.LeaseWatches())
		}
	}
	// The Lease watch's response arrives on its own goroutine: wait for
	// it (two watch streams: the node informer's and the Lease's).
	watches := func() int {
		ct.mu.Lock()
		defer ct.mu.Unlock()
		return ct.n[runtime.ContentTypeProtobuf+";stream=watch"]
	}
	for deadline := time.Now().Add(10 * time.Second); watches() < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("responses by content type %v; want two protobuf watch streams (nodes, the Lease)", ct.n)
		}
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	proto, other := 0, 0
	for typ, n := range ct.n {
		// application/vnd.kubernetes.protobuf, and ;stream=watch for
		// watches (informers list through a watch when the server can).
		if strings.HasPrefix(typ, runtime.ContentTypeProtobuf) {
			proto += n
		} else {
			other += n
		}
	}
	if proto < 4 || other > 0 { // the node informer, the GETs, the Lease watch
		t.Errorf("responses by content type %v; want only protobuf, at least 4", ct.n)
	}
}

// wrappedClient is a client built by Config on the test cluster whose
// transport wrap wraps, and a context ending with the test (at most a
// minute). It checks Config asks for protobuf.
func wrappedClient(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) (context.Context, kubernetes.Interface) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs kube-apiserver (integration)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cfg, err := Config(cluster.Kubeconfig, 50, 100)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ContentType != runtime.ContentTypeProtobuf {
		t.Fatalf("ContentType %q; want protobuf", cfg.ContentType)
	}
	cfg.Wrap(wrap)
	client, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, client
}
