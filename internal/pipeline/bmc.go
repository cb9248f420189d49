package pipeline

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/testenv"
)

// PowerEvent is one power state change a simulated BMC made.
type PowerEvent struct {
	Node  string
	State string // PoweringOff | Off | PoweringOn (Options.Shipped) | On
	At    time.Time
}

// bmcEnv is the Redfish simulator, one system per node, served over TLS.
// Its power hook plays the machine: Off stops the node's kubelet (kwok
// NotReady) and its node-problem-detector; On truncates the node's kernel
// log (a new boot), starts its node-problem-detector again and brings the
// node back Ready with a new boot ID.
type bmcEnv struct {
	sim       *bmcsim.Sim
	srv       *httptest.Server
	inventory string
	ipmi      []*testenv.IPMISim
	queues    map[string]chan string
	wg        sync.WaitGroup

	mu     sync.Mutex
	events []PowerEvent
}

func (p *Pipeline) startBMC() error {
	env := &bmcEnv{queues: map[string]chan string{}}
	var systems []bmcsim.System
	for _, n := range p.Nodes {
		systems = append(systems, bmcsim.System{ID: n, Faults: p.opts.Faults[n]})
		p.playPower(env, n)
	}
	bo := bmcsim.Options{Systems: systems, Username: "admin", Password: "bmc-pw",
		BootTime: 500 * time.Millisecond, ShutdownTime: 200 * time.Millisecond}
	if p.opts.Shipped {
		bo.BootTime, bo.ShutdownTime, bo.PoweringOn = ShippedBootTime, ShippedShutdownTime, true
	}
	bo.OnPower = func(system, state string) {
		env.mu.Lock()
		env.events = append(env.events, PowerEvent{Node: system, State: state, At: time.Now()})
		env.mu.Unlock()
		if q, ok := env.queues[system]; ok {
			q <- state
		}
	}
	sim, err := bmcsim.New(bo)
	if err != nil {
		return err
	}
	env.sim = sim
	srv, inventory, err := sim.ServeTLS(filepath.Join(p.Dir, "bmc"), p.Nodes)
	if err != nil {
		sim.Close()
		return err
	}
	env.srv, env.inventory = srv, inventory
	p.bmc = env
	p.BMC = sim
	return nil
}

// playPower starts the goroutine that plays node's power changes, in
// order, and returns the queue they go through.
func (p *Pipeline) playPower(env *bmcEnv, node string) chan<- string {
	q := make(chan string, 16)
	env.queues[node] = q
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		for state := range q {
			p.power(node, state)
		}
	}()
	return q
}

// power plays a power change on the "machine".
func (p *Pipeline) power(node, state string) {
	ctx, cancel := context.WithTimeout(p.ctx, 60*time.Second)
	defer cancel()
	npd := p.NPD[node]
	switch state {
	case "Off":
		if npd != nil {
			npd.Stop()
		}
		if err := p.Cluster.PowerOff(ctx, node); err != nil {
			p.logf("bmc: power off %s: %v", node, err)
		}
	case "On":
		if npd != nil {
			if err := npd.Truncate(); err != nil {
				p.logf("bmc: truncate %s: %v", npd.KernLog, err)
			}
		}
		if err := p.Cluster.PowerOn(ctx, node); err != nil {
			p.logf("bmc: power on %s: %v", node, err)
		}
		// As a DaemonSet pod, NPD starts once the node is up.
		if npd != nil {
			if err := npd.Start(ctx); err != nil {
				p.logf("bmc: start node-problem-detector on %s: %v", node, err)
			}
		}
	}
}

func (b *bmcEnv) stop() {
	if b == nil {
		return
	}
	if b.srv != nil {
		b.srv.Close()
		b.sim.Close()
	}
	for _, s := range b.ipmi {
		s.Stop()
	}
	for _, q := range b.queues {
		close(q)
	}
	b.wg.Wait()
}

// PowerEvents lists the power changes the BMCs made, oldest first.
func (p *Pipeline) PowerEvents() []PowerEvent {
	p.bmc.mu.Lock()
	defer p.bmc.mu.Unlock()
	return append([]PowerEvent(nil), p.bmc.events...)
}

// Resets lists the reset types a node's BMC received and applied: Redfish
// ResetTypes, or with IPMI BMCs what the simulated server acted on (see
// ipmiResets).
func (p *Pipeline) Resets(node string) []string {
	if s := p.IPMI[node]; s != nil {
		return ipmiResets(s)
	}
	var out []string
	for _, r := range p.BMC.Resets(node) {
		if r.Applied {
			out = append(out, r.Type)
		}
	}
	return out
}

// Power protocols (Options.BMC).
const (
	BMCRedfish = "redfish"
	BMCIPMI    = "ipmi"
)

// IPMIOffWait is node-healer's bmc.off_wait in a demo pipeline with IPMI
// BMCs (not Shipped): how long an IPMI soft reboot (chassis power soft,
// then on once off) waits for the OS to power the chassis off. A simulated
// server stops within a second; a hung one never does, and the soft reboot
// gives up after this long (the default is 2 minutes).
const IPMIOffWait = 10 * time.Second

// checkBMC validates and defaults Options.BMC.
func checkBMC(o *Options) error {
	switch o.BMC {
	case "":
		o.BMC = BMCRedfish
	case BMCRedfish:
	case BMCIPMI:
		for n, f := range o.Faults {
			f.IgnoreGraceful = false
			if !reflect.DeepEqual(f, bmcsim.Faults{}) {
				return fmt.Errorf("pipeline: %s's BMC faults (%+v) need the Redfish simulator; with IPMI BMCs only a hung OS (IgnoreGraceful) is simulated", n, f)
			}
		}
	default:
		return fmt.Errorf("pipeline: unknown BMC protocol %q (redfish or ipmi)", o.BMC)
	}
	return nil
}

// startIPMI starts one OpenIPMI ipmi_sim per node: a real IPMI 2.0 BMC on
// its own UDP port, whose simulated server (ipmi_sim's startcmd) plays the
// machine. The server stopping (a graceful shutdown, a power off or the
// first half of a power cycle) powers the kwok node off; starting again
// boots it, as the Redfish simulator's power hook does. A node with the
// IgnoreGraceful fault has a hung OS: its server ignores the soft (ACPI)
// shutdown.
func (p *Pipeline) startIPMI() error {
	env := &bmcEnv{queues: map[string]chan string{}}
	p.IPMI = map[string]*testenv.IPMISim{}
	p.bmc = env
	dir := filepath.Join(p.Dir, "bmc")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	const password = "ipmi-pw"
	inv := "defaults:\n  protocol: ipmi\n  username: admin\n  password_file: bmc-password\n  privilege: operator\n  interface: lanplus\nnodes:\n"
	for _, n := range p.Nodes {
		q := p.playPower(env, n)
		booted := false // the first start is the machine already running
		s, err := testenv.StartIPMISim(filepath.Join(dir, n), testenv.IPMISimOptions{Name: n, Password: password, OnPower: func(on bool) {
			if !booted {
				booted = on
				return
			}
			state := "Off"
			if on {
				state = "On"
			}
			env.mu.Lock()
			env.events = append(env.events, PowerEvent{Node: n, State: state, At: time.Now()})
			env.mu.Unlock()
			q <- state
		}})
		if err != nil {
			return fmt.Errorf("ipmi_sim for %s: %w", n, err)
		}
		p.IPMI[n] = s
		env.ipmi = append(env.ipmi, s)
		if p.opts.Faults[n].IgnoreGraceful {
			if err := s.SetHung(true); err != nil {
				return err
			}
		}
		inv += fmt.Sprintf("  %s:\n    host: 127.0.0.1\n    port: %d\n", n, s.Port)
	}
	if err := os.WriteFile(filepath.Join(dir, "bmc-password"), []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	env.inventory = filepath.Join(dir, "inventory.yml")
	return os.WriteFile(env.inventory, []byte(inv), 0o600)
}

// ipmiResets lists, in order, the power requests a node's simulated server
// acted on, from its own log: "soft" (chassis power soft: an ACPI
// shutdown request), "power-down" (chassis power off, or a power cycle's
// first half: ipmi_sim stops the server either way) and "reset" (chassis
// power reset).
func ipmiResets(s *testenv.IPMISim) []string {
	var out []string
	for _, e := range s.Events() {
		switch {
		case strings.HasPrefix(e, "soft "):
			out = append(out, "soft")
		case strings.HasPrefix(e, "off "):
			out = append(out, "power-down")
		case strings.HasPrefix(e, "reset "):
			out = append(out, "reset")
		}
	}
	return out
}
