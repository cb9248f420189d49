package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/node-healer/node-healer/internal/runbooks"
)

var (
	_ runbooks.NodeStatusReader = (*Nodes)(nil)
	_ runbooks.NodeWriter       = (*Nodes)(nil)
)

// Status reads the Node from Cache's informer once it has synced, and
// its kubelet Lease (kube-node-lease) from a watch of that Lease the
// first Status of the node starts (NodeCache: the waits poll every
// second; a watch keeps them current within milliseconds); otherwise, and
// until that watch has synced, with GETs. Writes never use this: they
// read the node from the API server for the resourceVersion they are made
// at.
func (k *Nodes) Status(ctx context.Context, name string) (*runbooks.NodeStatus, error) {
	var st *runbooks.NodeStatus
	if k.Cache != nil && k.Cache.synced() {
		n, err := k.Cache.lister.Get(name)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s", runbooks.ErrNodeNotFound, name)
		}
		if err != nil {
			return nil, fmt.Errorf("node %s from the cache: %w", name, err)
		}
		st = nodeStatus(n)
		if renewed, ok := k.Cache.leaseRenewed(name); ok {
			st.LeaseRenewed = renewed
			return st, nil
		}
	} else {
		n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s", runbooks.ErrNodeNotFound, name)
		}
		if err != nil {
			return nil, fmt.Errorf("get node %s: %w", name, classify(err))
		}
		st = nodeStatus(n)
	}
	l, err := k.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("get lease %s: %w", name, classify(err))
	default:
		st.LeaseRenewed = leaseRenewed(l)
	}
	return st, nil
}

func nodeStatus(n *corev1.Node) *runbooks.NodeStatus {
	st := &runbooks.NodeStatus{Name: n.Name, BootID: n.Status.NodeInfo.BootID, Unschedulable: n.Spec.Unschedulable,
		Conditions: map[string]string{}, Heartbeats: map[string]time.Time{}}
	for _, c := range n.Status.Conditions {
		st.Conditions[string(c.Type)] = string(c.Status)
		st.Heartbeats[string(c.Type)] = c.LastHeartbeatTime.Time
		if c.Type == corev1.NodeReady {
			st.Ready, st.ReadySince = string(c.Status), c.LastTransitionTime.Time
		}
	}
	for _, t := range n.Spec.Taints {
		st.Taints = append(st.Taints, t.Key)
	}
	return st
}

func leaseRenewed(l *coordinationv1.Lease) (t time.Time) {
	if l.Spec.RenewTime != nil {
		return l.Spec.RenewTime.Time
	}
	return t
}

// Annotate merges annotation and label changes (nil deletes). A fenced
// write (runbooks.WithFence) is made at the resourceVersion read with the
// fence check; a conflict re-reads and retries with client-go's
// retry.DefaultBackoff (4 attempts over about 0.3 s), then gives runbooks.ErrConflict.
func (k *Nodes) Annotate(ctx context.Context, name string, annotations, labels map[string]*string) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		meta := map[string]any{}
		ann := annotations
		if _, fenced := runbooks.FenceOf(ctx); fenced {
			// Fenced: check the node's fence and write at the version read.
			n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			fence, err := runbooks.CheckNodeFence(ctx, name, n.Annotations)
			if err != nil {
				return err
			}
			ann = withAnnotation(annotations, runbooks.AnnotationFence, fence)
			meta["resourceVersion"] = n.ResourceVersion
		}
		if len(ann) > 0 {
			meta["annotations"] = ann
		}
		if len(labels) > 0 {
			meta["labels"] = labels
		}
		patch, err := json.Marshal(map[string]any{"metadata": meta})
		if err != nil {
			return err
		}
		_, err = k.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "node-healer"})
		return err
	})
	if errors.Is(err, runbooks.ErrStaleFence) {
		return err
	}
	return patchErr(err, name, "annotate")
}

// SetTaint adds or removes a taint, at the resourceVersion read (conflicts
// retried as in Annotate); with a fence in ctx it is refused when the node
// carries a higher one.
func (k *Nodes) SetTaint(ctx context.Context, name, key, value, effect string, present bool) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var taints []corev1.Taint
		found := false
		for _, t := range n.Spec.Taints {
			if t.Key == key && string(t.Effect) == effect {
				found = true
				if !present {
					continue
				}
			}
			taints = append(taints, t)
		}
		if found == present {
			return nil
		}
		fence, err := runbooks.CheckNodeFence(ctx, name, n.Annotations)
		if err != nil {
			return err
		}
		meta := map[string]any{"resourceVersion": n.ResourceVersion}
		if fence != "" {
			meta["annotations"] = map[string]string{runbooks.AnnotationFence: fence}
		}
		if present {
			now := metav1.Now()
			taints = append(taints, corev1.Taint{Key: key, Value: value, Effect: corev1.TaintEffect(effect), TimeAdded: &now})
		}
		patch, _ := json.Marshal(map[string]any{
			"metadata": meta,
			"spec":     map[string]any{"taints": taints},
		})
		_, err = k.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "node-healer"})
		return err
	})
	if errors.Is(err, runbooks.ErrStaleFence) {
		return err
	}
	return patchErr(err, name, "taint")
}
