package safety

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Taint is one of a node's taints.
type Taint struct {
	Key, Value, Effect string
}

// Pod is what the blocking-pods gate knows of a pod.
type Pod struct {
	Namespace, Name string
	Node            string // spec.nodeName ("" while unscheduled)
	// Done: phase Succeeded or Failed; such a pod blocks nothing.
	Done bool
}

// PodSource lists the pods a blocking_pods gate selected (label selector
// and namespaces applied), from an informer cache: no API call per check.
type PodSource interface {
	Pods() ([]Pod, error)
}

// ErrPodsNotSynced: the pod cache has not been filled yet.
var ErrPodsNotSynced = errors.New("the blocking-pods cache has not synced with the API server yet")

// Scopes of a blocking-pods gate.
const (
	ScopeNode    = "node"    // a matching pod on the run's node holds
	ScopeCluster = "cluster" // a matching pod anywhere holds
)

// BlockingPods holds a run while a selected pod exists (not finished) on
// the run's node, or anywhere with ScopeCluster. Kind "blocking_pod".
type BlockingPods struct {
	Pods     PodSource
	Selector string // for reasons
	Scope    string // ScopeNode (default) or ScopeCluster
}

var _ Check = (*BlockingPods)(nil)

// Name implements Check.
func (b *BlockingPods) Name() string { return "blocking_pods" }

// Check implements Check.
func (b *BlockingPods) Check(_ context.Context, run *runbooks.Run, _ string, _ *NodeInfo) (runbooks.Decision, error) {
	pods, err := b.Pods.Pods()
	if err != nil {
		// Fail closed, with a reason of its own.
		return deny("blocking_pod", "cannot tell whether pods matching %q block this run (%v): holding until it can", b.Selector, err), nil
	}
	cluster := b.Scope == ScopeCluster
	var hits []Pod
	for _, p := range pods {
		if p.Done || (!cluster && p.Node != run.Node) {
			continue
		}
		hits = append(hits, p)
	}
	if len(hits) == 0 {
		return allow, nil
	}
	// A stable reason (the cache lists in no order): the hold is not
	// rewritten, nor an Event sent, on every poll.
	first := slices.MinFunc(hits, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	where := "on this node"
	if cluster {
		where = "in the cluster (scope: cluster)"
		if first.Node != "" {
			where = fmt.Sprintf("on node %s (scope: cluster)", first.Node)
		}
	}
	more := ""
	if len(hits) > 1 {
		more = fmt.Sprintf(" and %d more", len(hits)-1)
	}
	return deny("blocking_pod", "pod %s/%s%s matching blocking_pods %q is %s: holding until it is gone",
		first.Namespace, first.Name, more, b.Selector, where), nil
}

// Mark kinds.
const (
	MarkTaint      = "taint"
	MarkLabel      = "label"
	MarkAnnotation = "annotation"
)

// Mark is a taint, label or annotation another actor puts on a node it
// is working on. An empty Value matches any value.
type Mark struct {
	Kind  string // MarkTaint, MarkLabel, MarkAnnotation
	Key   string
	Value string
	// Who usually sets it (for the hold's reason); "" for configured marks.
	Who string
}

func (m Mark) String() string {
	s := m.Kind + " " + m.Key
	if m.Value != "" {
		s += "=" + m.Value
	}
	return s
}

// ParseMark reads "key" or "key=value".
func ParseMark(kind, s string) Mark {
	k, v, _ := strings.Cut(s, "=")
	return Mark{Kind: kind, Key: k, Value: v}
}

// DefaultMarks are the hands-off marks checked unless no_defaults is set:
//
//   - cluster-autoscaler: taint ToBeDeletedByClusterAutoscaler (it is
//     draining the node to delete it) and DeletionCandidateOfClusterAutoscaler
//     (it found the node unneeded and may soon remove it);
//   - kured: node annotation weave.works/kured-reboot-in-progress (set
//     while kured drains and reboots the node; only when kured runs with
//     --annotate-nodes);
//   - medik8s node-maintenance-operator: taint medik8s.io/drain (a
//     NodeMaintenance is in progress for the node).
func DefaultMarks() []Mark {
	return []Mark{
		{Kind: MarkTaint, Key: "ToBeDeletedByClusterAutoscaler", Who: "cluster-autoscaler is deleting the node"},
		{Kind: MarkTaint, Key: "DeletionCandidateOfClusterAutoscaler", Who: "cluster-autoscaler may remove the node"},
		{Kind: MarkAnnotation, Key: "weave.works/kured-reboot-in-progress", Who: "kured is rebooting the node"},
		{Kind: MarkTaint, Key: "medik8s.io/drain", Who: "a medik8s NodeMaintenance is in progress"},
	}
}

// HandsOff defers a run while another actor's mark is on its node (kind
// "hands_off", asked again after Retry) and cancels it once the node is
// being deleted (deletionTimestamp set).
type HandsOff struct {
	Marks []Mark
	// Retry is when a deferred run asks again (default 15s; the run
	// polls sooner anyway and escalates after its hold_timeout).
	Retry time.Duration
	Now   func() time.Time
}

var _ Check = (*HandsOff)(nil)

// Name implements Check.
func (h *HandsOff) Name() string { return "hands_off" }

// AtAdmission: a marked node's run waits before its cordon too.
func (h *HandsOff) AtAdmission() bool { return true }

// Check implements Check.
func (h *HandsOff) Check(_ context.Context, run *runbooks.Run, _ string, node *NodeInfo) (runbooks.Decision, error) {
	if node == nil {
		return allow, nil
	}
	if node.Deleting {
		return runbooks.Decision{Kind: "hands_off", Cancel: true,
			Reason: fmt.Sprintf("node %s is being deleted (deletionTimestamp set): nothing left to heal", node.Name)}, nil
	}
	for _, m := range h.Marks {
		if !node.has(m) {
			continue
		}
		who := m.Who
		if who == "" {
			who = "a configured hands_off mark: another actor is working on the node"
		}
		now, retry := time.Now, h.Retry
		if h.Now != nil {
			now = h.Now
		}
		if retry <= 0 {
			retry = 15 * time.Second
		}
		return runbooks.Decision{Kind: "hands_off", RetryAt: now().Add(retry),
			Reason: fmt.Sprintf("node %s carries %s (%s): hands off until it is removed", node.Name, m, who)}, nil
	}
	return allow, nil
}

// has reports whether the node carries the mark.
func (n *NodeInfo) has(m Mark) bool {
	match := func(v string, ok bool) bool { return ok && (m.Value == "" || v == m.Value) }
	switch m.Kind {
	case MarkTaint:
		for _, t := range n.Taints {
			if match(t.Value, t.Key == m.Key) {
				return true
			}
		}
	case MarkLabel:
		v, ok := n.Labels[m.Key]
		return match(v, ok)
	case MarkAnnotation:
		v, ok := n.Annotations[m.Key]
		return match(v, ok)
	}
	return false
}
