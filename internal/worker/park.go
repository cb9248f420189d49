package worker

import (
	"sync"
	"time"

	"github.com/node-healer/node-healer/internal/queue"
)

// A deferred run's stream entry stays pending. Left alone, it is read
// again only when some worker claims it after workers.claim_after (1m by
// default): a concurrency slot freed meanwhile stays unused that long,
// and a wave of runs under max_concurrent_runs advances one batch per
// claim_after instead of as fast as the limits allow (measured with
// bench/scale, issue 16). So the worker that defers a run parks the
// delivery here, and a worker of this replica picks it up again:
//
//   - as soon as a run ends and so frees its slot: one parked run per
//     ended run, oldest first — in this replica the worker that finished
//     takes it on its next loop; other replicas hear of it through Redis
//     Pub/Sub (Queue.AnnounceEnded, a hint: a lost message only means the
//     old wait);
//   - when a parked run is admitted, the next one tries too (there may be
//     more room: slots freed while nothing here was parked);
//   - when the gate's RetryAt comes (the next reboot the rate allows, a
//     slot's expiry);
//   - when its alert resolved: every Pool.ResolvedCheck the alerts of the
//     parked runs are looked up in one round trip (none when nothing is
//     parked), and a resolved one is picked up to be cancelled — within
//     seconds of the resolved notification, where it used to stay
//     "deferred" until claim_after (51 s after a storm resolved, in
//     bench/scale).
//
// Picking up re-takes the entry only if it stayed idle since it was parked
// (Queue.Reclaim with that idle time): if another worker claimed or
// touched it, or it was acknowledged, the parked copy is dropped. Then the
// run is handled like any delivery — node lock first, then the gate — so
// one actor per node and every limit hold as before. Entries parked longer
// than claim_after are dropped: the ordinary claim takes them.
type parking struct {
	mu     sync.Mutex
	runs   []parked // oldest first
	tokens int      // runs that ended (or parked runs admitted) since
}

type parked struct {
	d       queue.Delivery
	since   time.Time // when this worker's delivery of it began
	retryAt time.Time
}

// maxParked bounds the parked deliveries of a replica (a storm defers
// hundreds); beyond it the oldest are dropped, to be claimed as before.
const maxParked = 5000

// reclaimMargin is taken off the idle time a parked entry must have: the
// entry's idle time was reset a moment before its delivery began.
const reclaimMargin = 100 * time.Millisecond

func (k *parking) park(d queue.Delivery, since, retryAt time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, p := range k.runs {
		if p.d.ID == d.ID {
			k.runs = append(k.runs[:i], k.runs[i+1:]...)
			break
		}
	}
	k.runs = append(k.runs, parked{d: d, since: since, retryAt: retryAt})
	if len(k.runs) > maxParked {
		k.runs = k.runs[len(k.runs)-maxParked:]
	}
}

// ended records that a run ended (a slot may be free).
func (k *parking) ended() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tokens = min(k.tokens+1, len(k.runs))
}

// next removes and returns the parked delivery to pick up now, if any:
// the oldest one when a run ended, else the first whose RetryAt passed.
// It also drops those parked for claimAfter or longer.
func (k *parking) next(now time.Time, claimAfter time.Duration) (parked, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	live := k.runs[:0]
	for _, p := range k.runs {
		if now.Sub(p.since) < claimAfter-reclaimMargin {
			live = append(live, p)
		}
	}
	clear(k.runs[len(live):])
	k.runs = live
	k.tokens = min(k.tokens, len(k.runs))
	if len(k.runs) == 0 {
		return parked{}, false
	}
	take := -1
	if k.tokens > 0 {
		k.tokens--
		take = 0
	} else {
		for i, p := range k.runs {
			if !p.retryAt.IsZero() && !p.retryAt.After(now) {
				take = i
				break
			}
		}
	}
	if take < 0 {
		return parked{}, false
	}
	p := k.runs[take]
	k.runs = append(k.runs[:take], k.runs[take+1:]...)
	return p, true
}

// fingerprints are the alerts of the parked runs (each once).
func (k *parking) fingerprints() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, p := range k.runs {
		if fp := p.d.Job.Fingerprint; fp != "" && !seen[fp] {
			seen[fp] = true
			out = append(out, fp)
		}
	}
	return out
}

// resolved makes due now the parked runs whose alert resolved (at or
// after the alert's start: a later firing of the same alert is a new
// run), and returns how many.
func (k *parking) resolved(at map[string]time.Time, now time.Time) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for i := range k.runs {
		p := &k.runs[i]
		if t, ok := at[p.d.Job.Fingerprint]; ok && !t.Before(p.d.Job.StartsAt) {
			p.retryAt = now
			n++
		}
	}
	return n
}

// wait is how long a read may block before a parked run's RetryAt comes:
// max when none is due sooner.
func (k *parking) wait(now time.Time, max time.Duration) time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	w := max
	for _, p := range k.runs {
		if !p.retryAt.IsZero() {
			w = min(w, p.retryAt.Sub(now))
		}
	}
	return min(max, w)
}
