package safety

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

type fakePods struct {
	pods []Pod
	err  error
}

func (f fakePods) Pods() ([]Pod, error) { return f.pods, f.err }

func TestBlockingPodsCheck(t *testing.T) {
	run := &runbooks.Run{Node: "n1"}
	pods := []Pod{
		{Namespace: "ceph", Name: "done", Node: "n1", Done: true},
		{Namespace: "ceph", Name: "elsewhere", Node: "n2"},
	}
	cases := []struct {
		name   string
		scope  string
		pods   []Pod
		err    error
		allow  bool
		reason string
	}{
		{name: "none", allow: true},
		{name: "finished or on another node", pods: pods, allow: true},
		{name: "on the node", pods: append(pods, Pod{Namespace: "ceph", Name: "rebuild", Node: "n1"}), reason: "pod ceph/rebuild matching blocking_pods"},
		{name: "two on the node", pods: []Pod{{Namespace: "b", Name: "a", Node: "n1"}, {Namespace: "a", Name: "y", Node: "n1"}, {Namespace: "a", Name: "x", Node: "n1"}}, reason: "pod a/x and 2 more"},
		{name: "cluster scope", scope: ScopeCluster, pods: pods, reason: "pod ceph/elsewhere matching blocking_pods \"app=rebuild\" is on node n2 (scope: cluster)"},
		{name: "cluster scope unscheduled", scope: ScopeCluster, pods: []Pod{{Namespace: "a", Name: "p"}}, reason: "in the cluster"},
		{name: "cluster scope all finished", scope: ScopeCluster, pods: pods[:1], allow: true},
		{name: "cache not synced", err: ErrPodsNotSynced, reason: "cannot tell whether pods matching"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &BlockingPods{Pods: fakePods{c.pods, c.err}, Selector: "app=rebuild", Scope: c.scope}
			d, err := b.Check(context.Background(), run, "drain", &NodeInfo{Name: "n1"})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != c.allow {
				t.Fatalf("allow %v, want %v (%+v)", d.Allow, c.allow, d)
			}
			if c.allow {
				return
			}
			if d.Kind != "blocking_pod" || d.Cancel || d.Escalate || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("decision %+v, want kind blocking_pod and reason with %q", d, c.reason)
			}
		})
	}
}

func TestHandsOffCheck(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	marks := append(DefaultMarks(),
		ParseMark(MarkLabel, "maintenance=active"),
		ParseMark(MarkAnnotation, "example.com/busy"),
		ParseMark(MarkTaint, "example.com/upgrade=true"))
	cases := []struct {
		name   string
		node   *NodeInfo
		marks  []Mark
		allow  bool
		cancel bool
		reason string
	}{
		{name: "node not in cache", allow: true},
		{name: "clean node", node: &NodeInfo{Name: "n1", Labels: map[string]string{"maintenance": "done"},
			Taints: []Taint{{Key: "node.kubernetes.io/unschedulable"}, {Key: "example.com/upgrade", Value: "false"}}}, allow: true},
		{name: "cluster-autoscaler deleting", node: &NodeInfo{Name: "n1", Taints: []Taint{{Key: "ToBeDeletedByClusterAutoscaler", Value: "1764151200", Effect: "NoSchedule"}}},
			reason: "node n1 carries taint ToBeDeletedByClusterAutoscaler (cluster-autoscaler is deleting the node)"},
		{name: "cluster-autoscaler candidate", node: &NodeInfo{Name: "n1", Taints: []Taint{{Key: "DeletionCandidateOfClusterAutoscaler"}}}, reason: "cluster-autoscaler may remove"},
		{name: "kured", node: &NodeInfo{Name: "n1", Annotations: map[string]string{"weave.works/kured-reboot-in-progress": "2026-11-26T09:58:00Z"}}, reason: "kured is rebooting"},
		{name: "node maintenance", node: &NodeInfo{Name: "n1", Taints: []Taint{{Key: "medik8s.io/drain"}}}, reason: "NodeMaintenance"},
		{name: "configured label value", node: &NodeInfo{Name: "n1", Labels: map[string]string{"maintenance": "active"}}, reason: "label maintenance=active (a configured hands_off mark"},
		{name: "configured annotation any value", node: &NodeInfo{Name: "n1", Annotations: map[string]string{"example.com/busy": ""}}, reason: "annotation example.com/busy"},
		{name: "configured taint value", node: &NodeInfo{Name: "n1", Taints: []Taint{{Key: "example.com/upgrade", Value: "true"}}}, reason: "taint example.com/upgrade=true"},
		{name: "no defaults", node: &NodeInfo{Name: "n1", Taints: []Taint{{Key: "ToBeDeletedByClusterAutoscaler"}}}, marks: []Mark{}, allow: true},
		{name: "deleting", node: &NodeInfo{Name: "n1", Deleting: true}, cancel: true, reason: "node n1 is being deleted"},
		{name: "deleting without marks", node: &NodeInfo{Name: "n1", Deleting: true}, marks: []Mark{}, cancel: true, reason: "being deleted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &HandsOff{Marks: marks, Retry: time.Minute, Now: func() time.Time { return now }}
			if c.marks != nil {
				h.Marks = c.marks
			}
			d, err := h.Check(context.Background(), &runbooks.Run{Node: "n1"}, "drain", c.node)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != c.allow {
				t.Fatalf("allow %v, want %v (%+v)", d.Allow, c.allow, d)
			}
			if c.allow {
				return
			}
			if d.Kind != "hands_off" || d.Cancel != c.cancel || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("decision %+v, want cancel %v and reason with %q", d, c.cancel, c.reason)
			}
			if !c.cancel && !d.RetryAt.Equal(now.Add(time.Minute)) {
				t.Fatalf("retry at %s, want a minute from now", d.RetryAt)
			}
		})
	}
}

// TestHandsOffHoldsThroughGate: the gate asks the check before a
// destructive step and holds (not allows) a marked node's run.
func TestHandsOffHoldsThroughGate(t *testing.T) {
	d, err := (&Gate{Checks: []Check{&HandsOff{Marks: DefaultMarks()}}}).checks(context.Background(), &runbooks.Run{Node: "n1"}, "drain",
		&NodeInfo{Name: "n1", Taints: []Taint{{Key: "ToBeDeletedByClusterAutoscaler"}}})
	if err != nil || d.Allow || d.Kind != "hands_off" {
		t.Fatalf("decision %+v, %v", d, err)
	}
}
