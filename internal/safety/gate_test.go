package safety

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/locks"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

type staticNodes []NodeInfo

func (s staticNodes) ListNodes() ([]NodeInfo, error) { return s, nil }

// memRuns is a RunLoader over a map (the run store's Load).
type memRuns struct {
	mu   sync.Mutex
	runs map[string]*runbooks.Run
}

func (m *memRuns) Load(_ context.Context, id string) (*runbooks.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.runs[id]
	if !ok {
		return nil, runbooks.ErrRunNotFound
	}
	c := *r
	return &c, nil
}

func newRedisGate(t *testing.T, l Limits, nodes staticNodes) *Gate {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	rdb := testenv.NewRedisClient(t)
	return &Gate{L: l, Redis: rdb, Prefix: "t", Nodes: nodes, Log: slog.New(slog.DiscardHandler),
		Slots: locks.NewSlots(rdb, "t"), Rate: locks.NewRateLimiter(rdb, "t"), Window: locks.NewWindow(rdb, "t")}
}

func workers(names ...string) staticNodes {
	var out staticNodes
	for _, n := range names {
		out = append(out, NodeInfo{Name: n, Ready: true})
	}
	return out
}

func admit(t *testing.T, g *Gate, run *runbooks.Run) runbooks.Decision {
	t.Helper()
	d, err := g.Admit(context.Background(), run)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allow {
		run.Admitted = true
	}
	return d
}

// TestSlotHeldUntilFinal: an admitted run keeps its slot while it is not
// final — its worker stopped, the slot TTL passes — as long as a replica
// renews it (KeepSlots); another run waits. Once the record is final the
// slot is freed and the next run goes.
func TestSlotHeldUntilFinal(t *testing.T) {
	ttl := 600 * time.Millisecond
	g := newRedisGate(t, Limits{MaxRuns: 1, MaxControlPlaneRuns: 1, SlotTTL: ttl}, workers("n1", "n2"))
	ctx := context.Background()
	a := &runbooks.Run{ID: "a", Node: "n1", Status: runbooks.StatusRunning}
	b := &runbooks.Run{ID: "b", Node: "n2", Status: runbooks.StatusPending}
	runs := &memRuns{runs: map[string]*runbooks.Run{"a": a}}
	if d := admit(t, g, a); !d.Allow {
		t.Fatalf("first run refused: %s", d.Reason)
	}
	// a's worker lost its lease: nobody executes a for three TTLs, but
	// the replicas renew the slot of the open run.
	for end := time.Now().Add(3 * ttl); time.Now().Before(end); time.Sleep(ttl / 3) {
		if _, _, err := g.KeepSlots(ctx, runs); err != nil {
			t.Fatal(err)
		}
	}
	if d := admit(t, g, b); d.Allow || d.Kind != "concurrency" {
		t.Fatalf("second run while the first is unfinished: allow=%v kind=%s; max_concurrent_runs 1 must hold", d.Allow, d.Kind)
	}
	// a finishes (its record is final): KeepSlots frees its slot.
	runs.mu.Lock()
	a.Status = runbooks.StatusSucceeded
	runs.mu.Unlock()
	if _, freed, err := g.KeepSlots(ctx, runs); err != nil || freed != 1 {
		t.Fatalf("freed %d %v", freed, err)
	}
	if d := admit(t, g, b); !d.Allow {
		t.Fatalf("second run after the first finished: %s", d.Reason)
	}
	// Without renewal (every replica gone) a slot expires after its TTL.
	time.Sleep(ttl + 100*time.Millisecond)
	if hs, _ := g.ActiveRuns(ctx); len(hs) != 0 {
		t.Fatalf("slots after TTL without renewal: %v", hs)
	}
}

// TestDryRunTakesNoBudget: dry runs take no slot, do not count toward the
// per-node cap and take no reboot token, so they never block or escalate
// a real run.
func TestDryRunTakesNoBudget(t *testing.T) {
	g := newRedisGate(t, Limits{MaxRuns: 1, MaxControlPlaneRuns: 1, SlotTTL: time.Minute, NodeRuns: 1, NodeWindow: time.Hour,
		Reboots: locks.Limit{Rate: 1, Period: time.Hour, Burst: 1}}, workers("n1"))
	ctx := context.Background()
	for i := range 3 {
		dry := &runbooks.Run{ID: "dry" + string(rune('0'+i)), Node: "n1", DryRun: true}
		if d := admit(t, g, dry); !d.Allow {
			t.Fatalf("dry run %d refused: %s", i, d.Reason)
		}
		if d, err := g.Destructive(ctx, dry, "power-cycle"); err != nil || !d.Allow {
			t.Fatalf("dry run %d destructive: %+v %v", i, d, err)
		}
	}
	if hs, _ := g.ActiveRuns(ctx); len(hs) != 0 {
		t.Fatalf("dry runs hold slots: %v", hs)
	}
	real := &runbooks.Run{ID: "real", Node: "n1"}
	if d := admit(t, g, real); !d.Allow {
		t.Fatalf("real run after dry runs: %s (kind %s, escalate %v)", d.Reason, d.Kind, d.Escalate)
	}
	if d, err := g.Destructive(ctx, real, "power-cycle"); err != nil || !d.Allow {
		t.Fatalf("real run's reboot token: %+v %v", d, err)
	}
}

// TestControlPlaneCountsAdmittedRuns: three control-plane nodes alert at
// once. Only one is admitted; while it runs, the others wait (cap and
// quorum both count it), and a run already admitted is held before its
// next destructive step once a second control-plane node goes NotReady.
func TestControlPlaneCountsAdmittedRuns(t *testing.T) {
	nodes := staticNodes{
		{Name: "cp1", Ready: true, ControlPlane: true},
		{Name: "cp2", Ready: true, ControlPlane: true},
		{Name: "cp3", Ready: true, ControlPlane: true},
	}
	g := newRedisGate(t, Limits{MaxRuns: 10, MaxControlPlaneRuns: 3, SlotTTL: time.Minute}, nodes)
	ctx := context.Background()
	var admitted []string
	for _, n := range []string{"cp1", "cp2", "cp3"} {
		if d := admit(t, g, &runbooks.Run{ID: "r-" + n, Node: n}); d.Allow {
			admitted = append(admitted, n)
		} else if d.Kind != "control_plane" && d.Kind != "quorum" {
			t.Errorf("%s refused for %s: %s", n, d.Kind, d.Reason)
		}
	}
	if len(admitted) != 1 {
		t.Fatalf("admitted %v: at most one control-plane node at a time with 3 members (configured cap 3)", admitted)
	}
	run := &runbooks.Run{ID: "r-" + admitted[0], Node: admitted[0], Admitted: true}
	if d, err := g.Destructive(ctx, run, "drain"); err != nil || !d.Allow {
		t.Fatalf("destructive step of the admitted run: %+v %v", d, err)
	}
	// Another control-plane node goes NotReady: the admitted run holds.
	other := slices.IndexFunc(nodes, func(n NodeInfo) bool { return n.Name != admitted[0] })
	nodes[other].Ready = false
	d, err := g.Destructive(ctx, run, "power-cycle")
	if err != nil || d.Allow || d.Kind != "quorum" {
		t.Fatalf("destructive step while a second control-plane node is NotReady: %+v %v, want a quorum hold", d, err)
	}
}
