package kube

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// conflicts makes the first n node patches fail with 409 Conflict.
func conflicts(c *fake.Clientset, n int) *int {
	patches := 0
	c.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches++
		if patches <= n {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "nodes"}, "n1", errors.New("changed"))
		}
		return false, nil, nil
	})
	return &patches
}

// TestWritesRetryConflicts: taint and annotation writes re-read and retry
// on conflict (client-go's retry.DefaultBackoff: 4 attempts), then give
// runbooks.ErrConflict.
func TestWritesRetryConflicts(t *testing.T) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}
	v := "x"
	for _, tc := range []struct {
		name      string
		conflicts int
		wantErr   error
		patches   int
	}{
		{"two conflicts then success", 2, nil, 3},
		{"conflicts past the backoff", 10, runbooks.ErrConflict, 4},
	} {
		for _, op := range []struct {
			name string
			do   func(*Nodes) error
		}{
			{"taint", func(k *Nodes) error { return k.SetTaint(ctx, "n1", "k", "v", "NoSchedule", true) }},
			{"annotate", func(k *Nodes) error { return k.Annotate(ctx, "n1", map[string]*string{"a": &v}, nil) }},
		} {
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				c := fake.NewClientset(node.DeepCopy())
				patches := conflicts(c, tc.conflicts)
				err := op.do(&Nodes{Client: c})
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				if *patches != tc.patches {
					t.Fatalf("%d patch attempts, want %d", *patches, tc.patches)
				}
			})
		}
	}
}
