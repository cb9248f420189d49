package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	listerv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// NodeCache answers "is this node in the cluster?" from an informer, so
// the webhook does not call the API server per alert, and serves the
// runbooks' waits on node state (Nodes.Status: the Node and its kubelet
// Lease in kube-node-lease) from a node and a Lease informer instead of
// two GETs per waiting run per second.
type NodeCache struct {
	lister       listerv1.NodeLister
	synced       cache.InformerSynced
	leases       coordlisters.LeaseLister
	leasesSynced cache.InformerSynced
}

// ErrNotSynced means the cache cannot answer yet (API server unreachable
// since start-up).
var ErrNotSynced = fmt.Errorf("node cache not synced with the API server")

// StartNodeCache starts a node informer; it runs until ctx ends.
func StartNodeCache(ctx context.Context, client kubernetes.Interface, resync time.Duration) *NodeCache {
	f := informers.NewSharedInformerFactory(client, resync)
	inf := f.Core().V1().Nodes()
	lf := informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithNamespace(corev1.NamespaceNodeLease))
	linf := lf.Coordination().V1().Leases()
	c := &NodeCache{lister: inf.Lister(), synced: inf.Informer().HasSynced,
		leases: linf.Lister(), leasesSynced: linf.Informer().HasSynced}
	f.Start(ctx.Done())
	lf.Start(ctx.Done())
	return c
}

// statusSynced: both informers have been filled once, so Status can be
// answered from them.
func (c *NodeCache) statusSynced() bool {
	return c != nil && c.synced() && c.leasesSynced()
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
