package runbooks

import (
	"context"
	"strconv"
)

// AnnotationFence is written on a node with every node-healer write (the
// cordon first): the fencing number of the run's node lease. A node write
// whose fence is lower than the node's is refused (ErrStaleFence), so a
// replica that wakes after a takeover cannot undo or redo the new holder's
// changes. Writes keep their resourceVersion precondition, so the check and
// the write are one atomic step on the API server.
const AnnotationFence = "node-healer.io/fence"

type fenceKey struct{}

// WithFence returns ctx carrying the writer's fence; node adapters check
// and record it on every node write made with the context.
func WithFence(ctx context.Context, fence int64) context.Context {
	return context.WithValue(ctx, fenceKey{}, fence)
}

// FenceOf returns the fence WithFence put in ctx.
func FenceOf(ctx context.Context) (int64, bool) {
	f, ok := ctx.Value(fenceKey{}).(int64)
	return f, ok && f > 0
}

// NodeFence parses a node's fence annotation (0 when absent or malformed).
func NodeFence(annotations map[string]string) int64 {
	f, _ := strconv.ParseInt(annotations[AnnotationFence], 10, 64)
	return f
}

// CheckNodeFence returns an error wrapping ErrStaleFence when ctx carries a
// fence lower than the node's, and otherwise the annotation value to write
// with the change ("" when ctx carries no fence: write without one).
func CheckNodeFence(ctx context.Context, node string, annotations map[string]string) (string, error) {
	mine, ok := FenceOf(ctx)
	if !ok {
		return "", nil
	}
	if theirs := NodeFence(annotations); theirs > mine {
		return "", &StaleFenceError{Node: node, Mine: mine, Theirs: theirs}
	}
	return strconv.FormatInt(mine, 10), nil
}

// StaleFenceError says which fences met.
type StaleFenceError struct {
	Node         string
	Mine, Theirs int64
}

func (e *StaleFenceError) Error() string {
	return "node " + e.Node + ": writer fence " + strconv.FormatInt(e.Mine, 10) + " is older than the node's " + strconv.FormatInt(e.Theirs, 10) + ": " + ErrStaleFence.Error()
}

func (e *StaleFenceError) Unwrap() error { return ErrStaleFence }

type preSendKey struct{}

// WithPreSend returns ctx carrying a check that a Power adapter must call
// immediately before it sends a reset request (after any read it needs to
// choose the request), and not send when it fails.
func WithPreSend(ctx context.Context, check func() error) context.Context {
	return context.WithValue(ctx, preSendKey{}, check)
}

// PreSend returns the check WithPreSend put in ctx, or nil.
func PreSend(ctx context.Context) func() error {
	f, _ := ctx.Value(preSendKey{}).(func() error)
	return f
}
