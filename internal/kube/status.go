package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/node-healer/node-healer/internal/runbooks"
)

var (
	_ runbooks.NodeStatusReader = (*Nodes)(nil)
	_ runbooks.NodeWriter       = (*Nodes)(nil)
)

// Status reads the Node and its kubelet Lease (kube-node-lease).
func (k *Nodes) Status(ctx context.Context, name string) (*runbooks.NodeStatus, error) {
	n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", runbooks.ErrNodeNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, classify(err))
	}
	st := &runbooks.NodeStatus{Name: n.Name, BootID: n.Status.NodeInfo.BootID, Unschedulable: n.Spec.Unschedulable,
		Conditions: map[string]string{}}
	for _, c := range n.Status.Conditions {
		st.Conditions[string(c.Type)] = string(c.Status)
		if c.Type == corev1.NodeReady {
			st.Ready, st.ReadySince = string(c.Status), c.LastTransitionTime.Time
		}
	}
	for _, t := range n.Spec.Taints {
		st.Taints = append(st.Taints, t.Key)
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

func leaseRenewed(l *coordinationv1.Lease) (t time.Time) {
	if l.Spec.RenewTime != nil {
		return l.Spec.RenewTime.Time
	}
	return t
}

// Annotate merges annotation and label changes (nil deletes).
func (k *Nodes) Annotate(ctx context.Context, name string, annotations, labels map[string]*string) error {
	for attempt := 0; ; attempt++ {
		meta := map[string]any{}
		if _, fenced := runbooks.FenceOf(ctx); fenced {
			// Fenced: check the node's fence and write at the version read.
			n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err = patchErr(err, name, "get"); err != nil {
				return err
			}
			fence, err := runbooks.CheckNodeFence(ctx, name, n.Annotations)
			if err != nil {
				return err
			}
			annotations = withAnnotation(annotations, runbooks.AnnotationFence, fence)
			meta["resourceVersion"] = n.ResourceVersion
		}
		if len(annotations) > 0 {
			meta["annotations"] = annotations
		}
		if len(labels) > 0 {
			meta["labels"] = labels
		}
		patch, err := json.Marshal(map[string]any{"metadata": meta})
		if err != nil {
			return err
		}
		_, err = k.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "node-healer"})
		if apierrors.IsConflict(err) && attempt < 5 {
			continue
		}
		return patchErr(err, name, "annotate")
	}
}

// SetTaint adds or removes a taint, at the resourceVersion read; with a
// fence in ctx it is refused when the node carries a higher one.
func (k *Nodes) SetTaint(ctx context.Context, name, key, value, effect string, present bool) error {
	for attempt := 0; ; attempt++ {
		n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node %s: %w", name, classify(err))
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
		if apierrors.IsConflict(err) && attempt < 5 {
			continue
		}
		if err != nil {
			return fmt.Errorf("taint node %s: %w", name, classify(err))
		}
		return nil
	}
}
