// Package locks holds node-healer's cluster-wide coordination in Redis.
// This file set provides node lease locks: one actor per node, renewed while
// a runbook runs, with a fencing number for every acquisition.
//
// # Data model
//
// A lock for name N under prefix P is two keys sharing the hash tag {N}, so
// they live in one Redis Cluster slot and one Lua script can touch both:
//
//	P:lock:{N}   "<token>:<fence>" with a PX expiry (the lease)
//	P:fence:{N}  last fence handed out for N; never expires
//
// Every operation is one Lua script, so each is atomic, and every script
// names all the keys it touches in KEYS (Redis Cluster routes on them):
//
//   - Acquire: if the lock key is free, compute the next fence and
//     SET token:fence PX ttl. If the key holds OUR token, this is go-redis
//     re-sending a command whose first attempt succeeded but whose reply was
//     lost (connection dropped after the server ran it): the script reports
//     "acquired" with the fence already stored, without handing out a new one.
//     Any other value means another holder: ErrNotAcquired.
//   - Refresh: compare-and-PEXPIRE; a mismatch is ErrLeaseLost.
//   - Release: compare-and-DEL; a foreign value is left alone.
//
// # Fencing
//
// Lease.Fence is strictly greater than every fence handed out earlier for the
// same name. Downstream writes that can carry it (annotations, persisted run
// state) let the newer holder's writes win over a stale holder that has not yet
// noticed it lost the lease. The next fence is max(last+1, Redis TIME in µs):
// ordinary acquisitions increment, and if Redis loses the counter (restart
// without persistence, failover to a lagging replica) the clock-based floor
// still puts new fences above the lost ones.
//
// # Lease loss
//
// Lease.Keep renews at TTL/3 in a goroutine and returns a context that is
// cancelled with cause ErrLeaseLost as soon as the lease is known to be gone
// (token mismatch) or could have expired: the client keeps a conservative
// local deadline (send time of the last successful renewal + TTL − drift), and
// if no renewal succeeds before it — Redis down, partitioned, slow — the
// context is cancelled at that deadline, before the server-side key can expire
// and let someone else in. Runbook steps check that context before acting; the
// safety model requires a worker that cannot renew to stop before its next step.
//
// # Why not bsm/redislock
//
// bsm/redislock is a good library and its refresh/release scripts are the same
// compare-and-act idea. It lacks what the safety model needs here: no fencing
// numbers (adding one changes the obtain script and the stored value, so it
// would be a fork, not a wrapper), no lease-loss signal (callers must build
// renewal and expiry tracking themselves), and whether a retried obtain whose
// first attempt succeeded counts as contention depends on the release (older
// ones used plain SETNX; newer ones compare a token prefix). Owning the few
// dozen lines of Lua and Go makes all three explicit and tested against a real
// redis-server in this package.
//
// # Cluster caps: rate limits, slots, windows
//
// Three more primitives enforce the safety model's cluster-wide caps. Each is
// one Lua script per call that reads the clock with Redis TIME, so replicas
// with skewed clocks agree, and each uses keys P:<kind>:{K}:
//
//   - RateLimiter (P:rate:{K}, a string): GCRA. The key holds the theoretical
//     arrival time (TAT, µs); with emission interval T = Period/Rate (rounded
//     up) an event is admitted when TAT − now ≤ (Burst−1)·T, which moves TAT to
//     max(TAT, now) + T. The key expires when TAT passes. Peek runs the same
//     script without writing. A re-sent Allow (lost reply) may consume twice:
//     the error is towards refusing. Used for reboots/power-cycles per period.
//   - Slots (P:slots:{pool}, a sorted set holder → expiry in ms): a concurrency
//     cap. Every write first drops expired holders, so a crashed holder's slot
//     frees after its TTL without anyone releasing it; Acquire is re-entrant
//     (a retry or a resumed run refreshes its own slot). The key's own expiry
//     follows its latest holder, so an abandoned pool disappears.
//   - Window (P:window:{K}, a sorted set id → record time in ms): runs per key
//     over a sliding window, idempotent on the run id. Use one window length
//     per key: Record drops events older than the window it is given.
//
// Metrics: node_healer_rate_limit_total{result=allowed|limited|error} and
// node_healer_slots_total{result=acquired|full|error}, all series at zero.
// Unlike the lock metrics, several RateLimiters and Slots may share one
// Registerer: a second registration reuses the counters already there.
package locks
