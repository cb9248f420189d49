package bmcsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// step is one PowerState change, after a delay from the previous one.
type step struct {
	after time.Duration
	state string
}

// plan returns the PowerState changes a reset type causes from state.
func (s *Sim) plan(resetType, state string, ignoreGraceful bool) []step {
	boot, down := s.opts.BootTime, s.opts.ShutdownTime
	on := state == "On" || state == "PoweringOn"
	switch resetType {
	case "On", "ForceOn":
		if !on {
			return []step{{0, "PoweringOn"}, {boot, "On"}}
		}
	case "ForceOff":
		// Always a plan, even when Off: it cancels a pending power-on.
		return []step{{0, "Off"}}
	case "GracefulShutdown":
		if state == "On" && !ignoreGraceful {
			return []step{{0, "PoweringOff"}, {down, "Off"}}
		}
	case "GracefulRestart":
		if state == "On" && !ignoreGraceful {
			return []step{{0, "PoweringOff"}, {down, "Off"}, {boot, "On"}}
		}
	case "ForceRestart", "PowerCycle":
		return []step{{0, "Off"}, {boot, "On"}}
	case "PushPowerButton":
		if on {
			return s.plan("GracefulShutdown", state, ignoreGraceful)
		}
		return s.plan("On", state, ignoreGraceful)
	}
	return nil
}

// reset handles POST …/Actions/ComputerSystem.Reset.
func (s *Sim) reset(w http.ResponseWriter, r *http.Request, id string) {
	sys, err := s.get(id)
	if err != nil {
		writeError(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "no system "+id)
		return
	}
	var req struct{ ResetType string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil || req.ResetType == "" {
		writeError(w, http.StatusBadRequest, "Base.1.8.ActionParameterMissing", "ResetType is required")
		return
	}
	t := req.ResetType

	s.mu.Lock()
	f := sys.faults
	allowed := slices.Contains(sys.allowed, t)
	sys.resets = append(sys.resets, Reset{Type: t, At: time.Now()})
	idx := len(sys.resets) - 1
	s.mu.Unlock()
	done := func(status int, applied bool) {
		s.mu.Lock()
		sys.resets[idx].Status, sys.resets[idx].Applied = status, applied
		s.mu.Unlock()
		s.log.Info("reset", "system", id, "type", t, "status", status, "applied", applied)
	}

	switch {
	case !allowed:
		done(http.StatusBadRequest, false)
		writeError(w, http.StatusBadRequest, "Base.1.8.ActionParameterNotSupported", "ResetType "+t+" is not supported")
		return
	case slices.Contains(f.Refuse, t):
		done(http.StatusBadRequest, false)
		writeError(w, http.StatusBadRequest, "Base.1.8.ActionNotSupported", "ResetType "+t+" refused")
		return
	case f.ResetStatus != 0 && !f.ApplyDespiteError:
		done(f.ResetStatus, false)
		writeError(w, f.ResetStatus, "Base.1.8.InternalError", "injected fault")
		return
	}

	s.apply(id, sys, t, f.IgnoreGraceful)

	if f.ResetHang > 0 {
		select {
		case <-r.Context().Done():
			done(0, true)
			// Write nothing: returning would make net/http send an implicit
			// 200, which a client racing its own deadline can still read.
			panic(http.ErrAbortHandler)
		case <-s.quit:
		case <-time.After(f.ResetHang):
		}
	}
	if f.ResetStatus != 0 {
		done(f.ResetStatus, true)
		writeError(w, f.ResetStatus, "Base.1.8.InternalError", "injected fault")
		return
	}
	done(http.StatusNoContent, true)
	w.WriteHeader(http.StatusNoContent)
}

// apply starts the PowerState changes of a reset, superseding pending ones.
func (s *Sim) apply(id string, sys *system, resetType string, ignoreGraceful bool) {
	sys.seq.Lock()
	defer sys.seq.Unlock()
	s.mu.Lock()
	steps := s.plan(resetType, sys.state, ignoreGraceful)
	if len(steps) == 0 {
		s.mu.Unlock()
		return
	}
	sys.gen++
	sys.stopTimers()
	changed := s.advance(id, sys, sys.gen, steps)
	s.mu.Unlock()
	for _, st := range changed {
		s.hook(id, st)
	}
}

// advance applies the leading zero-delay steps and schedules the next one.
// Call with sys.seq and s.mu held; it returns the states entered, for the
// caller to pass to the hook after releasing s.mu.
func (s *Sim) advance(id string, sys *system, gen int, steps []step) []string {
	var changed []string
	for len(steps) > 0 && steps[0].after == 0 {
		if sys.state != steps[0].state {
			sys.state = steps[0].state
			changed = append(changed, sys.state)
		}
		steps = steps[1:]
	}
	if len(steps) == 0 || s.closed {
		return changed
	}
	next := slices.Clone(steps)
	next[0].after = 0
	sys.timers = append(sys.timers, time.AfterFunc(steps[0].after, func() {
		sys.seq.Lock()
		defer sys.seq.Unlock()
		s.mu.Lock()
		if sys.gen != gen || s.closed {
			s.mu.Unlock()
			return
		}
		ch := s.advance(id, sys, gen, next)
		s.mu.Unlock()
		for _, st := range ch {
			s.hook(id, st)
		}
	}))
	return changed
}
