package pipeline

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
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
		q := make(chan string, 16)
		env.queues[n] = q
		env.wg.Add(1)
		go func() {
			defer env.wg.Done()
			for state := range q {
				p.power(n, state)
			}
		}()
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
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	env.srv = srv
	p.bmc = env
	p.BMC = sim
	dir := filepath.Join(p.Dir, "bmc")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bmc-password"), []byte("bmc-pw\n"), 0o600); err != nil {
		return err
	}
	inv := "defaults:\n  username: admin\n  password_file: bmc-password\n  ca_file: ca.pem\nnodes:\n"
	for _, n := range p.Nodes {
		inv += fmt.Sprintf("  %s:\n    endpoint: %s\n    system: %s\n", n, srv.URL, n)
	}
	env.inventory = filepath.Join(dir, "inventory.yml")
	return os.WriteFile(env.inventory, []byte(inv), 0o600)
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
	b.srv.Close()
	b.sim.Close()
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

// Resets lists the reset types a node's BMC received and applied.
func (p *Pipeline) Resets(node string) []string {
	var out []string
	for _, r := range p.BMC.Resets(node) {
		if r.Applied {
			out = append(out, r.Type)
		}
	}
	return out
}
