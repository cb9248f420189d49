package kube

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// TestNodeWritesAreFenced: the cordon records the writer's fence on the
// node; a later write by a lower fence (a replica that woke after a
// takeover) is refused — uncordon, taint, annotate — and the node is left
// as the newer holder wrote it.
func TestNodeWritesAreFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: needs kube-apiserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const name = "fence-node"
	if err := cluster.CreateNodes(ctx, name); err != nil {
		t.Fatal(err)
	}
	k := &Nodes{Client: cluster.Client}
	old, newer := runbooks.WithFence(ctx, 100), runbooks.WithFence(ctx, 200)

	n, err := k.GetNode(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	// The old holder cordons (fence 100), then the new holder takes over
	// and re-cordons with its own fence (200).
	if err := k.SetUnschedulable(old, name, n.ResourceVersion, true, map[string]*string{runbooks.AnnotationCordonedBy: ptr.To("r1")}); err != nil {
		t.Fatal(err)
	}
	n, _ = k.GetNode(ctx, name)
	if n.Annotations[runbooks.AnnotationFence] != "100" {
		t.Fatalf("fence annotation after cordon: %q", n.Annotations[runbooks.AnnotationFence])
	}
	if err := k.SetUnschedulable(newer, name, n.ResourceVersion, true, nil); err != nil {
		t.Fatal(err)
	}
	n, _ = k.GetNode(ctx, name)
	// Every write of the old holder is refused now.
	if err := k.SetUnschedulable(old, name, n.ResourceVersion, false, nil); !errors.Is(err, runbooks.ErrStaleFence) {
		t.Errorf("stale uncordon: %v, want ErrStaleFence", err)
	}
	if err := k.SetTaint(old, name, "node.kubernetes.io/out-of-service", "nodeshutdown", "NoExecute", true); !errors.Is(err, runbooks.ErrStaleFence) {
		t.Errorf("stale taint: %v, want ErrStaleFence", err)
	}
	if err := k.Annotate(old, name, map[string]*string{"x": ptr.To("y")}, map[string]*string{"l": ptr.To("v")}); !errors.Is(err, runbooks.ErrStaleFence) {
		t.Errorf("stale annotate: %v, want ErrStaleFence", err)
	}
	got, err := cluster.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Spec.Unschedulable || hasTaint(got, "node.kubernetes.io/out-of-service", "NoExecute") || got.Annotations["x"] != "" || got.Labels["l"] != "" || got.Annotations[runbooks.AnnotationFence] != "200" {
		t.Fatalf("node changed by a stale writer: unschedulable %v taints %v annotations %v", got.Spec.Unschedulable, got.Spec.Taints, got.Annotations)
	}
	// The current holder's writes go through and keep their fence.
	if err := k.SetTaint(newer, name, "node.kubernetes.io/out-of-service", "nodeshutdown", "NoExecute", true); err != nil {
		t.Fatal(err)
	}
	n, _ = k.GetNode(ctx, name)
	if err := k.SetUnschedulable(newer, name, n.ResourceVersion, false, nil); err != nil {
		t.Fatal(err)
	}
	// A stale resourceVersion is still a conflict (optimistic concurrency).
	if err := k.SetUnschedulable(newer, name, n.ResourceVersion, true, nil); !errors.Is(err, runbooks.ErrConflict) {
		t.Errorf("write at an old resourceVersion: %v, want ErrConflict", err)
	}
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == effect {
			return true
		}
	}
	return false
}
