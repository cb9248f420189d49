package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Nodes implements runbooks.NodeOps with client-go.
type Nodes struct {
	Client kubernetes.Interface
	// Instance names this replica in Events (reportingInstance).
	Instance string
	// Events records the Events (the receiver starts one per process and
	// stops it on exit). Nil: one is started on the first Event, with
	// Client and Instance, and never stopped (tools and tests).
	Events *Events
	// Cache, when set, answers Status (the waits) from informers.
	Cache *NodeCache

	eventsOnce sync.Once
}

var _ runbooks.NodeOps = (*Nodes)(nil)

// GetNode reads a node from the API server (not a cache: decisions need
// the current resourceVersion).
func (k *Nodes) GetNode(ctx context.Context, name string) (*runbooks.Node, error) {
	n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", runbooks.ErrNodeNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get node %s: %w", name, classify(err))
	}
	return &runbooks.Node{Name: n.Name, Unschedulable: n.Spec.Unschedulable, Labels: n.Labels,
		Annotations: n.Annotations, ResourceVersion: n.ResourceVersion}, nil
}

// SetUnschedulable patches spec.unschedulable and annotations with a
// resourceVersion precondition: a node changed since it was read gives
// runbooks.ErrConflict. When ctx carries a fence (runbooks.WithFence) the
// node is read at that resourceVersion first: a higher fence on the node
// refuses the write (runbooks.ErrStaleFence), otherwise the writer's fence
// is recorded with the change.
func (k *Nodes) SetUnschedulable(ctx context.Context, name, rv string, unschedulable bool, annotations map[string]*string) error {
	fence, err := k.fenceAt(ctx, name, rv)
	if err != nil {
		return err
	}
	if fence != "" {
		annotations = withAnnotation(annotations, runbooks.AnnotationFence, fence)
	}
	meta := map[string]any{"resourceVersion": rv}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta, "spec": map[string]any{"unschedulable": unschedulable}})
	if err != nil {
		return err
	}
	_, err = k.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "node-healer"})
	return patchErr(err, name, "patch")
}

// fenceAt checks ctx's fence against the node at resourceVersion rv and
// returns the annotation value to write ("" without a fence in ctx).
func (k *Nodes) fenceAt(ctx context.Context, name, rv string) (string, error) {
	if _, ok := runbooks.FenceOf(ctx); !ok {
		return "", nil
	}
	n, err := k.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err = patchErr(err, name, "get"); err != nil {
		return "", err
	}
	if rv != "" && n.ResourceVersion != rv {
		return "", fmt.Errorf("%w: node %s", runbooks.ErrConflict, name)
	}
	return runbooks.CheckNodeFence(ctx, name, n.Annotations)
}

func withAnnotation(m map[string]*string, k, v string) map[string]*string {
	out := make(map[string]*string, len(m)+1)
	for key, val := range m {
		out[key] = val
	}
	out[k] = &v
	return out
}

// patchErr maps a node write's error to the runbooks sentinels.
func patchErr(err error, name, what string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsConflict(err):
		return fmt.Errorf("%w: node %s", runbooks.ErrConflict, name)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %s", runbooks.ErrNodeNotFound, name)
	default:
		return fmt.Errorf("%s node %s: %w", what, name, classify(err))
	}
}

// Event records an Event on the Node, asynchronously (see Events.Event).
func (k *Nodes) Event(ctx context.Context, node, eventType, reason, message string) error {
	k.eventsOnce.Do(func() {
		if k.Events == nil {
			k.Events = NewEvents(k.Client, EventOptions{Instance: k.Instance})
		}
	})
	return k.Events.Event(ctx, node, eventType, reason, message)
}
