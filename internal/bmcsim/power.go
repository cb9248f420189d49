package bmcsim

import (
	"encoding/json"
	"net/http"
	"slices"
	"time"
)

// BootProgress.LastState values the simulator walks through (Redfish
// BootProgressTypes).
const (
	bootNone     = "None" // powered off
	bootCPU      = "PrimaryProcessorInitializationStarted"
	bootHardware = "SystemHardwareInitializationComplete"
	bootOS       = "OSBootStarted"
	// bootOSRunning: the OS is up; a hung OS stays here, its LastStateTime
	// getting older.
	bootOSRunning = "OSRunning"
)

// step is one PowerState and/or BootProgress change, after a delay from
// the previous one. An empty state or boot leaves that value as it is.
type step struct {
	after time.Duration
	state string
	boot  string
}

// plan returns the changes a reset type causes from state, with the
// system's faults (slow boot or shutdown, ignored graceful requests).
func (s *Sim) plan(resetType, state string, f Faults) []step {
	boot, down := s.opts.BootTime, s.opts.ShutdownTime
	if f.BootTime > 0 {
		boot = f.BootTime
	}
	if f.ShutdownTime > 0 {
		down = f.ShutdownTime
	}
	// restart: power comes back right after Off.
	restart := ""
	if s.opts.PoweringOn {
		restart = "PoweringOn"
	}
	on := state == "On" || state == "PoweringOn"
	switch resetType {
	case "On", "ForceOn":
		if !on {
			return booting(boot, "PoweringOn")
		}
	case "ForceOff":
		// Always a plan, even when Off: it cancels a pending power-on.
		return []step{{0, "Off", bootNone}}
	case "GracefulShutdown":
		if state == "On" && !f.IgnoreGraceful {
			return []step{{0, "PoweringOff", ""}, {down, "Off", bootNone}}
		}
	case "GracefulRestart":
		if state == "On" && !f.IgnoreGraceful {
			return append([]step{{0, "PoweringOff", ""}, {down, "Off", bootNone}}, booting(boot, restart)...)
		}
	case "ForceRestart", "PowerCycle":
		return append([]step{{0, "Off", bootNone}}, booting(boot, restart)...)
	case "PushPowerButton":
		if on {
			return s.plan("GracefulShutdown", state, f)
		}
		return s.plan("On", state, f)
	}
	return nil
}

// booting is a boot from power-on to a running OS over d: firmware
// (processor, then hardware initialisation done at d/4), the OS loader at
// d/2 (OSBootStarted), PowerState On with OSRunning at d. first is the
// PowerState while booting ("" leaves it as it is).
func booting(d time.Duration, first string) []step {
	q := d / 4
	return []step{{0, first, bootCPU}, {q, "", bootHardware}, {q, "", bootOS}, {d - 2*q, "On", bootOSRunning}}
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

	s.apply(id, sys, t, f)

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
func (s *Sim) apply(id string, sys *system, resetType string, f Faults) {
	sys.seq.Lock()
	defer sys.seq.Unlock()
	s.mu.Lock()
	steps := s.plan(resetType, sys.state, f)
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
		st := steps[0]
		if st.state != "" && sys.state != st.state {
			sys.state = st.state
			changed = append(changed, sys.state)
		}
		sys.setBoot(st.boot)
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

// setBoot records a BootProgress.LastState change at the current time
// ("" or the same state: no change). Call with s.mu held.
func (sys *system) setBoot(state string) {
	if state == "" || state == sys.boot {
		return
	}
	now := time.Now()
	switch state {
	case bootCPU:
		sys.bootT0 = now
	case bootOSRunning:
		if !sys.bootT0.IsZero() {
			sys.booted = now.Sub(sys.bootT0).Seconds()
		}
	}
	sys.boot, sys.bootAt = state, now
}
