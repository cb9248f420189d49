package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/node-healer/node-healer/internal/testenv"
)

// Fleet creates many nodes and pods fast: a client of its own with high
// client-side limits and a bounded number of requests in flight (the API
// server's default max-mutating-requests-inflight is 200).
type Fleet struct {
	C        *testenv.Cluster
	Progress io.Writer
	// Parallel bounds creates in flight (default 48).
	Parallel int

	once   sync.Once
	client kubernetes.Interface
	err    error
}

func (f *Fleet) cs() (kubernetes.Interface, error) {
	f.once.Do(func() {
		cfg := rest.CopyConfig(f.C.RESTConfig)
		cfg.QPS, cfg.Burst = 5000, 10000
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		f.client, f.err = kubernetes.NewForConfig(cfg)
	})
	return f.client, f.err
}

// each calls do(i) for i in [0, n) with at most Parallel calls at once and
// returns the first error.
func (f *Fleet) each(ctx context.Context, n int, do func(ctx context.Context, i int) error) error {
	par := f.Parallel
	if par <= 0 {
		par = 48
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range par {
		wg.Go(func() {
			for i := range work {
				if err := do(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
loop:
	for i := range n {
		select {
		case work <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(work)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// NewNode is a kwok-managed node, as testenv.Cluster.CreateNodes makes them.
func NewNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name,
		Labels: map[string]string{
			testenv.KwokNodeLabel:    testenv.KwokNodeValue,
			"kubernetes.io/hostname": name,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
			"type":                   "kwok",
		},
		Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
	}}
}

// CreateNodes creates the nodes concurrently and waits until all are Ready.
func (f *Fleet) CreateNodes(ctx context.Context, names []string) error {
	cs, err := f.cs()
	if err != nil {
		return err
	}
	err = f.each(ctx, len(names), func(ctx context.Context, i int) error {
		_, err := cs.CoreV1().Nodes().Create(ctx, NewNode(names[i]), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", names[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	return f.waitFor(ctx, fmt.Sprintf("%d nodes Ready", len(names)), 5*time.Minute, func(ctx context.Context) (int, error) {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return 0, err
		}
		ready := 0
		for i := range list.Items {
			n := &list.Items[i]
			if want[n.Name] && NodeReady(n) {
				ready++
			}
		}
		return len(names) - ready, nil
	})
}

// NodeReady reports the Ready condition.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// EnsureReplicaSet creates (or gets) a ReplicaSet the fleet's pods name as
// their controller (no ReplicaSet controller runs here; kubectl drain and
// node-healer's drain both refuse unmanaged pods without --force).
func (f *Fleet) EnsureReplicaSet(ctx context.Context, ns, name string) (metav1.OwnerReference, error) {
	cs, err := f.cs()
	if err != nil {
		return metav1.OwnerReference{}, err
	}
	if err := f.C.EnsureNamespace(ctx, ns); err != nil {
		return metav1.OwnerReference{}, err
	}
	labels := map[string]string{"app": name}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: testenv.PauseImage}}}},
		},
	}
	got, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return metav1.OwnerReference{}, fmt.Errorf("replicaset %s/%s: %w", ns, name, err)
	}
	return metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: got.Name, UID: got.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}, nil
}

// NewPod is a pause pod bound to node, owned by owner.
func NewPod(ns, name, node string, owner metav1.OwnerReference, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers:                    []corev1.Container{{Name: "app", Image: testenv.PauseImage}},
		},
	}
}

// CreatePods creates perNode pods on each node (named rs-NODE-I, owned by
// the ReplicaSet rs) and waits until every pod of ns is Running.
func (f *Fleet) CreatePods(ctx context.Context, ns, rs string, nodes []string, perNode int) error {
	cs, err := f.cs()
	if err != nil {
		return err
	}
	owner, err := f.EnsureReplicaSet(ctx, ns, rs)
	if err != nil {
		return err
	}
	labels := map[string]string{"app": rs}
	err = f.each(ctx, len(nodes)*perNode, func(ctx context.Context, i int) error {
		node := nodes[i/perNode]
		p := NewPod(ns, fmt.Sprintf("%s-%s-%02d", rs, node, i%perNode), node, owner, labels)
		_, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create pod %s: %w", p.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return f.WaitPodsRunning(ctx, ns, 10*time.Minute)
}

// WaitPodsRunning waits until no pod of ns is in another phase than
// Running (a field-selected list from the API server's watch cache).
func (f *Fleet) WaitPodsRunning(ctx context.Context, ns string, timeout time.Duration) error {
	cs, err := f.cs()
	if err != nil {
		return err
	}
	return f.waitFor(ctx, "pods Running in "+ns, timeout, func(ctx context.Context) (int, error) {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0", FieldSelector: "status.phase!=Running"})
		if err != nil {
			return 0, err
		}
		return len(list.Items), nil
	})
}

// waitFor polls left every second until it reports 0, printing progress
// every 15 s.
func (f *Fleet) waitFor(ctx context.Context, what string, timeout time.Duration, left func(context.Context) (int, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start, lastPrint := time.Now(), time.Now()
	for {
		n, err := left(ctx)
		if err == nil && n == 0 {
			return nil
		}
		if f.Progress != nil && time.Since(lastPrint) > 15*time.Second {
			fmt.Fprintf(f.Progress, "[%s: %d left after %s] ", what, n, time.Since(start).Round(time.Second))
			lastPrint = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %d left after %s (last error: %v)", what, n, time.Since(start).Round(time.Second), err)
		case <-time.After(time.Second):
		}
	}
}
