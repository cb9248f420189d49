package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/testenv"
)

// Heals on the Redis topologies of deploy/README.md: a whole reboot
// runbook on a three-master Redis Cluster, and one through a Sentinel
// failover (SIGKILL of the primary right after the hard reset was
// decided and sent), with and without redis.min_replicas_acked.

const hungRebootSteps = "cordon:done drain:done capture:done soft-reboot:done wait-reboot:done power-cycle:done wait-ready:done verify-health:done uncordon:done"

func TestHealOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	ctx := context.Background()
	rc, rdb := testenv.NewRedisCluster(t)
	createNodes(t, "rcl-n1")
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	must(t, cluster.EnsureNamespace(ctx, "rcl"))
	if _, err := cluster.CreateReplicaSetPods(ctx, "rcl", "web", "rcl-n1", 3); err != nil {
		t.Fatal(err)
	}
	b := startBMC(t, bmcsim.System{ID: "rcl-n1", Faults: bmcsim.Faults{IgnoreGraceful: true}})
	section := fmt.Sprintf("redis: {cluster: {addrs: [%s]}}", strings.Join(rc.Addrs, ", "))
	rec, _ := startReceiverOn(t, section, "bmc: {inventory_file: "+b.Inventory+", timeout: 3s}", healRoutes, "cluster-healer")

	code, reply := rec.post(t, amPayload("NodeKernelDeadlock", "rcl-n1", "fp-rcl"))
	if code != http.StatusOK || reply.Alerts[0].RunID == "" {
		t.Fatalf("webhook %d %+v", code, reply)
	}
	run := rec.waitRunFor(t, reply.Alerts[0].RunID, 90*time.Second)
	if run.Status != runbooks.StatusSucceeded || stepsOutcomes(run) != hungRebootSteps {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), hungRebootSteps)
	}
	if got := b.resets("rcl-n1"); fmt.Sprint(got) != "[GracefulRestart ForceRestart]" {
		t.Fatalf("BMC resets %v, want one graceful and one hard reset", got)
	}
	if node(t, "rcl-n1").Spec.Unschedulable {
		t.Fatal("node not uncordoned")
	}
	// The run lives in the cluster, readable with the store on any seed.
	stored, err := runstore.New(rdb, "node-healer", time.Hour).Load(ctx, run.ID)
	testenv.ClusterOK(t, "load the run from the cluster", err)
	if stored.Status != runbooks.StatusSucceeded {
		t.Fatalf("stored run %s", stored.Status)
	}
}

// sentinelHeal is one heal of a hung node through a Sentinel-managed
// Redis whose primary is SIGKILLed the moment the hard reset reaches the
// BMC: the node lock is held and the power-cycle decision saved.
type sentinelHeal struct {
	s        *testenv.RedisSentinel
	b        *bmcEnv
	rec      *receiver
	node     string
	runID    string
	killedAt time.Time
	primary  string // the promoted replica
}

func startSentinelHeal(t *testing.T, node string, replicas int, extraRedis string, cutOff bool) *sentinelHeal {
	t.Helper()
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	ctx := context.Background()
	h := &sentinelHeal{s: testenv.NewRedisSentinel(t, testenv.SentinelOptions{Replicas: replicas}), node: node}
	createNodes(t, node)
	must(t, cluster.EnsureNamespace(ctx, "node-healer"))
	h.b = startBMC(t, bmcsim.System{ID: node, Faults: bmcsim.Faults{IgnoreGraceful: true}})
	section := fmt.Sprintf("redis:\n  sentinel: {master_name: %s, addrs: [%s]}\n%s", h.s.MasterName, strings.Join(h.s.Sentinels, ", "), extraRedis)
	h.rec, _ = startReceiverOn(t, section, "bmc: {inventory_file: "+h.b.Inventory+", timeout: 3s}", healRoutes, "sentinel-healer")
	if cutOff {
		// From here on the replica sees nothing the primary acknowledges.
		must(t, h.s.CutOffReplicas(ctx))
		t.Cleanup(func() { _ = h.s.ThawReplicas() })
	}
	code, reply := h.rec.post(t, amPayload("NodeKernelDeadlock", node, "fp-"+node))
	if code != http.StatusOK || reply.Alerts[0].RunID == "" {
		t.Fatalf("webhook %d %+v", code, reply)
	}
	h.runID = reply.Alerts[0].RunID

	waitFor(t, "the hard reset at the BMC", 60*time.Second, func() bool {
		return strings.Contains(fmt.Sprint(h.b.resets(node)), "ForceRestart")
	})
	old, err := h.s.KillPrimary(ctx)
	must(t, err)
	h.killedAt = time.Now()
	t.Logf("primary %s killed at the hard reset", old)
	if !cutOff {
		// A delivery while the primary is dead either fails (503, and
		// Alertmanager retries) or waits for the promoted replica and
		// finds the alert there (a duplicate): never a new run.
		t0 := time.Now()
		code, reply := h.rec.post(t, amPayload("NodeKernelDeadlock", node, "fp-"+node))
		if code != http.StatusServiceUnavailable && (code != http.StatusOK || reply.Alerts[0].Reason != "duplicate") {
			t.Fatalf("webhook with the primary dead: %d %+v, want 503 or a duplicate", code, reply)
		}
		t.Logf("webhook with the primary dead: %d after %s", code, time.Since(t0).Round(time.Millisecond))
	}
	if cutOff {
		// Let the lease run out while no primary answers, then let the
		// stale replica be promoted.
		time.Sleep(4 * time.Second)
		must(t, h.s.ThawReplicas())
	}
	h.primary, err = h.s.WaitFailover(ctx, old, 60*time.Second)
	must(t, err)
	t.Logf("failover to %s %s after the kill", h.primary, time.Since(h.killedAt).Round(time.Millisecond))
	return h
}

// completedSteps is stepsOutcomes without the entries of steps that were
// interrupted and resumed.
func completedSteps(r *runbooks.Run) string {
	var s []string
	for _, e := range r.Timeline {
		if e.Outcome != runbooks.OutcomeInterrupted {
			s = append(s, e.Step+":"+string(e.Outcome))
		}
	}
	return strings.Join(s, " ")
}

// storedRun reads the run from the promoted primary directly.
func (h *sentinelHeal) storedRun(t *testing.T) (*runbooks.Run, error) {
	t.Helper()
	c := h.s.Client(h.primary)
	defer c.Close()
	return runstore.New(c, "node-healer", time.Hour).Load(context.Background(), h.runID)
}

// With min_replicas_acked: 1, what node-healer acknowledged survives the
// failover: the run and its power-cycle decision are on the promoted
// replica, node-healer follows it without a restart, and the run
// completes with exactly one hard reset.
func TestHealSurvivesSentinelFailover(t *testing.T) {
	// Two replicas: once one is promoted, the other acknowledges.
	h := startSentinelHeal(t, "sfo-n1", 2, "  min_replicas_acked: 1", false)
	stored, err := h.storedRun(t)
	if err != nil {
		t.Fatalf("the acknowledged run is not on the promoted replica: %v", err)
	}
	if stored.Prior["power_cycle_sent"] == "" {
		t.Fatalf("the power-cycle decision is not on the promoted replica: prior %v, steps %s", stored.Prior, stepsOutcomes(stored))
	}
	run := h.rec.waitRunFor(t, h.runID, 120*time.Second)
	// A step the failover interrupted (its save failed) is resumed, and
	// shows twice: interrupted, then done.
	if run.Status != runbooks.StatusSucceeded || completedSteps(run) != hungRebootSteps {
		t.Fatalf("run %s: %s\n%s\nwant %s", run.Status, run.Error, stepsOutcomes(run), hungRebootSteps)
	}
	if got := h.b.resets(h.node); fmt.Sprint(got) != "[GracefulRestart ForceRestart]" {
		t.Fatalf("BMC resets %v, want exactly one hard reset", got)
	}
	if node(t, h.node).Spec.Unschedulable {
		t.Fatal("node not uncordoned")
	}
	// The same alert delivered again is a duplicate: the dedupe record
	// survived too.
	code, reply := h.rec.post(t, amPayload("NodeKernelDeadlock", h.node, "fp-"+h.node))
	if code != http.StatusOK || reply.Alerts[0].Reason != "duplicate" || reply.Alerts[0].RunID != h.runID {
		t.Fatalf("redelivery after failover: %d %+v, want a duplicate of run %s", code, reply, h.runID)
	}
}

// With min_replicas_acked: 0 (the default), deploy/README.md says a
// failover can lose an accepted alert, a lock and a reset decision, and
// that a second reset can follow. Here the replica misses every write
// after the webhook (cut off, then promoted): the acknowledged run is
// gone, the run in flight stops on its lost lease, and Alertmanager's
// redelivery of the same alert starts a new run that resets the node a
// second time.
func TestSentinelFailoverWithoutWaitLosesAcknowledged(t *testing.T) {
	h := startSentinelHeal(t, "sfl-n1", 1, "", true)
	if _, err := h.storedRun(t); !errors.Is(err, runbooks.ErrRunNotFound) {
		t.Fatalf("run on the promoted replica: %v, want it lost (not found)", err)
	}
	waitFor(t, "the API to answer 404 for the lost run", 30*time.Second, func() bool {
		resp, err := http.Get(h.rec.URL + "/api/v1/runs/" + h.runID)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})
	// The first run stopped: nobody uncordons the node.
	if !node(t, h.node).Spec.Unschedulable {
		t.Fatal("node uncordoned by a run whose lease was lost")
	}
	// Run IDs derive from the alert, so the redelivery names the same run;
	// what was lost shows in the reason: accepted, not duplicate.
	waitFor(t, "the redelivered alert accepted as new", 30*time.Second, func() bool {
		code, reply := h.rec.post(t, amPayload("NodeKernelDeadlock", h.node, "fp-"+h.node))
		if code != http.StatusOK {
			return false
		}
		if r := reply.Alerts[0]; r.Reason != "accepted" || r.RunID != h.runID {
			t.Fatalf("redelivery after failover: %+v, want accepted as new (the dedupe record was lost) for run %s", r, h.runID)
		}
		return true
	})
	run := h.rec.waitRunFor(t, h.runID, 120*time.Second)
	if got := h.b.resets(h.node); fmt.Sprint(got) != "[GracefulRestart ForceRestart GracefulRestart ForceRestart]" {
		t.Fatalf("BMC resets %v (second run %s: %s), want the reset repeated", got, run.Status, stepsOutcomes(run))
	}
	if run.Status != runbooks.StatusSucceeded {
		t.Fatalf("second run %s: %s\n%s", run.Status, run.Error, stepsOutcomes(run))
	}
}
