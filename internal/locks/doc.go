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
// Every operation is one Lua script, so each is atomic:
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
package locks
