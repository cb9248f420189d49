package bmcsim

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Options configures a simulator.
type Options struct {
	// Mockup is the mockup directory; "" means [MockupDir].
	Mockup string
	// Systems are the simulated ComputerSystems. None means the mockup's own
	// system, under its own ID and otherwise unchanged.
	Systems []System
	// Username and Password are the credentials accepted for basic auth and
	// sessions. An empty Username turns authentication off.
	Username, Password string
	// BootTime is how long a restarting or powering-on system takes to come
	// back On.
	BootTime time.Duration
	// ShutdownTime is how long a graceful shutdown or restart spends in
	// PoweringOff before the system is Off.
	ShutdownTime time.Duration
	// PoweringOn makes a restarting system (ForceRestart, PowerCycle, a
	// GracefulRestart once Off) show PowerState PoweringOn from the moment
	// power comes back until its OS runs, as a real BMC does; without it the
	// system stays Off until On. A power-on from Off always shows PoweringOn.
	PoweringOn bool
	// OnPower, if set, is called after every PowerState change, in order per
	// system, outside the simulator's lock (it may read the simulator).
	OnPower func(system, state string)
	// Logger receives a line per reset request; nil discards.
	Logger *slog.Logger
}

// System is one simulated ComputerSystem.
type System struct {
	// ID is the system's Redfish Id, e.g. the Kubernetes node name.
	ID string
	// PowerState is the initial power state; "" means the mockup's.
	PowerState string
	// AllowPowerCycle adds PowerCycle to the advertised reset types (the DMTF
	// rack-mount mockup has none).
	AllowPowerCycle bool
	// Deny removes reset types from the advertised ones.
	Deny []string
	// ActionInfo advertises the reset types through a ResetActionInfo
	// resource (@Redfish.ActionInfo) instead of ResetType@Redfish.AllowableValues.
	ActionInfo bool
	// Faults are the faults injected from the start.
	Faults Faults
}

// Faults are injected per system and can be changed with [Sim.SetFaults].
type Faults struct {
	// ResetStatus, if non-zero, is the HTTP status answered to every reset
	// request that passes validation (e.g. 500).
	ResetStatus int
	// ApplyDespiteError applies the reset even though ResetStatus is
	// answered: the nasty case where the BMC did the work and said it failed.
	ApplyDespiteError bool
	// ResetHang holds the answer to a reset this long (or until the client
	// goes away) AFTER the reset was applied: a client timeout that does not
	// mean "not done".
	ResetHang time.Duration
	// IgnoreGraceful accepts GracefulRestart, GracefulShutdown and
	// PushPowerButton-while-on and does nothing: a hung OS.
	IgnoreGraceful bool
	// Refuse answers 400 to these reset types even though they are advertised.
	Refuse []string
	// BootTime, if non-zero, replaces Options.BootTime for this system: a
	// slow (or quick) but healthy boot.
	BootTime time.Duration
	// ShutdownTime, if non-zero, replaces Options.ShutdownTime: a slow
	// graceful shutdown (PoweringOff lasts this long).
	ShutdownTime time.Duration
	// NoBootProgress serves the system without its BootProgress property,
	// as a BMC whose firmware does not report it.
	NoBootProgress bool
}

// Reset is one reset request a system received.
type Reset struct {
	Type string
	// Status is the HTTP status answered (0 if the client went away first).
	Status int
	// Applied reports whether the request was acted on (state changed or
	// transitions scheduled, or an accepted no-op such as Nmi or an ignored
	// graceful request).
	Applied bool
	At      time.Time
}

// standardResetTypes are the Redfish ResetType values; all but PowerCycle
// are advertised when the template system lists none.
var standardResetTypes = []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton", "PowerCycle"}

// Sim is a Redfish BMC simulator; it is an http.Handler.
type Sim struct {
	opts     Options
	tree     tree
	template string // mockup system ID the simulated systems are cloned from
	log      *slog.Logger

	mu       sync.Mutex
	systems  map[string]*system
	order    []string
	sessions map[string]string // token → session ID
	nextSess int
	closed   bool
	quit     chan struct{} // closed by Close: ends hanging answers
}

type system struct {
	cfg     System
	allowed []string
	body    map[string]any // the template system resource, rewritten for this ID

	seq    sync.Mutex // orders transitions and their hook calls
	state  string
	faults Faults
	boot   string    // BootProgress.LastState
	bootAt time.Time // BootProgress.LastStateTime
	booted float64   // BootProgress.LastBootTimeSeconds (0: none since start)
	bootT0 time.Time // when power came on for the boot in progress
	gen    int       // bumped by every applied reset; stale timers do nothing
	timers []*time.Timer
	resets []Reset
}

// New loads the mockup and builds the simulated systems.
func New(o Options) (*Sim, error) {
	if o.Mockup == "" {
		d, err := MockupDir()
		if err != nil {
			return nil, err
		}
		o.Mockup = d
	}
	t, err := loadTree(o.Mockup)
	if err != nil {
		return nil, err
	}
	tmpl, err := t.templateSystem()
	if err != nil {
		return nil, err
	}
	s := &Sim{opts: o, tree: t, template: tmpl, log: o.Logger,
		systems: map[string]*system{}, sessions: map[string]string{}, quit: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(o.Systems) == 0 {
		o.Systems = []System{{ID: tmpl}}
	}
	for _, c := range o.Systems {
		if err := s.add(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Sim) add(c System) error {
	if c.ID == "" || !validID(c.ID) {
		return fmt.Errorf("system ID %q: want letters, digits, '.', '-' or '_'", c.ID)
	}
	if _, dup := s.systems[c.ID]; dup {
		return fmt.Errorf("system %q listed twice", c.ID)
	}
	body, allowed, err := s.cloneSystem(c.ID)
	if err != nil {
		return err
	}
	if c.AllowPowerCycle && !slices.Contains(allowed, "PowerCycle") {
		allowed = append(allowed, "PowerCycle")
	}
	allowed = slices.DeleteFunc(allowed, func(v string) bool { return slices.Contains(c.Deny, v) })
	state := c.PowerState
	if state == "" {
		state, _ = body["PowerState"].(string)
	}
	if state == "" {
		state = "On"
	}
	boot := bootOSRunning
	if state == "Off" {
		boot = bootNone
	}
	s.systems[c.ID] = &system{cfg: c, allowed: allowed, body: body, state: state, faults: c.Faults,
		boot: boot, bootAt: time.Now()}
	s.order = append(s.order, c.ID)
	return nil
}

func validID(id string) bool {
	for _, r := range id {
		ok := r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}

// ErrNoSystem is returned for an unknown system ID.
var ErrNoSystem = errors.New("no such system")

func (s *Sim) get(id string) (*system, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sys, ok := s.systems[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoSystem, id)
	}
	return sys, nil
}

// Systems lists the simulated system IDs in configuration order.
func (s *Sim) Systems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.order)
}

// PowerState returns a system's current PowerState ("" if unknown).
func (s *Sim) PowerState(id string) string {
	sys, err := s.get(id)
	if err != nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sys.state
}

// SetPowerState sets a system's PowerState directly, cancelling pending
// transitions, and calls OnPower.
func (s *Sim) SetPowerState(id, state string) error {
	sys, err := s.get(id)
	if err != nil {
		return err
	}
	sys.seq.Lock()
	defer sys.seq.Unlock()
	s.mu.Lock()
	sys.gen++
	sys.stopTimers()
	changed := sys.state != state
	sys.state = state
	switch state {
	case "On":
		sys.setBoot(bootOSRunning)
	case "Off":
		sys.setBoot(bootNone)
	}
	s.mu.Unlock()
	if changed {
		s.hook(id, state)
	}
	return nil
}

// BootProgress returns a system's BootProgress.LastState and
// LastStateTime ("" if the system is unknown).
func (s *Sim) BootProgress(id string) (string, time.Time) {
	sys, err := s.get(id)
	if err != nil {
		return "", time.Time{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return sys.boot, sys.bootAt
}

// SetFaults replaces a system's injected faults.
func (s *Sim) SetFaults(id string, f Faults) error {
	sys, err := s.get(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sys.faults = f
	return nil
}

// Resets returns the reset requests a system received, oldest first.
func (s *Sim) Resets(id string) []Reset {
	sys, err := s.get(id)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(sys.resets)
}

// Applied counts the reset requests a system acted on.
func (s *Sim) Applied(id string) int {
	n := 0
	for _, r := range s.Resets(id) {
		if r.Applied {
			n++
		}
	}
	return n
}

// AllowedResets returns the reset types a system advertises.
func (s *Sim) AllowedResets(id string) []string {
	sys, err := s.get(id)
	if err != nil {
		return nil
	}
	return slices.Clone(sys.allowed)
}

// Close stops pending power transitions and ends hanging answers; later
// resets are answered but schedule no transitions. Close is idempotent.
func (s *Sim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		close(s.quit)
	}
	s.closed = true
	for _, sys := range s.systems {
		sys.stopTimers()
	}
}

func (sys *system) stopTimers() {
	for _, t := range sys.timers {
		t.Stop()
	}
	sys.timers = nil
}

func (s *Sim) hook(id, state string) {
	if s.opts.OnPower != nil {
		s.opts.OnPower(id, state)
	}
}
