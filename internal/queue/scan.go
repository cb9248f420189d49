package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ref is a stream entry and what it leads to.
type Ref struct {
	Entry    string        // stream entry ID
	RunID    string        // the run the entry's job names
	Node     string        // the job's node
	Pending  bool          // delivered to Consumer and not acknowledged
	Consumer string        // pending only
	Idle     time.Duration // pending only: since last delivered or touched
}

// Refs is a snapshot of which runs the stream still leads a worker to.
type Refs struct {
	// Live holds, by run ID, the entries a worker will still be handed:
	// pending in the consumer group (deferred, held by a worker, or left by
	// a dead one and claimed after ClaimAfter) or not read yet.
	Live map[string][]Ref
	// Dead are entries still in the stream that no worker will ever be
	// handed again: acknowledged but not deleted (a manual XACK), or behind
	// the group's cursor and not pending (the group was recreated or moved).
	Dead []Ref
}

// Has reports whether some entry still leads a worker to the run.
func (r *Refs) Has(runID string) bool { return len(r.Live[runID]) > 0 }

// DeadFor returns the IDs of the dead entries naming the run.
func (r *Refs) DeadFor(runID string) []string {
	var ids []string
	for _, d := range r.Dead {
		if d.RunID == runID {
			ids = append(ids, d.Entry)
		}
	}
	return ids
}

// scanPage bounds each XPENDING and XRANGE reply.
const scanPage = 500

// Refs reads the stream and the consumer group's pending list and tells,
// for every run, whether an entry still leads a worker to it.
//
// The reads are not one snapshot, so they are made in an order that can
// only err towards "live": the group's cursor first (an entry delivered
// after it was read still counts as unread), then the pending list (an
// entry acknowledged after it was read counts as pending), then the stream
// itself. Pending entries whose stream entry is gone (trimmed or deleted)
// carry no job and lead nowhere: XAUTOCLAIM drops them.
func (q *Queue) Refs(ctx context.Context) (*Refs, error) {
	out := &Refs{Live: map[string][]Ref{}}
	groups, err := q.rdb.XInfoGroups(ctx, q.stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return out, nil // no stream: nothing leads anywhere
		}
		return nil, fmt.Errorf("stream groups: %w", err)
	}
	hasGroup, cursor := false, "0-0"
	for _, g := range groups {
		if g.Name == q.group {
			hasGroup, cursor = true, g.LastDeliveredID
		}
	}
	pending := map[string]redis.XPendingExt{}
	if hasGroup {
		start := "-"
		for {
			ps, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q.stream, Group: q.group,
				Start: start, End: "+", Count: scanPage}).Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("stream pending list: %w", err)
			}
			for _, p := range ps {
				pending[p.ID] = p
			}
			if len(ps) < scanPage {
				break
			}
			start = "(" + ps[len(ps)-1].ID
		}
	}
	start := "-"
	for {
		msgs, err := q.rdb.XRangeN(ctx, q.stream, start, "+", scanPage).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("stream entries: %w", err)
		}
		for _, m := range msgs {
			var j Job
			s, _ := m.Values["job"].(string)
			if json.Unmarshal([]byte(s), &j) != nil || j.RunID == "" {
				continue // a worker drops it as a bad entry
			}
			ref := Ref{Entry: m.ID, RunID: j.RunID, Node: j.Node}
			p, isPending := pending[m.ID]
			switch {
			case isPending:
				ref.Pending, ref.Consumer, ref.Idle = true, p.Consumer, p.Idle
			case hasGroup && !after(m.ID, cursor):
				out.Dead = append(out.Dead, ref)
				continue
			}
			// Not pending and past the cursor, or no group yet (the first
			// read creates it from the stream's start): unread.
			out.Live[j.RunID] = append(out.Live[j.RunID], ref)
		}
		if len(msgs) < scanPage {
			break
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	return out, nil
}

// after reports whether stream ID a sorts after b ("ms-seq").
func after(a, b string) bool {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am > bm || (am == bm && as > bs)
}

func splitID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}
