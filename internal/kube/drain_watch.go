package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// goneWatch tells when pods leave a node, from ONE watch on the node's
// pods (fieldSelector spec.nodeName) started at the plan's List
// resourceVersion, so no deletion between the List and the watch is
// missed. A pod is gone when it is deleted or when a pod of the same name
// with another UID appears (a StatefulSet replacement). If the watch ends
// it resumes from the last resourceVersion seen; if that is too old
// (410 Gone) it lists again and compares.
type goneWatch struct {
	d    *Drainer
	rc   *requestCounter
	node string
	// fatal, if set, ends the drain on an error retries cannot fix.
	fatal func(error)

	ready     chan struct{} // closed once the first watch is established
	readyOnce sync.Once

	mu    sync.Mutex
	rv    string
	pods  map[types.UID]*watched
	byKey map[string]types.UID // namespace/name → UID tracked
}

type watched struct {
	key  string
	gone chan struct{}
}

func newGoneWatch(d *Drainer, rc *requestCounter, node, rv string) *goneWatch {
	return &goneWatch{d: d, rc: rc, node: node, rv: rv, ready: make(chan struct{}),
		pods: map[types.UID]*watched{}, byKey: map[string]types.UID{}}
}

// track registers a pod from the plan; the channel is closed when it is gone.
func (g *goneWatch) track(ns, name string, uid types.UID) <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if w, ok := g.pods[uid]; ok {
		return w.gone
	}
	w := &watched{key: ns + "/" + name, gone: make(chan struct{})}
	g.pods[uid] = w
	g.byKey[w.key] = uid
	return w.gone
}

// markGone must be called with mu held.
func (g *goneWatch) markGone(uid types.UID) {
	w, ok := g.pods[uid]
	if !ok {
		return
	}
	delete(g.pods, uid)
	if g.byKey[w.key] == uid {
		delete(g.byKey, w.key)
	}
	close(w.gone)
}

// run watches until ctx ends.
func (g *goneWatch) run(ctx context.Context) {
	sel := fields.OneTermEqualSelector("spec.nodeName", g.node).String()
	pods := g.d.Client.CoreV1().Pods(metav1.NamespaceAll)
	retry := backoff{}
	for ctx.Err() == nil {
		g.mu.Lock()
		rv := g.rv
		g.mu.Unlock()
		if rv == "" {
			if err := g.relist(ctx, sel); err != nil {
				g.d.log().Warn("drain: list pods to resume the watch", "node", g.node, "err", err)
				retry.sleep(ctx)
				continue
			}
			retry = backoff{}
			continue
		}
		g.rc.add()
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				g.setRV("")
				continue
			}
			if ctx.Err() != nil {
				continue
			}
			if err := classify(err); !errors.Is(err, runbooks.ErrUnavailable) && g.fatal != nil {
				// Forbidden, bad request…: retrying will not help.
				g.fatal(fmt.Errorf("watch pods on node %s: %w", g.node, err))
				return
			}
			g.d.log().Warn("drain: watch pods", "node", g.node, "err", err)
			retry.sleep(ctx)
			continue
		}
		retry = backoff{}
		g.readyOnce.Do(func() { close(g.ready) })
		g.consume(ctx, w)
		w.Stop()
	}
}

func (g *goneWatch) setRV(rv string) {
	g.mu.Lock()
	g.rv = rv
	g.mu.Unlock()
}

// consume handles events until the watch ends or ctx is done.
func (g *goneWatch) consume(ctx context.Context, w watch.Interface) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.ResultChan():
			if !ok {
				return
			}
			if ev.Type == watch.Error {
				if status := apierrors.FromObject(ev.Object); apierrors.IsResourceExpired(status) || apierrors.IsGone(status) {
					g.setRV("")
				}
				return
			}
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			g.mu.Lock()
			g.rv = pod.ResourceVersion
			switch ev.Type {
			case watch.Deleted:
				g.markGone(pod.UID)
			case watch.Added, watch.Modified:
				if uid, ok := g.byKey[pod.Namespace+"/"+pod.Name]; ok && uid != pod.UID {
					g.markGone(uid)
				}
			}
			g.mu.Unlock()
		}
	}
}

// relist replaces a lost watch position: tracked pods absent from the
// List (or present with another UID) are gone.
func (g *goneWatch) relist(ctx context.Context, sel string) error {
	g.rc.add()
	list, err := g.d.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return err
	}
	present := make(map[types.UID]bool, len(list.Items))
	for i := range list.Items {
		present[list.Items[i].UID] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for uid := range g.pods {
		if !present[uid] {
			g.markGone(uid)
		}
	}
	g.rv = list.ResourceVersion
	return nil
}

// backoff is the retry delay for 429s and transient errors: 500 ms
// doubling to 5 s, each delay jittered by ±20% so that pods blocked by the
// same budget do not retry in lockstep.
type backoff struct{ n int }

const (
	backoffInitial = 500 * time.Millisecond
	backoffMax     = 5 * time.Second
)

func (b *backoff) next() time.Duration {
	d := backoffInitial << min(b.n, 8)
	b.n++
	d = min(d, backoffMax)
	return jitter(d)
}

// sleep waits for the next delay or until ctx is done.
func (b *backoff) sleep(ctx context.Context) bool {
	t := time.NewTimer(b.next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
