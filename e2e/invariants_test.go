package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// checker samples a fault case's world every 100 ms for the whole case —
// run records in Redis, the BMC simulator's reset log and, for control-
// plane cases, node readiness — and records every violation of what
// node-healer promises whatever fails:
//
//	(a) one node never has two active runs (started, not final);
//	(b) never more active runs than safety.max_concurrent_runs;
//	(c) one run's decision never sends a second reset: per node, no more
//	    hard resets (and no more graceful ones) than runs on it;
//	(d) a final run record never changes (status, next step, timeline);
//	(e) at the end, no node is left cordoned by a run that finished
//	    succeeded or cancelled (checked after a grace period);
//	(cp) control-plane nodes: at most max_concurrent_control_plane (1)
//	    active runs on them, and no control-plane node is touched (cordon,
//	    drain, reset) while another control-plane node is NotReady.
//
// Besides the 100 ms samples, every write of a run record is seen: the
// checker subscribes to Redis keyspace notifications for run keys and
// reads the record at once, so a final record overwritten within a few
// milliseconds (a woken replica's stale write) is caught too. One
// goroutine does every read, one after the other, and the checks run over
// the latest read of each run: reads are ordered, so a record never looks
// older than one already seen. A sample Redis cannot answer (frozen) is
// skipped and counted. Violations fail the test when the case ends.
type checker struct {
	t     *testing.T
	e     *faultEnv
	start time.Time
	stop  chan struct{}
	done  chan struct{}

	mu         sync.Mutex
	violations []string
	keys       map[string]bool
	finals     map[string]finalView       // run → what it was when first seen final
	nodeRuns   map[string]map[string]bool // node → runs seen on it
	runs       map[string]*runbooks.Run   // last sample of every run
	notReady   map[string][]interval      // node → NotReady intervals seen
	samples    int
	skipped    int
	writes     int // run writes seen through keyspace notifications
	maxActive  int
	finished   bool
}

type finalView struct {
	status   runbooks.Status
	next     int
	timeline string
	at       time.Duration
}

type interval struct{ from, to time.Time } // to zero: still NotReady

// cpMargin: a receiver's node cache learns of a readiness change a little
// after the API server; an action this soon after another control-plane
// node went NotReady is not held against it.
const cpMargin = time.Second

func startChecker(t *testing.T, e *faultEnv) *checker {
	c := &checker{t: t, e: e, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
		keys: map[string]bool{}, finals: map[string]finalView{}, nodeRuns: map[string]map[string]bool{},
		runs: map[string]*runbooks.Run{}, notReady: map[string][]interval{}}
	// Keyspace notifications for string writes (SET, also from scripts).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, e.rdb.ConfigSet(ctx, "notify-keyspace-events", "K$").Err())
	sub := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	ps := sub.PSubscribe(ctx, "__keyspace@0__:{"+faultPrefix+"}:run:*")
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatalf("subscribe to run writes: %v", err)
	}
	go c.loop(ps.Channel(redis.WithChannelSize(10000)))
	t.Cleanup(func() {
		c.halt()
		ps.Close()
		sub.Close()
		c.report()
	})
	return c
}

func (c *checker) loop(writes <-chan *redis.Message) {
	defer close(c.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	keyPrefix := "__keyspace@0__:{" + faultPrefix + "}:run:"
	c.sample()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			c.sample()
		case m, ok := <-writes:
			if !ok {
				writes = nil
				continue
			}
			id := strings.TrimPrefix(m.Channel, keyPrefix)
			if m.Payload != "set" || strings.Contains(id, ":") {
				continue // not a run record (e.g. its fence key)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			r, err := c.e.store.Load(ctx, id)
			cancel()
			if err == nil {
				c.mu.Lock()
				c.writes++
				c.mu.Unlock()
				c.checkRuns([]*runbooks.Run{r}, time.Now())
			}
		}
	}
}

func (c *checker) halt() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}

// violate records a violation once per key.
func (c *checker) violate(key, format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys[key] {
		return
	}
	c.keys[key] = true
	msg := fmt.Sprintf("[%6.1fs] INVARIANT "+format, append([]any{time.Since(c.start).Seconds()}, a...)...)
	c.violations = append(c.violations, msg)
	c.t.Log(msg)
}

func active(r *runbooks.Run) bool {
	return !r.Status.Final() && (r.Status == runbooks.StatusRunning || r.Status == runbooks.StatusHeld || len(r.Timeline) > 0)
}

func describe(r *runbooks.Run) string {
	return fmt.Sprintf("%s on %s (%s, next %d: %s)", r.ID, r.Node, r.Status, r.Next, outcomes(r))
}

func timelineJSON(r *runbooks.Run) string {
	b, _ := json.Marshal(r.Timeline)
	return string(b)
}

func (c *checker) sample() {
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	runs, err := c.e.store.List(ctx, 1000)
	cancel()
	c.mu.Lock()
	c.samples++
	if err != nil {
		c.skipped++
	}
	c.mu.Unlock()
	if err == nil {
		c.checkRuns(runs, now)
	}
	c.checkResets()
	if c.e.opts.WatchNodes {
		c.watchNodes(now)
	}
	if c.e.opts.ControlPlane {
		c.checkControlPlane()
	}
}

// checkRuns records the runs just read and checks (a), (b) and (d) over
// the latest read of every run.
func (c *checker) checkRuns(read []*runbooks.Run, now time.Time) {
	byNode := map[string][]*runbooks.Run{}
	var act []*runbooks.Run
	c.mu.Lock()
	for _, r := range read {
		c.runs[r.ID] = r
		if c.nodeRuns[r.Node] == nil {
			c.nodeRuns[r.Node] = map[string]bool{}
		}
		c.nodeRuns[r.Node][r.ID] = true
	}
	for _, r := range c.runs {
		if active(r) {
			act = append(act, r)
			byNode[r.Node] = append(byNode[r.Node], r)
		}
	}
	c.maxActive = max(c.maxActive, len(act))
	c.mu.Unlock()

	// (a)
	for node, rs := range byNode {
		if len(rs) > 1 {
			var d []string
			for _, r := range rs {
				d = append(d, describe(r))
			}
			sort.Strings(d)
			c.violate("a/"+node, "(a) node %s has %d active runs at once: %s", node, len(rs), strings.Join(d, "; "))
		}
	}
	// (b)
	if limit := c.e.opts.MaxRuns; len(act) > limit {
		var d []string
		for _, r := range act {
			d = append(d, describe(r))
		}
		sort.Strings(d)
		c.violate("b", "(b) %d active runs at once, max_concurrent_runs is %d: %s", len(act), limit, strings.Join(d, "; "))
	}
	// (d)
	for _, r := range read {
		c.mu.Lock()
		f, seen := c.finals[r.ID]
		if !seen && r.Status.Final() {
			c.finals[r.ID] = finalView{status: r.Status, next: r.Next, timeline: timelineJSON(r), at: now.Sub(c.start)}
		}
		c.mu.Unlock()
		if !seen {
			continue
		}
		if r.Status != f.status || r.Next != f.next || timelineJSON(r) != f.timeline {
			c.violate("d/"+r.ID, "(d) run %s on %s was final (%s, next %d) at %.1fs and changed afterwards: now %s, next %d, timeline %s",
				r.ID, r.Node, f.status, f.next, f.at.Seconds(), r.Status, r.Next, outcomesWorkers(r))
		}
	}
}

// outcomesWorkers is the timeline with the worker of each entry.
func outcomesWorkers(r *runbooks.Run) string {
	var s []string
	for _, e := range r.Timeline {
		s = append(s, fmt.Sprintf("%s:%s(%s)", e.Step, e.Outcome, e.Worker))
	}
	return strings.Join(s, " ")
}

// (c)
func (c *checker) checkResets() {
	for _, node := range c.e.nodes {
		soft, hard := c.e.resets(node)
		c.mu.Lock()
		allowed := len(c.nodeRuns[node])
		c.mu.Unlock()
		if hard > allowed {
			c.violate(fmt.Sprintf("c/hard/%s/%d", node, hard), "(c) node %s got %d hard resets for %d run(s): %s",
				node, hard, allowed, c.e.resetList(node))
		}
		if soft > allowed {
			c.violate(fmt.Sprintf("c/soft/%s/%d", node, soft), "(c) node %s got %d graceful reset requests for %d run(s): %s",
				node, soft, allowed, c.e.resetList(node))
		}
	}
}

func (c *checker) watchNodes(now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	list, err := c.e.cluster.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range list.Items {
		if !slices.Contains(c.e.nodes, n.Name) {
			continue
		}
		ready := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				ready = cond.Status == corev1.ConditionTrue
			}
		}
		ivs := c.notReady[n.Name]
		open := len(ivs) > 0 && ivs[len(ivs)-1].to.IsZero()
		switch {
		case !ready && !open && len(ivs) > 0 && !now.After(ivs[len(ivs)-1].to):
			// A LIST begun before the interval was closed (nodeReadyFrom).
		case !ready && !open:
			c.notReady[n.Name] = append(ivs, interval{from: now})
		case ready && open:
			ivs[len(ivs)-1].to = now
		}
	}
}

// nodeReadyFrom closes node's open NotReady interval at t, the moment a
// test began making it Ready: no receiver can see it Ready before, and the
// 100-ms samples (a LIST that may time out on a loaded machine) would close
// it later than the truth and blame an action taken in between.
func (c *checker) nodeReadyFrom(node string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ivs := c.notReady[node]
	if n := len(ivs); n > 0 && ivs[n-1].to.IsZero() {
		ivs[n-1].to = t
	}
}

// notReadyAt names another node that was NotReady at t (beyond cpMargin).
func (c *checker) notReadyAt(except string, t time.Time) (string, interval, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for node, ivs := range c.notReady {
		if node == except {
			continue
		}
		for _, iv := range ivs {
			if t.After(iv.from.Add(cpMargin)) && (iv.to.IsZero() || t.Before(iv.to)) {
				return node, iv, true
			}
		}
	}
	return "", interval{}, false
}

// touchSteps change a node (the run's start, eviction, resets).
var touchSteps = []string{"cordon", "drain", "soft-reboot", "power-cycle", "power-off"}

func (c *checker) checkControlPlane() {
	const maxCP = 1 // safety.max_concurrent_control_plane (default)
	c.mu.Lock()
	var act []string
	var runs []*runbooks.Run
	for _, r := range c.runs {
		runs = append(runs, r)
		if active(r) {
			act = append(act, describe(r))
		}
	}
	c.mu.Unlock()
	if len(act) > maxCP {
		sort.Strings(act)
		c.violate("cp/active", "(cp) %d control-plane nodes under remediation at once (max_concurrent_control_plane %d): %s",
			len(act), maxCP, strings.Join(act, "; "))
	}
	for _, r := range runs {
		for i, e := range r.Timeline {
			if !slices.Contains(touchSteps, e.Step) || e.Outcome == runbooks.OutcomeSkipped || e.Outcome == runbooks.OutcomeDryRun {
				continue
			}
			if y, iv, bad := c.notReadyAt(r.Node, e.Start); bad {
				c.violate(fmt.Sprintf("cp/step/%s/%d", r.ID, i), "(cp) %s of control-plane node %s started at %s while control-plane node %s was NotReady (since %s): %s",
					e.Step, r.Node, e.Start.Format("15:04:05.000"), y, iv.from.Format("15:04:05.000"), describe(r))
			}
		}
	}
	for _, node := range c.e.nodes {
		for i, rs := range c.e.sim.Resets(node) {
			if resetKind(rs.Type) == "" {
				continue
			}
			if y, iv, bad := c.notReadyAt(node, rs.At); bad {
				c.violate(fmt.Sprintf("cp/reset/%s/%d", node, i), "(cp) %s sent to control-plane node %s at %s while control-plane node %s was NotReady (since %s)",
					rs.Type, node, rs.At.Format("15:04:05.000"), y, iv.from.Format("15:04:05.000"))
			}
		}
	}
}

// finish ends the case's checks: a last sample, then (e) — no node left
// cordoned by a run that finished succeeded or cancelled — within grace.
// The violations are reported when the test ends.
func (c *checker) finish(grace time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(grace)
	var left []string
	for {
		left = left[:0]
		for _, node := range c.e.nodes {
			by, unsched, err := c.e.cordonedBy(node)
			if err != nil {
				left = append(left, node+": "+err.Error())
				continue
			}
			if by == "" {
				continue
			}
			r := c.e.load(by)
			if r != nil && (r.Status == runbooks.StatusSucceeded || r.Status == runbooks.StatusCancelled) {
				left = append(left, fmt.Sprintf("%s (unschedulable=%v) cordoned by run %s, which is %s: %s", node, unsched, by, r.Status, outcomesWorkers(r)))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, l := range left {
		c.violate("e/"+l, "(e) node left cordoned by a finished run: %s", l)
	}
	c.halt()
	c.mu.Lock()
	c.finished = true
	c.mu.Unlock()
}

// report fails the test with every violation.
func (c *checker) report() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Logf("invariant checker: %d samples (%d while Redis did not answer), %d run writes read, at most %d active run(s) at once, %d violation(s)",
		c.samples, c.skipped, c.writes, c.maxActive, len(c.violations))
	for _, v := range c.violations {
		c.t.Error(v)
	}
}
