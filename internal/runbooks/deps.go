package runbooks

import (
	"context"
	"time"
)

// NodeStatus is what responsiveness and health checks read from a Node
// and its Lease.
type NodeStatus struct {
	Name string
	// Ready is the Ready condition's status: "True", "False" or "Unknown"
	// ("" when the node reports none yet).
	Ready string
	// ReadySince is the Ready condition's lastTransitionTime.
	ReadySince time.Time
	// Conditions maps every condition type to its status (NPD adds its
	// problem conditions here: KernelDeadlock, ReadonlyFilesystem…).
	Conditions map[string]string
	// Heartbeats maps each condition type to its lastHeartbeatTime: when
	// its reporter (the kubelet, node-problem-detector) last evaluated it.
	Heartbeats map[string]time.Time
	// LeaseRenewed is the kubelet Lease's renewTime (zero: no Lease).
	LeaseRenewed time.Time
	// BootID changes when the machine reboots.
	BootID        string
	Unschedulable bool
	Taints        []string // keys
}

// Responsive reports whether the kubelet answers: Ready=True and its
// Lease renewed within maxAge of now.
func (s *NodeStatus) Responsive(now time.Time, maxAge time.Duration) bool {
	return s.Ready == "True" && !s.LeaseRenewed.IsZero() && now.Sub(s.LeaseRenewed) <= maxAge
}

// NodeStatusReader reads node status (the Kubernetes adapter implements it).
type NodeStatusReader interface {
	Status(ctx context.Context, node string) (*NodeStatus, error)
}

// NodeWriter holds the node writes beyond cordoning.
type NodeWriter interface {
	// Annotate applies annotation and label changes (nil value deletes).
	Annotate(ctx context.Context, node string, annotations, labels map[string]*string) error
	// SetTaint adds (present) or removes a taint.
	SetTaint(ctx context.Context, node, key, value, effect string, present bool) error
}

// DrainSpec is what the drain step asks of a Drainer.
type DrainSpec struct {
	Timeout            time.Duration
	DeleteEmptyDirData bool
	Force              bool // evict pods that no controller manages
	EvictCritical      bool
	DryRun             bool // plan only
}

// DrainReport summarises a drain for the timeline.
type DrainReport struct {
	Evicted int
	Skipped int
	Summary string
}

// Drainer evicts a node's pods (PDB-aware).
type Drainer interface {
	Drain(ctx context.Context, node string, spec DrainSpec) (DrainReport, error)
}

// ErrDrainTimeout is returned by a Drainer when pods are still there when
// the drain timeout passes (typically a PodDisruptionBudget).
var ErrDrainTimeout = errorString("drain timed out")

// ExecResult is the outcome of a node-exec action.
type ExecResult struct {
	Pod      string
	Phase    string // Succeeded, Failed, or Dispatched (not waited for)
	ExitCode int
	Message  string
}

// NodeExec runs a command on the node's host through a short-lived
// privileged pod. With wait false it returns once the pod is created
// (a reboot does not wait for its own completion).
type NodeExec interface {
	Exec(ctx context.Context, node, runID, action string, command []string, wait bool, timeout time.Duration) (ExecResult, error)
	Cleanup(ctx context.Context, node, runID, action string) error
}

// Power kinds and states (plain strings: runbooks imports no SDK).
const (
	PowerSoft = "soft" // graceful restart
	PowerHard = "hard" // power cycle / force restart
	PowerOff  = "off"
	PowerOn   = "on"

	StateOn  = "On"
	StateOff = "Off"
)

// Power talks to the node's BMC.
type Power interface {
	// Has reports whether a BMC is known for the node.
	Has(ctx context.Context, node string) bool
	PowerState(ctx context.Context, node string) (string, error)
	// Reset sends one reset of the kind, choosing a type the BMC allows;
	// it returns the Redfish ResetType sent. On an error the caller must
	// re-read PowerState before deciding anything: the reset may have
	// been applied.
	Reset(ctx context.Context, node, kind string) (string, error)
}

// AlertState tells whether an alert has resolved (the webhook records
// resolved notifications).
type AlertState interface {
	Resolved(ctx context.Context, fingerprint string) (bool, time.Time, error)
}

// Deps are what the built-in steps use. Nil members make the steps that
// need them fail with a clear error (or skip, where documented).
type Deps struct {
	Nodes  NodeOps
	Status NodeStatusReader
	Writer NodeWriter
	Drain  Drainer
	Exec   NodeExec
	Power  Power
	Alerts AlertState
	// Poll is how often wait steps re-read state (default 1s).
	Poll time.Duration
}

type errorString string

func (e errorString) Error() string { return string(e) }
