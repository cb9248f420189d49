package bmc

import (
	"fmt"
	"slices"
)

// Plan returns the ResetTypes to send, in order, for kind on a system that
// allows the given types and is in state. An empty plan means nothing needs
// sending (Off when already Off; On when On or PoweringOn). A Kind none of
// whose types is allowed yields a *NotAllowedError: nothing may be sent.
//
// Hard has a two-step fallback (ForceOff, then the On-kind type once Off);
// it is chosen only if both steps are allowed, so a plan is never left
// half-sendable.
func Plan(kind Kind, allowed []string, state State) ([]string, error) {
	first := func(wanted ...string) (string, error) {
		for _, w := range wanted {
			if slices.Contains(allowed, w) {
				return w, nil
			}
		}
		return "", &NotAllowedError{Kind: kind, Wanted: wanted, Allowed: slices.Clone(allowed)}
	}
	switch kind {
	case Soft:
		t, err := first("GracefulRestart")
		if err != nil {
			return nil, err
		}
		return []string{t}, nil
	case Hard:
		if t, err := first("PowerCycle", "ForceRestart"); err == nil {
			return []string{t}, nil
		}
		// ForceOff, then power on; PushPowerButton is safe there because
		// the second step is sent only once the system is Off.
		_, offErr := first("ForceOff")
		on, onErr := first("On", "ForceOn", "PushPowerButton")
		if offErr != nil || onErr != nil {
			return nil, &NotAllowedError{Kind: kind, Wanted: []string{"PowerCycle", "ForceRestart", "ForceOff+On", "ForceOff+ForceOn", "ForceOff+PushPowerButton"}, Allowed: slices.Clone(allowed)}
		}
		return []string{"ForceOff", on}, nil
	case Off:
		if state == StateOff {
			return nil, nil
		}
		t, err := first("ForceOff", "GracefulShutdown")
		if err != nil {
			return nil, err
		}
		return []string{t}, nil
	case On:
		if state == StateOn || state == StatePoweringOn {
			return nil, nil
		}
		if t, err := first("On", "ForceOn"); err == nil {
			return []string{t}, nil
		}
		if !slices.Contains(allowed, "PushPowerButton") {
			return nil, &NotAllowedError{Kind: kind, Wanted: []string{"On", "ForceOn", "PushPowerButton"}, Allowed: slices.Clone(allowed)}
		}
		if state != StateOff {
			return nil, fmt.Errorf("%w: on reset: only PushPowerButton is allowed and it toggles power; it is sent only while Off (power state is %q)", ErrNotAllowed, state)
		}
		return []string{"PushPowerButton"}, nil
	}
	return nil, fmt.Errorf("unknown reset kind %q", kind)
}
