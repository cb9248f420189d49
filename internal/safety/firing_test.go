package safety

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/testenv"
)

func newFiring(t *testing.T, maxAge time.Duration) (*Firing, *redis.Client) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
	c := testenv.NewRedis(t).Client(0)
	t.Cleanup(func() { c.Close() })
	return &Firing{Redis: c, Prefix: "t", MaxAge: maxAge}, c
}

func firingNodes(t *testing.T, f *Firing) []string {
	t.Helper()
	ns, err := f.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ns)
	return ns
}

// record runs RecordIn in a pipeline of its own and returns its result.
func record(t *testing.T, f *Firing, firing map[string]string, resolved ...string) FiringResult {
	t.Helper()
	ctx := context.Background()
	var read func() (FiringResult, error)
	if _, err := f.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		read = f.RecordIn(ctx, p, firing, resolved)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err := read()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestFiringCounts: the per-node counts follow alerts firing, re-sent,
// moving to another node and resolving; a record says how many nodes have
// a firing alert and how many had none before.
func TestFiringCounts(t *testing.T) {
	f, _ := newFiring(t, time.Hour)
	if got := record(t, f, map[string]string{"a": "n1", "b": "n1", "c": "n2"}); got != (FiringResult{Nodes: 2, New: 2}) {
		t.Fatalf("first record: %+v, want 2 nodes, 2 new", got)
	}
	if got := record(t, f, map[string]string{"a": "n1", "c": "n2"}); got != (FiringResult{Nodes: 2, New: 0}) {
		t.Fatalf("re-sent alerts: %+v, want 2 nodes, none new", got)
	}
	if got := firingNodes(t, f); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("nodes %v", got)
	}
	// One of n1's two alerts resolves: n1 still has one.
	if got := record(t, f, nil, "a"); got.Nodes != 2 {
		t.Fatalf("after resolving a: %+v, want 2 nodes", got)
	}
	// c's labels now name n3 (relabelled): n2 has none, n3 one.
	if got := record(t, f, map[string]string{"c": "n3"}); got != (FiringResult{Nodes: 2, New: 1}) {
		t.Fatalf("moved alert: %+v, want 2 nodes, 1 new", got)
	}
	if got := firingNodes(t, f); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Fatalf("nodes after the move %v, want n1 n3", got)
	}
	// Resolving unknown or already resolved alerts changes nothing.
	record(t, f, nil, "a", "zz")
	if got := record(t, f, nil, "b", "c"); got.Nodes != 0 {
		t.Fatalf("all resolved: %+v", got)
	}
	if got := firingNodes(t, f); len(got) != 0 {
		t.Fatalf("nodes after every alert resolved: %v", got)
	}
}

// TestFiringMatchesModel drives the record with random firing, re-sent,
// relabelled and resolved alerts, in payloads, and compares the nodes it
// reports after each payload with those of a plain map of every alert.
func TestFiringMatchesModel(t *testing.T) {
	f, _ := newFiring(t, time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]string{}
	for range 300 {
		firing := map[string]string{}
		var resolved []string
		for range rng.IntN(20) {
			fp := "fp" + strconv.Itoa(rng.IntN(60))
			if rng.IntN(3) == 0 {
				if _, ok := firing[fp]; !ok {
					resolved = append(resolved, fp)
				}
			} else if !slices.Contains(resolved, fp) {
				firing[fp] = "n" + strconv.Itoa(rng.IntN(12))
			}
		}
		for _, fp := range resolved {
			delete(model, fp)
		}
		for fp, n := range firing {
			model[fp] = n
		}
		res := record(t, f, firing, resolved...)
		want := map[string]bool{}
		for _, n := range model {
			want[n] = true
		}
		got := firingNodes(t, f)
		if res.Nodes != len(want) || len(got) != len(want) {
			t.Fatalf("record says %d nodes, Nodes lists %v; the alerts fire on %d: %v", res.Nodes, got, len(want), want)
		}
		for _, n := range got {
			if !want[n] {
				t.Fatalf("Nodes lists %s, which has no firing alert (want %v)", n, want)
			}
		}
	}
}

// TestFiringRebuildAndExpiry: alerts written to the hash by an older
// replica (no counts, no index) are counted; one it deletes stops
// counting; alerts not re-sent within MaxAge expire.
func TestFiringRebuildAndExpiry(t *testing.T) {
	f, c := newFiring(t, time.Hour)
	ctx := context.Background()
	now := time.Now().Unix()
	// As the previous version wrote them: fingerprint → node|seen.
	if err := c.HSet(ctx, "t:firing", "old1", fmt.Sprintf("n1|%d", now), "old2", fmt.Sprintf("n2|%d", now),
		"aged", fmt.Sprintf("n9|%d", now-7200)).Err(); err != nil {
		t.Fatal(err)
	}
	if got := firingNodes(t, f); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("nodes from an older replica's records: %v, want n1 n2 (n9's alert is older than MaxAge)", got)
	}
	if n, _ := c.HExists(ctx, "t:firing", "aged").Result(); n {
		t.Fatal("the aged-out alert is still in the hash")
	}
	record(t, f, map[string]string{"new": "n3"})
	// An older replica forgets old1 (its resolved notification).
	if err := c.HDel(ctx, "t:firing", "old1").Err(); err != nil {
		t.Fatal(err)
	}
	if got := firingNodes(t, f); !slices.Equal(got, []string{"n2", "n3"}) {
		t.Fatalf("after an older replica's delete: %v, want n2 n3", got)
	}

	// Expiry: an alert not re-sent within MaxAge stops counting.
	short := &Firing{Redis: c, Prefix: "e", MaxAge: time.Second}
	record(t, short, map[string]string{"x": "n1", "y": "n2"})
	time.Sleep(2100 * time.Millisecond)
	record(t, short, map[string]string{"y": "n2"}) // y re-sent: stays
	if got := firingNodes(t, short); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("after MaxAge: %v, want only n2 (re-sent)", got)
	}
}

// TestFiringLargePayload: more alerts in one record than Lua can pass to
// one command (unpack's limit) are recorded and resolved whole.
func TestFiringLargePayload(t *testing.T) {
	f, _ := newFiring(t, time.Hour)
	firing := map[string]string{}
	var fps []string
	for i := range 6000 {
		fp := fmt.Sprintf("fp%05d", i)
		firing[fp] = fmt.Sprintf("n%d", i%1500)
		fps = append(fps, fp)
	}
	if got := record(t, f, firing); got != (FiringResult{Nodes: 1500, New: 1500}) {
		t.Fatalf("6,000 alerts on 1,500 nodes: %+v", got)
	}
	if got := record(t, f, nil, fps[:5999]...); got.Nodes != 1 {
		t.Fatalf("after resolving all but one: %+v, want 1 node", got)
	}
}

// TestFiringResentWritesOnlyStale: a re-sent alert's last-seen time is
// rewritten only once older than MaxAge/12 (5 min of 1 h), so re-sent
// payloads mostly write nothing — and an alert re-sent in time never
// expires.
func TestFiringResentWritesOnlyStale(t *testing.T) {
	f, c := newFiring(t, time.Hour)
	ctx := context.Background()
	record(t, f, map[string]string{"recent": "n1", "old": "n2"})
	now := time.Now().Unix()
	recent, old := fmt.Sprintf("n1|%d", now-60), fmt.Sprintf("n2|%d", now-600)
	if err := c.HSet(ctx, "t:firing", "recent", recent, "old", old).Err(); err != nil {
		t.Fatal(err)
	}
	if got := record(t, f, map[string]string{"recent": "n1", "old": "n2"}); got != (FiringResult{Nodes: 2}) {
		t.Fatalf("re-sent: %+v", got)
	}
	if v, _ := c.HGet(ctx, "t:firing", "recent").Result(); v != recent {
		t.Errorf("seen a minute ago and re-sent: %q, want it left as %q", v, recent)
	}
	v, _ := c.HGet(ctx, "t:firing", "old").Result()
	if ts, _ := strconv.ParseInt(v[strings.IndexByte(v, '|')+1:], 10, 64); v[:3] != "n2|" || ts < now {
		t.Errorf("seen 10 minutes ago and re-sent: %q, want n2|<now>", v)
	}
}
