package kube

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors of Drain, for errors.Is.
var (
	// ErrDrainTimeout: pods were still on the node when DrainOptions.Timeout
	// passed (typically a PodDisruptionBudget that never allows the
	// eviction). The error is a *DrainTimeoutError naming them.
	ErrDrainTimeout = errors.New("drain timed out")
	// ErrDrainRefused: the node has pods the options do not allow to evict
	// (unmanaged pods without Force, emptyDir data without
	// DeleteEmptyDirData). Nothing was evicted.
	ErrDrainRefused = errors.New("drain refused")
	// ErrMultiplePDBs: a pod is selected by more than one
	// PodDisruptionBudget, which the Eviction API rejects (HTTP 500) until
	// someone fixes the budgets.
	ErrMultiplePDBs = errors.New("pod has more than one PodDisruptionBudget")
	// ErrPreEvictHook: DrainOptions.PreEvict failed for a pod, which was
	// therefore not evicted.
	ErrPreEvictHook = errors.New("pre-evict hook failed")
)

// DrainTimeoutError lists what was still on the node when the drain timed
// out. errors.Is(err, ErrDrainTimeout) holds.
type DrainTimeoutError struct {
	Node    string
	Timeout time.Duration
	// Remaining are the pods that were to leave but had not.
	Remaining []RemainingPod
}

// RemainingPod is a pod still on the node at a drain timeout.
type RemainingPod struct {
	Namespace, Name string
	// PDB is the PodDisruptionBudget (same namespace) that refused its
	// eviction, when the API server said so; BlockedBy is the server's
	// message about it.
	PDB, BlockedBy string
	// Evicted is true when the eviction was accepted but the pod has not
	// terminated yet (a slow or unreachable kubelet).
	Evicted bool
}

func (e *DrainTimeoutError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: node %s after %s, %d pod(s) still there:", ErrDrainTimeout, e.Node, e.Timeout, len(e.Remaining))
	for i, p := range e.Remaining {
		if i == 10 {
			fmt.Fprintf(&b, " … and %d more", len(e.Remaining)-i)
			break
		}
		fmt.Fprintf(&b, " %s/%s", p.Namespace, p.Name)
		switch {
		case p.PDB != "":
			fmt.Fprintf(&b, " (blocked by PodDisruptionBudget %s/%s)", p.Namespace, p.PDB)
		case p.Evicted:
			b.WriteString(" (evicted, still terminating)")
		}
		if i < len(e.Remaining)-1 && i < 9 {
			b.WriteString(",")
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrDrainTimeout) true.
func (e *DrainTimeoutError) Is(target error) bool { return target == ErrDrainTimeout }
