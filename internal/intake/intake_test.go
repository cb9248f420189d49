package intake

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/queue"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/testenv"
)

// roundTrips counts a client's round trips: one per command sent alone,
// one per pipeline.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n.Add(1); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

var at = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func req(fp, node string) runbooks.Request {
	return runbooks.Request{RunID: runbooks.RunID(fp, at), Fingerprint: fp, StartsAt: at, Node: node, Runbook: "cordon"}
}

// payload is a webhook payload's decisions: firing alerts (fp → node),
// each accepted, and resolved ones.
func payload(firing map[string]string, resolved ...string) ([]runbooks.Request, map[string]string, map[string]time.Time) {
	var reqs []runbooks.Request
	fps := make([]string, 0, len(firing))
	for fp := range firing {
		fps = append(fps, fp)
	}
	slices.Sort(fps)
	for _, fp := range fps {
		reqs = append(reqs, req(fp, firing[fp]))
	}
	res := map[string]time.Time{}
	for _, fp := range resolved {
		res[fp] = at.Add(time.Minute)
	}
	return reqs, firing, res
}

type fixture struct {
	in    *Intake
	q     *queue.Queue
	f     *safety.Firing
	kicks atomic.Int64
}

func newFixture(rdb redis.UniversalClient, o queue.Options) *fixture {
	fx := &fixture{q: queue.New(rdb, o), f: &safety.Firing{Redis: rdb, Prefix: o.Prefix}}
	fx.in = &Intake{Queue: fx.q, Firing: fx.f, Kick: func() { fx.kicks.Add(1) }}
	return fx
}

func (fx *fixture) record(reqs []runbooks.Request, firing map[string]string, resolved map[string]time.Time) ([]bool, error) {
	return fx.in.Record(context.Background(), reqs, firing, resolved)
}

func (fx *fixture) nodes(t *testing.T) []string {
	t.Helper()
	ns, err := fx.f.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ns)
	return ns
}

// TestRecordOneRoundTrip: a payload — jobs, firing and resolved alerts —
// is one round trip to Redis, whatever its size; redelivered alerts are
// duplicates; the breaker is kicked only when a node gets its first
// firing alert; with Redis down the payload fails (503) and after a
// restart (empty script cache) it goes through again.
func TestRecordOneRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	r := testenv.NewRedis(t)
	c := r.ClientFor(t, 0)
	rt := &roundTrips{}
	c.AddHook(rt)
	fx := newFixture(c, queue.Options{Prefix: "t"})
	ctx := context.Background()

	firing := map[string]string{}
	for i := range 100 {
		firing["fp"+string(rune('A'+i%26))+string(rune('a'+i/26))] = "n" + string(rune('0'+i%3))
	}
	added, err := fx.record(payload(firing, "gone"))
	if err != nil || len(added) != 100 || slices.Contains(added, false) {
		t.Fatalf("first payload: %d added, err %v; want 100", len(added), err)
	}
	if k := fx.kicks.Load(); k != 1 {
		t.Fatalf("%d kicks for a payload bringing 3 new nodes, want 1", k)
	}
	if got := fx.nodes(t); !slices.Equal(got, []string{"n0", "n1", "n2"}) {
		t.Fatalf("firing nodes %v", got)
	}
	if ok, end, err := fx.q.Resolved(ctx, "gone"); err != nil || !ok || !end.Equal(at.Add(time.Minute)) {
		t.Fatalf("resolved record: %v %v %v", ok, end, err)
	}
	if n, _ := c.XLen(ctx, fx.q.Stream()).Result(); n != 100 {
		t.Fatalf("stream has %d entries, want 100", n)
	}

	// Alertmanager re-sends the group: one round trip, all duplicates, no kick.
	before := rt.n.Load()
	added, err = fx.record(payload(firing))
	if err != nil || slices.Contains(added, true) {
		t.Fatalf("redelivery: added %v err %v; want every one a duplicate", added, err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Fatalf("a 100-alert payload took %d round trips, want 1", n)
	}
	if k := fx.kicks.Load(); k != 1 {
		t.Fatalf("redelivery kicked the breaker (%d kicks)", k)
	}

	// All resolve: one round trip; no node has a firing alert.
	var all []string
	for fp := range firing {
		all = append(all, fp)
	}
	before = rt.n.Load()
	if _, err := fx.record(nil, nil, payloadResolved(all)); err != nil {
		t.Fatal(err)
	}
	if n := rt.n.Load() - before; n != 1 {
		t.Fatalf("resolving 100 alerts took %d round trips, want 1", n)
	}
	if got := fx.nodes(t); len(got) != 0 {
		t.Fatalf("firing nodes after all resolved: %v", got)
	}

	// Redis down: an error (the webhook answers 503), nothing confirmed.
	r.Stop()
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if added, err := fx.in.Record(dctx, []runbooks.Request{req("late", "n5")}, map[string]string{"late": "n5"}, nil); err == nil {
		t.Fatalf("Record with Redis down: %v, want an error", added)
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	// Restarted empty (no persistence in tests): the scripts are loaded again.
	added, err = fx.in.Record(dctx, []runbooks.Request{req("late", "n5")}, map[string]string{"late": "n5"}, nil)
	if err != nil || !slices.Equal(added, []bool{true}) {
		t.Fatalf("after the restart: %v %v", added, err)
	}
	if got := fx.nodes(t); !slices.Equal(got, []string{"n5"}) {
		t.Fatalf("firing nodes after the restart: %v, want n5", got)
	}
	if k := fx.kicks.Load(); k != 2 {
		t.Fatalf("%d kicks, want 2 (n5 is new after the restart)", k)
	}
}

func payloadResolved(fps []string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, fp := range fps {
		out[fp] = at.Add(time.Hour)
	}
	return out
}

// TestRecordOnRedisCluster: the pipeline's two scripts each stay in one
// slot on a three-master Redis Cluster (any CROSSSLOT fails it).
func TestRecordOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	_, rdb := testenv.NewRedisCluster(t)
	fx := newFixture(rdb, queue.Options{Prefix: "t"})
	firing := map[string]string{}
	for i := range 20 {
		firing["fp"+string(rune('a'+i))] = "n" + string(rune('a'+i%4))
	}
	added, err := fx.record(payload(firing, "x", "y"))
	testenv.ClusterOK(t, "record", err)
	if len(added) != 20 || slices.Contains(added, false) {
		t.Fatalf("added %v", added)
	}
	if got := fx.nodes(t); len(got) != 4 {
		t.Fatalf("firing nodes %v, want 4", got)
	}
	ok, _, err := fx.q.Resolved(context.Background(), "y")
	testenv.ClusterOK(t, "resolved", err)
	if !ok {
		t.Fatal("y not recorded as resolved")
	}
}

// TestRecordWaitsForReplicas: with MinReplicas 1 the payload — the
// firing record included — is confirmed only once a replica has it.
func TestRecordWaitsForReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	primary, replica := testenv.NewReplicatedRedis(t)
	ctx := context.Background()
	pc, rc := primary.Client(0), replica.Client(0)
	t.Cleanup(func() { pc.Close(); rc.Close() })
	fx := newFixture(pc, queue.Options{Prefix: "t", MinReplicas: 1, ReplicationTimeout: 300 * time.Millisecond})
	if added, err := fx.record(payload(map[string]string{"a": "n1"})); err != nil || !added[0] {
		t.Fatalf("with a live replica: %v %v", added, err)
	}
	if n, _ := rc.HLen(ctx, "t:firing").Result(); n != 1 {
		t.Fatalf("the replica has %d firing records after a confirmed payload, want 1", n)
	}
	if err := replica.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = replica.Thaw() }()
	if _, err := fx.record(payload(map[string]string{"b": "n2"})); !errors.Is(err, queue.ErrNotReplicated) {
		t.Fatalf("with the replica frozen: %v, want ErrNotReplicated", err)
	}
}
