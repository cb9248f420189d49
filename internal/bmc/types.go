package bmc

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// State is a system's Redfish PowerState. Values the BMC reports beyond the
// constants below (e.g. "Paused") are passed through as they are.
type State string

// Power states.
const (
	StateOn          State = "On"
	StateOff         State = "Off"
	StatePoweringOn  State = "PoweringOn"
	StatePoweringOff State = "PoweringOff"
	// StateUnknown is returned alongside an error, or when the BMC reports
	// no PowerState.
	StateUnknown State = ""
)

// Kind is what a caller wants done; the client maps it to a ResetType the
// system allows (see [Plan]).
type Kind string

// Reset kinds.
const (
	// Soft asks the OS to restart: GracefulRestart, nothing else.
	Soft Kind = "soft"
	// Hard power-cycles: PowerCycle, else ForceRestart, else ForceOff then
	// On (ForceOn, or PushPowerButton once Off).
	Hard Kind = "hard"
	// Off powers the system off: ForceOff, else GracefulShutdown.
	Off Kind = "off"
	// On powers the system on: On, else ForceOn, else PushPowerButton — the
	// button only while the system is Off, since it toggles.
	On Kind = "on"
)

// Kinds lists every Kind.
var Kinds = []Kind{Soft, Hard, Off, On}

// Power is what a runbook needs from the BMC side. internal/runbooks
// declares its own copy (it imports no SDK); State and Kind are plain
// strings so an adapter converts with string(…).
type Power interface {
	// PowerState reads the node's PowerState.
	PowerState(ctx context.Context, node string) (State, error)
	// Reset sends the reset types Kind maps to and returns what was sent
	// ("" if nothing was needed). It never retries; see the package doc.
	Reset(ctx context.Context, node string, kind Kind) (string, error)
}

// Sentinel errors, for errors.Is.
var (
	// ErrNotAllowed: the system does not allow any reset type the Kind maps
	// to; nothing was sent.
	ErrNotAllowed = errors.New("reset type not allowed by the BMC")
	// ErrUnknownNode: no BMC is configured for the node.
	ErrUnknownNode = errors.New("no BMC configured for node")
	// ErrAlreadySent: ResetOnce was called again for a decision whose reset
	// may already have been sent; nothing was sent. Read PowerState instead.
	ErrAlreadySent = errors.New("reset already sent for this decision")
	// ErrTimeout: a wait for a PowerState ran out of time.
	ErrTimeout = errors.New("timed out waiting for power state")
	// ErrBMC: the BMC answered with an error or could not be reached.
	ErrBMC = errors.New("BMC request failed")
)

// NotAllowedError is returned (matching ErrNotAllowed) when no reset type
// for Kind is allowed. It names what the system does allow.
type NotAllowedError struct {
	Kind    Kind
	Wanted  []string
	Allowed []string
}

func (e *NotAllowedError) Error() string {
	allowed := "none advertised"
	if len(e.Allowed) > 0 {
		allowed = strings.Join(e.Allowed, ", ")
	}
	return fmt.Sprintf("%s reset needs one of %s; the BMC allows: %s",
		e.Kind, strings.Join(e.Wanted, ", "), allowed)
}

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *NotAllowedError) Is(target error) bool { return target == ErrNotAllowed }

// ResetError is returned when a reset request failed or its outcome is
// unknown. The client has already re-read PowerState (After).
type ResetError struct {
	// Sent is the ResetType whose request failed.
	Sent string
	// Maybe is true when the BMC may have applied the reset anyway: a 5xx
	// answer, a timeout, a dropped connection. It is false only for a 4xx
	// answer, which is a definite refusal.
	Maybe bool
	// After is the PowerState read after the failure (StateUnknown if that
	// read failed too).
	After State
	Err   error
}

func (e *ResetError) Error() string {
	outcome := "refused"
	if e.Maybe {
		outcome = "outcome unknown"
	}
	after := string(e.After)
	if after == "" {
		after = "unknown"
	}
	return fmt.Sprintf("reset %s: %s (power state now %s): %v", e.Sent, outcome, after, e.Err)
}

func (e *ResetError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrBMC) true.
func (e *ResetError) Is(target error) bool { return target == ErrBMC }
