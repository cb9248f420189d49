package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// IdleReplica is one replica's idle cost.
type IdleReplica struct {
	Name        string
	RSSBytes    int64
	CPUPercent  float64
	ReqPerMin   float64
	RequestsBy  []string
	PeakRSSByte int64
}

// Idle measures each replica over window, once its caches synced (the
// replicas are ready) and a warm-up passed.
func Idle(ctx context.Context, e *Env, warmup, window time.Duration) ([]IdleReplica, error) {
	sleep(ctx, warmup)
	type start struct {
		p  ProcSample
		t  float64
		by map[string]float64
	}
	starts := make([]start, len(e.Replicas))
	for i, r := range e.Replicas {
		p, err := SampleProc(r.Pid())
		if err != nil {
			return nil, err
		}
		m, err := Scrape(ctx, r.URL)
		if err != nil {
			return nil, err
		}
		t, by := KubeRequests(m)
		starts[i] = start{p, t, by}
	}
	sleep(ctx, window)
	out := make([]IdleReplica, len(e.Replicas))
	for i, r := range e.Replicas {
		p, err := SampleProc(r.Pid())
		if err != nil {
			return nil, err
		}
		m, err := Scrape(ctx, r.URL)
		if err != nil {
			return nil, err
		}
		t, by := KubeRequests(m)
		mins := p.At.Sub(starts[i].p.At).Minutes()
		out[i] = IdleReplica{Name: r.Name, RSSBytes: p.RSSBytes, CPUPercent: CPUPercent(starts[i].p, p),
			ReqPerMin: (t - starts[i].t) / mins, RequestsBy: diffBy(starts[i].by, by)}
	}
	return out, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// StormResult is what a storm did.
type StormResult struct {
	Nodes, Payloads, PerPayload int
	// OpenAfter: first payload sent → breaker open in Redis (0: never).
	OpenAfter time.Duration
	// Cordoned (any cordon on a storm node) and Resets (BMC resets on any
	// node), the maximum seen while watching and at the end.
	Cordoned, Resets int
	Latencies        []time.Duration
	Codes            map[int]int
	// Runs by status for the storm's nodes, before the alerts resolved.
	Runs map[runbooks.Status]int
	// ClosedAfter: resolved payloads sent → breaker closed (0: never);
	// Hold is the configured hold.
	ClosedAfter, Hold time.Duration
	// Cleared: resolved → no storm run left deferred.
	Cleared time.Duration
	// Requests node-healer sent to the API server during the storm
	// (first payload until the runs were cleared), by verb and resource.
	Requests   float64
	RequestsBy []string
}

// Storm sends a firing alert for each node, in payloads of at most batch
// alerts spread over one second, watches for watch (settle plus the time
// workers would need to act), then resolves them and waits for the
// breaker to close and the deferred runs to be cancelled.
func Storm(ctx context.Context, e *Env, obs *Observer, nodes []string, batch int, watch time.Duration) (StormResult, error) {
	res := StormResult{Nodes: len(nodes), PerPayload: batch, Hold: e.O.Hold}
	req0, by0, err := e.Requests(ctx)
	if err != nil {
		return res, err
	}
	startsAt := time.Now().UTC().Add(-time.Minute)
	alerts := make([]Alert, len(nodes))
	for i, n := range nodes {
		alerts[i] = NodeAlert("NodeKernelDeadlock", n, startsAt)
	}
	bodies := Batches(alerts, batch)
	res.Payloads = len(bodies)
	s := NewSender(e.urls(), e.Token)

	var opened atomic.Int64
	bctx, bcancel := context.WithCancel(ctx)
	var bwg sync.WaitGroup
	t0 := time.Now()
	bwg.Go(func() {
		if at, err := obs.WaitBreaker(bctx, true, watch+30*time.Second); err == nil {
			opened.Store(int64(at.Sub(t0)))
		}
	})
	maxCordoned := 0
	smp := Sample(200*time.Millisecond, func() {
		c, _ := obs.Cordoned(nodes)
		maxCordoned = max(maxCordoned, c)
	})
	if err := s.Spread(ctx, bodies, time.Second); err != nil {
		smp.Stop()
		bcancel()
		return res, fmt.Errorf("storm payloads: %w", err)
	}
	sleep(ctx, watch)
	smp.Stop()
	bwg.Wait()
	bcancel()
	res.OpenAfter = time.Duration(opened.Load())
	c, _ := obs.Cordoned(nodes)
	res.Cordoned = max(maxCordoned, c)
	res.Resets = len(e.Resets(e.Nodes))
	res.Latencies, res.Codes = s.Stats()
	runs, err := obs.Runs(ctx)
	if err != nil {
		return res, err
	}
	res.Runs = CountStatus(RunsOf(runs, nodes))

	// The alerts resolve (Alertmanager's send_resolved).
	now := time.Now().UTC()
	resolved := make([]Alert, len(alerts))
	for i, a := range alerts {
		resolved[i] = a.Resolved(now)
	}
	t1 := time.Now()
	if err := s.Spread(ctx, Batches(resolved, batch), time.Second); err != nil {
		return res, fmt.Errorf("resolved payloads: %w", err)
	}
	// Deferred runs whose alert resolved are cancelled (not started), while
	// the breaker waits out its hold.
	var cleared sync.WaitGroup
	cleared.Go(func() {
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			runs, err := obs.Runs(ctx)
			if err == nil {
				st := CountStatus(RunsOf(runs, nodes))
				if st[runbooks.StatusDeferred]+st[runbooks.StatusPending]+st[runbooks.StatusRunning]+st[runbooks.StatusHeld] == 0 {
					res.Cleared = time.Since(t1)
					return
				}
			}
			sleep(ctx, 500*time.Millisecond)
		}
	})
	if at, err := obs.WaitBreaker(ctx, false, e.O.Hold+2*time.Minute); err == nil {
		res.ClosedAfter = at.Sub(t1)
	} else {
		e.Logf("storm: %v", err)
	}
	cleared.Wait()
	c, _ = obs.Cordoned(nodes)
	res.Cordoned = max(res.Cordoned, c)
	res.Resets = len(e.Resets(e.Nodes))
	req1, by1, err := e.Requests(ctx)
	if err != nil {
		return res, err
	}
	res.Requests, res.RequestsBy = req1-req0, diffBy(by0, by1)
	return res, nil
}

func (e *Env) urls() []string {
	var u []string
	for _, r := range e.Replicas {
		u = append(u, r.URL)
	}
	return u
}

// WaveResult is what a wave within the limits did.
type WaveResult struct {
	Nodes int
	// Healed: run succeeded, node Ready and schedulable again, rebooted
	// through its BMC. NotHealed names the others with their run status.
	Healed    int
	NotHealed []string
	// MaxActive: most run slots held at one sample; MaxCordoned: most
	// wave nodes cordoned by node-healer at one sample; Samples taken.
	MaxActive, MaxCordoned, Samples int
	Cap                             int
	// Resets are the BMC resets of the wave's nodes, in order.
	Resets []time.Time
	// RateViolations counts pairs of resets closer than the GCRA allows
	// (with Tolerance); MinGap is the smallest gap between two resets.
	RateViolations int
	MinGap         time.Duration
	Tolerance      time.Duration
	// Total: the alerts sent → the last run finished.
	Total time.Duration
	// RunMedian is the median run (first step → finished); Head the
	// median time from a run's first step to its reset, Tail from its
	// reset to its end.
	RunMedian, Head, Tail time.Duration
	// RateBound and CapBound: the least total time the reboot rate and
	// the concurrency cap allow, given Head, Tail and RunMedian: settle,
	// then the first reset after Head, the last one (N-burst)·T later,
	// and Tail; or settle and ceil(N/cap) runs one after the other.
	RateBound, CapBound time.Duration
	// Requests to the API server during the wave, per healed run, and
	// the target (1.2 per evicted pod + 50).
	Requests, PerRun, Target float64
	RequestsBy               []string
	Load                     *LoadResult
}

// Wave sends one firing alert per node and waits until every run ended.
// With load, 100-alert payloads go to the webhook at loadRate per second
// for loadFor while the wave runs.
func Wave(ctx context.Context, e *Env, obs *Observer, nodes []string, timeout time.Duration, load *LoadSpec) (WaveResult, error) {
	res := WaveResult{Nodes: len(nodes), Cap: e.O.MaxConcurrent, Tolerance: time.Second}
	req0, by0, err := e.Requests(ctx)
	if err != nil {
		return res, err
	}
	startsAt := time.Now().UTC().Add(-time.Minute)
	alerts := make([]Alert, len(nodes))
	for i, n := range nodes {
		alerts[i] = NodeAlert("NodeKernelDeadlock", n, startsAt)
	}
	var mu sync.Mutex
	smp := Sample(200*time.Millisecond, func() {
		a, err := obs.Active(ctx)
		_, c := obs.Cordoned(nodes)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			res.MaxActive = max(res.MaxActive, a)
		}
		res.MaxCordoned = max(res.MaxCordoned, c)
		res.Samples++
	})
	defer func() {
		if smp != nil {
			smp.Stop()
		}
	}()
	s := NewSender(e.urls(), e.Token)
	t0 := time.Now()
	for _, b := range Batches(alerts, 100) {
		if _, err := s.Post(ctx, b); err != nil {
			return res, fmt.Errorf("wave payload: %w", err)
		}
	}
	var lwg sync.WaitGroup
	if load != nil {
		if load.Alerts == nil {
			load.Alerts = alerts
		}
		lwg.Go(func() {
			sleep(ctx, e.O.Settle) // the runs have started
			lr := RunLoad(ctx, e, *load)
			res.Load = &lr
		})
	}
	deadline := t0.Add(timeout)
	var last map[string]*runbooks.Run
	for {
		runs, err := obs.Runs(ctx)
		if err == nil {
			last = RunsOf(runs, nodes)
			done := len(last) == len(nodes)
			for _, r := range last {
				if !r.Status.Final() {
					done = false
				}
			}
			if done {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		sleep(ctx, time.Second)
	}
	smp.Stop()
	smp = nil
	lwg.Wait()
	var end time.Time
	var durs, heads, tails []time.Duration
	for _, n := range nodes {
		r := last[n]
		if r == nil {
			res.NotHealed = append(res.NotHealed, n+": no run")
			continue
		}
		if r.Updated.After(end) {
			end = r.Updated
		}
		node, err := obs.Node(n)
		rebooted := len(e.Resets([]string{n})) > 0
		switch {
		case r.Status != runbooks.StatusSucceeded:
			res.NotHealed = append(res.NotHealed, fmt.Sprintf("%s: run %s %s %s", n, r.ID, r.Status, r.Error))
		case err != nil || !NodeReady(node) || node.Spec.Unschedulable:
			res.NotHealed = append(res.NotHealed, n+": run succeeded but the node is not Ready and schedulable")
		case !rebooted:
			res.NotHealed = append(res.NotHealed, n+": run succeeded without a BMC reset")
		default:
			res.Healed++
		}
		// A run is active from its first step (a deferred run waited in
		// the queue before that) until it ended.
		if len(r.Timeline) == 0 {
			continue
		}
		first := r.Timeline[0].Start
		durs = append(durs, r.Updated.Sub(first))
		for _, en := range r.Timeline {
			if en.Step == "soft-reboot" && en.Outcome == runbooks.OutcomeDone {
				heads = append(heads, en.Start.Sub(first))
				tails = append(tails, r.Updated.Sub(en.End))
			}
		}
	}
	if !end.IsZero() {
		res.Total = end.Sub(t0)
	}
	res.RunMedian, res.Head, res.Tail = median(durs), median(heads), median(tails)
	for _, r := range e.Resets(nodes) {
		res.Resets = append(res.Resets, r.At)
	}
	T := e.O.RebootPeriod / time.Duration(e.O.RebootCount)
	res.RateViolations, res.MinGap = checkGCRA(res.Resets, T, e.O.RebootBurst, res.Tolerance)
	n := len(nodes)
	if extra := n - e.O.RebootBurst; extra > 0 {
		res.RateBound = e.O.Settle + res.Head + time.Duration(extra)*T + res.Tail
	} else {
		res.RateBound = e.O.Settle + res.Head + res.Tail
	}
	res.CapBound = e.O.Settle + time.Duration(math.Ceil(float64(n)/float64(e.O.MaxConcurrent)))*res.RunMedian
	req1, by1, err := e.Requests(ctx)
	if err != nil {
		return res, err
	}
	res.Requests, res.RequestsBy = req1-req0, diffBy(by0, by1)
	if res.Healed > 0 {
		res.PerRun = res.Requests / float64(res.Healed)
	}
	res.Target = 1.2*float64(e.O.PodsPerNode) + 50
	return res, nil
}

// checkGCRA counts pairs (i<j) of sorted event times with more events in
// [t_i, t_j] than a GCRA of interval T and burst b admits: j-i+1 events
// need t_j - t_i >= (j-i+1-b)*T (minus tol for the time between the
// rate decision and the BMC receiving the reset).
func checkGCRA(ts []time.Time, T time.Duration, b int, tol time.Duration) (violations int, minGap time.Duration) {
	minGap = -1
	for i := range ts {
		if i > 0 {
			if g := ts[i].Sub(ts[i-1]); minGap < 0 || g < minGap {
				minGap = g
			}
		}
		for j := i + b; j < len(ts); j++ {
			need := time.Duration(j-i+1-b) * T
			if ts[j].Sub(ts[i])+tol < need {
				violations++
			}
		}
	}
	return violations, max(minGap, 0)
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// LoadSpec is webhook load: payloads of PerPayload alerts at Rate per
// second for For.
type LoadSpec struct {
	Rate, PerPayload int
	For              time.Duration
	// Alerts are re-sent (duplicates of firing alerts, as Alertmanager
	// re-sends a group) together with Resolved ones, to fill each payload.
	Alerts, Resolved []Alert
	// InProcess sends from the harness's own process rather than from a
	// process of its own (loadgen.go).
	InProcess bool
}

// LoadResult is the webhook's latency under load: what the sender
// measured (PerURL is each replica's share, in Env's order) and more.
type LoadResult struct {
	loadOut
	Achieved float64 // payloads per second answered
	Sender   string  // where it ran
	Err      error   // the sender process failed
	// Inside the receivers (their webhook duration histograms): the
	// bucket bound under which 99 % were answered, and the share under 5 ms.
	ServerP99      time.Duration
	ServerUnder5ms float64
}

// RunLoad sends payloads at a fixed rate (sendAtRate), from a process of
// its own unless l.InProcess; a sender that failed is in Err.
func RunLoad(ctx context.Context, e *Env, l LoadSpec) LoadResult {
	var pool []Alert
	pool = append(pool, l.Alerts...)
	pool = append(pool, l.Resolved...)
	var body []byte
	if len(pool) > 0 {
		var as []Alert
		for i := range l.PerPayload {
			as = append(as, pool[i%len(pool)])
		}
		body = Payload(as)
	}
	res := LoadResult{Sender: "a process of its own"}
	h0, herr := e.WebhookBuckets(ctx)
	if l.InProcess {
		res.Sender = "the harness's process"
		res.loadOut = sendAtRate(ctx, NewSender(e.urls(), e.Token), body, l.Rate, l.For)
	} else {
		res.loadOut, res.Err = sendFromProcess(ctx, loadJob{URLs: e.urls(), Token: e.Token, Body: body, Rate: l.Rate, For: l.For})
		if res.Err != nil {
			return res
		}
	}
	res.Achieved = float64(len(res.Latencies)) / res.Elapsed.Seconds()
	if h1, err := e.WebhookBuckets(ctx); err == nil && herr == nil {
		res.ServerP99, res.ServerUnder5ms = BucketQuantile(h0, h1, .99)
	}
	return res
}
