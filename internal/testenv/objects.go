package testenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// DefaultWait bounds the helpers' waits when ctx has no earlier deadline.
const DefaultWait = 30 * time.Second

// PauseImage is the image of the pods the helpers create; kwok never pulls it.
const PauseImage = "registry.k8s.io/pause:3.10"

// CreateNodes creates kwok-managed nodes and waits until each is Ready.
func (c *Cluster) CreateNodes(ctx context.Context, names ...string) error {
	for _, name := range names {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				KwokNodeLabel:            KwokNodeValue,
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"},
		}}
		if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	for _, name := range names {
		if err := c.WaitNodeReady(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// WaitNodeReady waits until the node's Ready condition is True.
func (c *Cluster) WaitNodeReady(ctx context.Context, name string) error {
	return c.waitNodeCondition(ctx, name, corev1.ConditionTrue)
}

func (c *Cluster) waitNodeCondition(ctx context.Context, name string, want corev1.ConditionStatus) error {
	return poll(ctx, fmt.Sprintf("node %s Ready=%s", name, want), func(ctx context.Context) (string, bool, error) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error(), false, nil
		}
		got := nodeReady(n)
		return "Ready=" + string(got), got == want, nil
	})
}

func nodeReady(n *corev1.Node) corev1.ConditionStatus {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status
		}
	}
	return "<none>"
}

// SetNodeNotReady makes a node look like one whose kubelet died, as the
// node lifecycle controller (which does not run here) would show it: kwok
// stops managing it (its Lease is no longer renewed, its pods no longer
// change, deleted pods stay Terminating), its conditions become Unknown and
// it gets the node.kubernetes.io/unreachable taints.
func (c *Cluster) SetNodeNotReady(ctx context.Context, name string) error {
	nodes := c.Client.CoreV1().Nodes()
	patch := []byte(`{"metadata":{"labels":{"` + KwokNodeLabel + `":null}}}`)
	if _, err := nodes.Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("unmanage node %s: %w", name, err)
	}
	// kwok may still be writing the node when the label goes; write the
	// status until it stays Unknown.
	return poll(ctx, fmt.Sprintf("node %s NotReady", name), func(ctx context.Context) (string, bool, error) {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error(), false, nil
		}
		if nodeReady(n) == corev1.ConditionUnknown {
			time.Sleep(300 * time.Millisecond)
			n2, err := nodes.Get(ctx, name, metav1.GetOptions{})
			if err == nil && nodeReady(n2) == corev1.ConditionUnknown {
				return "", true, nil
			}
			return "Ready flipped back", false, nil
		}
		now := metav1.Now()
		if nodeReady(n) == "<none>" {
			n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeReady})
		}
		for i := range n.Status.Conditions {
			cond := &n.Status.Conditions[i]
			if cond.Status != corev1.ConditionUnknown {
				cond.LastTransitionTime = now
			}
			cond.Status = corev1.ConditionUnknown
			cond.Reason = "NodeStatusUnknown"
			cond.Message = "Kubelet stopped posting node status."
		}
		if n, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err.Error(), false, nil
		}
		for _, effect := range []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute} {
			if !hasTaint(n, corev1.TaintNodeUnreachable, effect) {
				t := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: effect}
				if effect == corev1.TaintEffectNoExecute {
					t.TimeAdded = &now
				}
				n.Spec.Taints = append(n.Spec.Taints, t)
			}
		}
		if _, err = nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err.Error(), false, nil
		}
		return "status written", false, nil
	})
}

// SetNodeReady undoes SetNodeNotReady: the unreachable taints go, kwok
// manages the node again, and it waits until the node is Ready.
func (c *Cluster) SetNodeReady(ctx context.Context, name string) error {
	nodes := c.Client.CoreV1().Nodes()
	err := poll(ctx, fmt.Sprintf("node %s managed by kwok", name), func(ctx context.Context) (string, bool, error) {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error(), false, nil
		}
		taints := n.Spec.Taints[:0]
		for _, t := range n.Spec.Taints {
			if t.Key != corev1.TaintNodeUnreachable && t.Key != corev1.TaintNodeNotReady {
				taints = append(taints, t)
			}
		}
		n.Spec.Taints = taints
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[KwokNodeLabel] = KwokNodeValue
		if _, err := nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err.Error(), false, nil // a conflict with kwok: retry
		}
		return "", true, nil
	})
	if err != nil {
		return err
	}
	return c.WaitNodeReady(ctx, name)
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == effect {
			return true
		}
	}
	return false
}

// EnsureNamespace creates a namespace (and its "default" ServiceAccount,
// which no controller creates here) unless it exists.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return ensureServiceAccount(ctx, c.Client, name)
}

// CreatePod creates a pod bound to node (spec.nodeName; there is no
// scheduler) with one pause container. mutate functions edit it before it
// is created. kwok makes it Running if the node is kwok-managed.
func (c *Cluster) CreatePod(ctx context.Context, ns, name, node string, mutate ...func(*corev1.Pod)) (*corev1.Pod, error) {
	pod := newPod(ns, name, node)
	for _, m := range mutate {
		m(pod)
	}
	created, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s%s: %w", ns, name, pod.GenerateName, err)
	}
	return created, nil
}

func newPod(ns, name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name:  "app",
				Image: PauseImage,
			}},
		},
	}
}

// WaitPodRunning waits until the pod's phase is Running.
func (c *Cluster) WaitPodRunning(ctx context.Context, ns, name string) error {
	return poll(ctx, fmt.Sprintf("pod %s/%s Running", ns, name), func(ctx context.Context) (string, bool, error) {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err.Error(), false, nil
		}
		return "phase " + string(p.Status.Phase), p.Status.Phase == corev1.PodRunning, nil
	})
}

// CreateReplicaSetPods creates (or reuses) the ReplicaSet rsName in ns and
// n pods on node owned by it (ownerReferences, controller=true), as the
// ReplicaSet controller, which does not run here, would. Pod names are
// rsName-<random>. Calls for several nodes may share one ReplicaSet.
func (c *Cluster) CreateReplicaSetPods(ctx context.Context, ns, rsName, node string, n int) ([]*corev1.Pod, error) {
	rs, err := c.ensureReplicaSet(ctx, ns, rsName, n)
	if err != nil {
		return nil, err
	}
	owner := metav1.OwnerReference{
		APIVersion:         "apps/v1",
		Kind:               "ReplicaSet",
		Name:               rs.Name,
		UID:                rs.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
	pods := make([]*corev1.Pod, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			pods[i], errs[i] = c.CreatePod(ctx, ns, "", node, func(p *corev1.Pod) {
				p.GenerateName = rsName + "-"
				p.Labels = map[string]string{"app": rsName}
				p.OwnerReferences = []metav1.OwnerReference{owner}
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pods, nil
}

func (c *Cluster) ensureReplicaSet(ctx context.Context, ns, name string, replicas int) (*appsv1.ReplicaSet, error) {
	labels := map[string]string{"app": name}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr.To(int32(replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       newPod(ns, name, "").Spec,
			},
		},
	}
	rsc := c.Client.AppsV1().ReplicaSets(ns)
	got, err := rsc.Create(ctx, rs, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, err = rsc.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("replicaset %s/%s: %w", ns, name, err)
	}
	return got, nil
}

// poll calls f every 100 ms until it reports done or fails, ctx ends, or
// DefaultWait passes. f's state string describes what it last saw.
func poll(ctx context.Context, what string, f func(context.Context) (state string, done bool, err error)) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultWait)
	defer cancel()
	start := time.Now()
	for {
		state, done, err := f(ctx)
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: gave up after %s (last: %s): %w",
				what, time.Since(start).Round(time.Millisecond), state, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
