package runbooks

import (
	"context"
	"errors"
)

// Node is what steps need to know about a node.
type Node struct {
	Name            string
	Unschedulable   bool
	Labels          map[string]string
	Annotations     map[string]string
	ResourceVersion string
}

// NodeOps is the Kubernetes side of the steps. Writes carry the
// resourceVersion they were decided on, so a write based on stale state
// fails with ErrConflict instead of overwriting someone else's change.
type NodeOps interface {
	GetNode(ctx context.Context, name string) (*Node, error)
	// SetUnschedulable sets spec.unschedulable and applies the annotation
	// changes (a nil value deletes the key), guarded by resourceVersion.
	SetUnschedulable(ctx context.Context, name, resourceVersion string, unschedulable bool, annotations map[string]*string) error
	// Event records a Kubernetes Event on the Node (type Normal or Warning).
	Event(ctx context.Context, node, eventType, reason, message string) error
}

// Store persists runs.
type Store interface {
	Save(ctx context.Context, r *Run) error
	Load(ctx context.Context, id string) (*Run, error)
}

// ReplicatedSaver is a Store that can confirm a save only once Redis
// replicas acknowledged it (redis.min_replicas_acked). Checkpoints — the
// decisions saved before a reset — use it: a decision a failover could
// lose is not acted on.
type ReplicatedSaver interface {
	SaveReplicated(ctx context.Context, r *Run) error
}

// Sentinel errors.
var (
	ErrNodeNotFound = errors.New("node not found")
	ErrConflict     = errors.New("conflict: the object changed since it was read")
	ErrRunNotFound  = errors.New("run not found")
	// ErrLeaseLost stops a run before its next step.
	ErrLeaseLost = errors.New("node lease lost")
	// ErrStaleWrite: the store refused a run write because the record was
	// written under a newer lease (higher fence) or is already final.
	ErrStaleWrite = errors.New("stale write refused: the run record has a newer fence or is final")
	// ErrNotReplicated: a decision was saved on the Redis primary but not
	// acknowledged by enough replicas in time; it must not be acted on.
	ErrNotReplicated = errors.New("not acknowledged by enough Redis replicas")
	// ErrStaleFence: a node write was refused because the node carries a
	// higher fence (annotation AnnotationFence) than the writer's lease.
	ErrStaleFence = errors.New("stale node write refused: the node carries a newer fence")
)

// Lease is what the executor needs of the node lease a run holds.
type Lease interface {
	// Fence is the lease's fencing number, recorded with every write.
	Fence() int64
	// Check returns an error wrapping ErrLeaseLost once the lease is known
	// lost or its local deadline has passed. Checked before every write and
	// immediately before a BMC reset.
	Check() error
}

// ErrUnavailable marks a failure that says nothing about the node — the
// API server or another dependency could not be reached. A step failing
// with it leaves the run resumable instead of failing it.
var ErrUnavailable = errors.New("dependency unavailable")

// MaxAttempts bounds how many times a run is picked up after stopping on
// ErrUnavailable or a lost lease before it is failed for a human to look at.
const MaxAttempts = 20
