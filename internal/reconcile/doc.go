// Package reconcile makes sure nothing half-done is forgotten.
//
// node-healer's work is tracked twice in Redis: a stream entry leads a
// worker to a run, and the run's record says where it stopped. Lose either
// — Redis restarted without persistence, a failover dropped the last
// writes, someone trimmed the stream or acknowledged an entry by hand — and
// a node can stay cordoned, unhealed and unreported until Alertmanager's
// next repeat (hours), and even then the alert is a duplicate and starts
// nothing. The reconciler closes that gap.
//
// # What it finds and what it does
//
// Every replica runs a pass every workers.reconcile_interval; a short
// Redis lease ("reconcile") lets one replica pass at a time. A pass
// reads every non-final run record (internal/runstore), the stream and its
// consumer group's pending list (internal/queue), and the nodes (the
// informer cache), and looks for two things:
//
//   - A run that is not final, that no stream entry leads to (neither
//     pending in the consumer group nor unread), and that nobody saved
//     within the grace period: it is re-queued — a new stream entry for the
//     same run ID (queue.Requeue, which bypasses the alert-identity dedupe
//     that would otherwise drop it), so a worker loads the run and resumes
//     it from its saved step. Entries that no worker will be handed again
//     (acknowledged but left in the stream) are deleted with it. A run whose
//     entry is pending — deferred, held, running, or left by a dead worker
//     and claimed after workers.claim_after — is never queued twice.
//   - A node carrying node-healer's marks — cordon ownership
//     (node-healer.io/cordoned-by-run) while cordoned or tainted
//     node.kubernetes.io/out-of-service — whose run will never finish them:
//     the record is gone (Redis lost it), or the run failed or was cancelled
//     without undoing its cordon; and no stream entry leads to the run. It
//     is escalated to a human exactly as a run escalates (label and
//     annotation node-healer.io/needs-attention, annotation
//     node-healer.io/escalated-by-run, a Warning Event NodeHealerEscalated,
//     an audit line), with a reason saying what was found, e.g. "node
//     cordoned by run X, whose record is gone (Redis lost state?);
//     node-healer will not guess where it stopped". The node keeps its
//     state: nothing is uncordoned or untainted on a guess. Left alone: a
//     succeeded run's cordon (cordon and drain runbooks leave it by design),
//     a run that escalated itself, a node already escalated for that run
//     (even if an operator then removed the label), a node uncordoned by
//     hand, and nodes with the opt-out label. The out-of-service taint on a
//     node without cordon ownership names no run and is left alone too.
//
// Like the cluster-wide caps, this assumes one node-healer installation
// (one Redis) per cluster: another installation's marks would look
// orphaned to this one.
//
// Every finding is checked again, from Redis and the API server, while
// holding the node's lease ("node:<node>", the one workers take), so a
// node a worker is on is never touched: a contended lease means the
// finding is not an orphan. Node writes carry the resourceVersion they were
// decided on. A re-queue releases the lease before it adds the entry, so
// the worker handed the entry finds the node free.
//
// # The time bound
//
// Grace is 2 × locks.ttl in serve (at least 2 × interval): 60s with the
// defaults, so the bound is interval + grace = 90s. A run is re-queued at
// the first pass once it has been idle for grace, that is within interval +
// grace of the later of the loss and the run's last save. A marked node is
// escalated once its mark is grace old (node-healer's managedFields time,
// or the taint's timeAdded, rounded up to the second) and the finding has
// stood for grace − interval, pass after pass (first sightings are kept in
// Redis under <prefix>:reconcile:suspects, so every replica counts from
// the same one): within interval + grace of the later of the loss and the
// mark. The wait lets a live worker whose lease Redis lost notice it
// (within locks.ttl/3), stop and save its run again — which turns the
// finding into a run to re-queue instead of a human to page (with fenced
// writes a worker that knows its lease is lost writes nothing, so this is
// only the save it made before noticing).
//
// Measured in this package's tests (real redis-server; kube-apiserver,
// etcd and kwok for nodes), from the loss to the action:
//
//	interval 200ms, grace 800ms (bound 1s):
//	  stream entry deleted / XACKed by hand / stream and group gone → re-queued in 0.80s
//	  worker stopped while holding a run whose entry was lost    → re-queued 0.80s after it let go
//	interval 250ms, grace 1.5s (bound 1.75s):
//	  run record and entry lost, node cordoned long before      → escalated in 1.39–1.46s
//	  FLUSHALL while a worker is in the run                     → escalated in 1.45s
//	  node lease released by the worker holding it              → escalated in 0.22s
//	  record lost right after the cordon                        → escalated 1.6–2.4s after the cordon (never before grace)
//
// With the defaults (interval 30s, grace 60s) the bound is 90s.
//
// # Keys
//
// The reconciler reads the run store's and the queue's keys (see those
// packages) and takes leases with internal/locks; its own key, one hash
// written in MULTI (one key, so any slot on Redis Cluster), is
//
//	P:reconcile:suspects  finding (node|run|kind) → first sighting, ms
//	P:lock:{reconcile}    the lease of the replica running a pass
//
// Metrics: node_healer_reconcile_passes_total{result=ok|skipped|error},
// node_healer_orphans_total{kind=run_requeued|node_escalated} and
// node_healer_reconcile_last_success_timestamp_seconds. Every finding is a
// log line starting RECONCILE that says what happened and what to do.
package reconcile
