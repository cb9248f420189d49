// Package safety is node-healer's cluster-wide safety gate: what must hold
// across every replica before a run starts and before each destructive
// step. It implements runbooks.Gate.
//
// Before a run starts (Admit): the global pause, the node's opt-out label,
// Alertmanager silences, a settle time (so an alert storm is seen whole),
// the blast-radius breaker, the per-node run cap (reached → escalate to a
// human), the control-plane cap and etcd quorum, and the cluster-wide cap
// on concurrent runs. A refused run is deferred, not dropped.
//
// Before a destructive step (Destructive): the pause, the opt-out label,
// silences, the route's maintenance windows, and the reboot rate limit
// (GCRA on Redis time, one token per run). A refused step holds the run.
//
// Every input that cannot be read refuses (fail closed): Redis, the node
// list, Alertmanager. All state lives in Redis, so every replica sees the
// same limits.
//
// # Keys
//
// Under the prefix P, each operation touches one key (so any key works on
// Redis Cluster); the caps are internal/locks primitives:
//
//	P:paused                 the global pause (JSON: by, reason, since)
//	P:breaker                hash: the blast-radius breaker's state
//	P:firing                 hash: fingerprint → "node|unix time" of firing alerts
//	P:slots:{runs}           concurrent runs (locks.Slots)
//	P:slots:{control-plane}  concurrent control-plane runs (locks.Slots)
//	P:rate:{reboots}         the reboot budget (locks.RateLimiter, GCRA)
//	P:window:{node-runs:N}   runs on node N in the window (locks.Window)
package safety
