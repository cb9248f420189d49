package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	listerv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
)

// Observer watches what node-healer does from outside: the nodes through
// an informer of the harness's own, Redis (the breaker's shared state,
// the run slots), the BMC simulator, and the runs API.
type Observer struct {
	e     *Env
	nodes listerv1.NodeLister
	slots *locks.Slots
}

// annotationCordonedBy marks a cordon node-healer owns.
const annotationCordonedBy = "node-healer.io/cordoned-by-run"

// NewObserver starts a node informer and waits until it synced.
func NewObserver(ctx context.Context, e *Env) (*Observer, error) {
	f := informers.NewSharedInformerFactory(e.Cluster.Client, 0)
	inf := f.Core().V1().Nodes()
	o := &Observer{e: e, nodes: inf.Lister(), slots: locks.NewSlots(e.RDB, Prefix)}
	_ = inf.Informer()
	f.Start(e.ctx.Done())
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.Informer().HasSynced) {
		return nil, fmt.Errorf("harness node informer not synced")
	}
	return o, nil
}

// Cordoned counts unschedulable nodes among names (all nodes if nil), and
// those whose cordon node-healer owns.
func (o *Observer) Cordoned(names []string) (any, byHealer int) {
	var want map[string]bool
	if names != nil {
		want = map[string]bool{}
		for _, n := range names {
			want[n] = true
		}
	}
	list, _ := o.nodes.List(labels.Everything())
	for _, n := range list {
		if want != nil && !want[n.Name] {
			continue
		}
		if n.Spec.Unschedulable {
			any++
			if n.Annotations[annotationCordonedBy] != "" {
				byHealer++
			}
		}
	}
	return any, byHealer
}

// Node returns a node from the informer.
func (o *Observer) Node(name string) (*corev1.Node, error) { return o.nodes.Get(name) }

// Active is the number of run slots held (safety.max_concurrent_runs).
func (o *Observer) Active(ctx context.Context) (int, error) {
	h, err := o.slots.Holders(ctx, "runs")
	return len(h), err
}

// BreakerOpen reads the breaker's shared state in Redis.
func (o *Observer) BreakerOpen(ctx context.Context) (bool, error) {
	v, err := o.e.RDB.HGet(ctx, Prefix+":breaker", "open").Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return v == "1", err
}

// WaitBreaker polls the breaker every 5 ms until it is open (want true)
// or closed, and returns when that happened.
func (o *Observer) WaitBreaker(ctx context.Context, want bool, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		open, err := o.BreakerOpen(ctx)
		if err == nil && open == want {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("breaker open=%v not seen within %s (last error %v)", want, timeout, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Runs lists up to 1000 runs through a replica's runs API.
func (o *Observer) Runs(ctx context.Context) ([]*runbooks.Run, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.e.Replicas[0].URL+"/api/v1/runs?limit=1000", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/runs: %s", resp.Status)
	}
	var body struct{ Runs []*runbooks.Run }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	return body.Runs, nil
}

// RunsOf keeps the runs on the given nodes, the latest per node.
func RunsOf(runs []*runbooks.Run, nodes []string) map[string]*runbooks.Run {
	want := map[string]bool{}
	for _, n := range nodes {
		want[n] = true
	}
	out := map[string]*runbooks.Run{}
	for _, r := range runs {
		if want[r.Node] && (out[r.Node] == nil || r.Created.After(out[r.Node].Created)) {
			out[r.Node] = r
		}
	}
	return out
}

// CountStatus counts runs by status.
func CountStatus(runs map[string]*runbooks.Run) map[runbooks.Status]int {
	c := map[runbooks.Status]int{}
	for _, r := range runs {
		c[r.Status]++
	}
	return c
}

// Sampler calls f every interval in the background until Stop.
type Sampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func Sample(every time.Duration, f func()) *Sampler {
	s := &Sampler{stop: make(chan struct{})}
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			f()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	})
	return s
}

func (s *Sampler) Stop() { close(s.stop); s.wg.Wait() }
