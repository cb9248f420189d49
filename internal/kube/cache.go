package kube

import (
	"context"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// NodeCache answers "is this node in the cluster?" from an informer, so
// the webhook does not call the API server per alert, and serves the
// runbooks' waits on node state (Nodes.Status: the Node and its kubelet
// Lease in kube-node-lease) without two GETs per waiting run per second.
//
// Nodes come from one informer of every node. Leases do not: every
// kubelet renews its Lease every 10 s, so a cache of every Lease decodes
// 100 updates a second at 1,000 nodes — four fifths of an idle replica's
// CPU in the fleet-scale benchmark (docs/benchmarks.md, "Fleet scale").
// Only the nodes a run is waiting on need theirs: the first Status of a
// node starts a watch of that one Lease (a field-selected list and watch,
// two requests), Status reads it from then on, and a watch nobody has read
// for LeaseWatchIdle is stopped.
type NodeCache struct {
	lister   listerv1.NodeLister
	synced   cache.InformerSynced
	informer cache.SharedIndexInformer

	ctx    context.Context
	client kubernetes.Interface
	// LeaseWatchIdle: a node's Lease watch unread this long is stopped.
	leaseIdle time.Duration
	mu        sync.Mutex
	leases    map[string]*leaseWatch
}

// LeaseWatchIdle is how long a node's Lease watch outlives its last read
// (a run reads it every second while it waits on the node).
const LeaseWatchIdle = 2 * time.Minute

type leaseWatch struct {
	store    cache.Store
	synced   cache.InformerSynced
	stop     context.CancelFunc
	lastRead time.Time // under NodeCache.mu
}

// ErrNotSynced means the cache cannot answer yet (API server unreachable
// since start-up).
var ErrNotSynced = fmt.Errorf("node cache not synced with the API server")

// StartNodeCache starts a node informer; it and the Lease watches run
// until ctx ends.
func StartNodeCache(ctx context.Context, client kubernetes.Interface, resync time.Duration) *NodeCache {
	return startNodeCache(ctx, client, resync, LeaseWatchIdle)
}

func startNodeCache(ctx context.Context, client kubernetes.Interface, resync, leaseIdle time.Duration) *NodeCache {
	f := informers.NewSharedInformerFactory(client, resync)
	inf := f.Core().V1().Nodes()
	c := &NodeCache{lister: inf.Lister(), synced: inf.Informer().HasSynced, informer: inf.Informer(),
		ctx: ctx, client: client, leaseIdle: leaseIdle, leases: map[string]*leaseWatch{}}
	f.Start(ctx.Done())
	go c.stopIdleLeaseWatches()
	return c
}

// OnLabelRemoved calls fn, on the informer's handler goroutine, with the
// name of each node that loses label: an update whose old Node had it and
// whose new one has not. A removal while the watch was down is seen at
// the relist, as such an update; a node deleted with the label is not
// reported.
func (c *NodeCache) OnLabelRemoved(label string, fn func(node string)) error {
	_, err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			o, ok := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok || !ok2 {
				return
			}
			if _, had := o.Labels[label]; had {
				if _, has := n.Labels[label]; !has {
					fn(n.Name)
				}
			}
		},
	})
	return err
}

// leaseRenewed is the renewTime of node's kubelet Lease from its watch,
// started now if there is none. ok is false until the watch has synced
// (the caller GETs the Lease meanwhile).
func (c *NodeCache) leaseRenewed(node string) (renewed time.Time, ok bool) {
	c.mu.Lock()
	w := c.leases[node]
	if w == nil {
		w = c.watchLease(node)
		c.leases[node] = w
	}
	w.lastRead = time.Now()
	c.mu.Unlock()
	if !w.synced() {
		return renewed, false
	}
	obj, exists, err := w.store.GetByKey(corev1.NamespaceNodeLease + "/" + node)
	if err != nil || !exists {
		return renewed, err == nil // no Lease: zero time, known
	}
	return leaseRenewed(obj.(*coordinationv1.Lease)), true
}

func (c *NodeCache) watchLease(node string) *leaseWatch {
	sel := fields.OneTermEqualSelector("metadata.name", node).String()
	leases := c.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return leases.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return leases.Watch(ctx, o)
		},
	}
	store, ctl := cache.NewInformerWithOptions(cache.InformerOptions{ListerWatcher: lw, ObjectType: &coordinationv1.Lease{},
		Handler: cache.ResourceEventHandlerFuncs{}})
	ctx, stop := context.WithCancel(c.ctx)
	go ctl.RunWithContext(ctx)
	return &leaseWatch{store: store, synced: ctl.HasSynced, stop: stop}
}

// stopIdleLeaseWatches stops, every half LeaseWatchIdle, the watches
// nobody has read for LeaseWatchIdle.
func (c *NodeCache) stopIdleLeaseWatches() {
	t := time.NewTicker(c.leaseIdle / 2)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			for node, w := range c.leases {
				if now.Sub(w.lastRead) >= c.leaseIdle {
					w.stop()
					delete(c.leases, node)
				}
			}
			c.mu.Unlock()
		}
	}
}

// leaseWatchSynced reports whether node's Lease watch runs and has synced.
func (c *NodeCache) leaseWatchSynced(node string) bool {
	c.mu.Lock()
	w := c.leases[node]
	c.mu.Unlock()
	return w != nil && w.synced()
}

// LeaseWatches is the number of nodes whose Lease is being watched.
func (c *NodeCache) LeaseWatches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.leases)
}

// WaitSynced waits until the cache is filled or ctx ends.
func (c *NodeCache) WaitSynced(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.synced)
}

// NodeExists reports whether a node is known. ErrNotSynced when the cache
// has never synced.
func (c *NodeCache) NodeExists(_ context.Context, name string) (bool, error) {
	if !c.synced() {
		return false, ErrNotSynced
	}
	_, err := c.lister.Get(name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Count is the number of nodes in the cache.
func (c *NodeCache) Count() int {
	ns, _ := c.lister.List(labels.Everything())
	return len(ns)
}

// Synced reports whether the cache has been filled once.
func (c *NodeCache) Synced() bool { return c.synced() }

// List returns every cached node.
func (c *NodeCache) List() ([]*corev1.Node, error) { return c.lister.List(labels.Everything()) }
