package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/handlers"
	"github.com/node-healer/node-healer/internal/pipeline"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/testenv"
)

// The fault-injection suite's harness: lighter than the whole pipeline.
// Prometheus, node-problem-detector and Alertmanager add nothing when the
// faults are in node-healer's own dependencies, so a test posts
// Alertmanager's webhook payload to the real receiver binary itself. What
// is real: the receiver replicas (separate processes that can be frozen,
// killed and restarted), redis-server, kube-apiserver + etcd + kwok (one
// control plane shared by the suite, each case with nodes and a namespace
// of its own), and the Redfish BMC simulator, whose power changes drive
// the kwok nodes as a machine would.

// Timings every case runs with: short enough that a takeover takes
// seconds, long enough that a loaded 2-core machine does not lose leases
// by itself.
const (
	faultLockTTL    = 3 * time.Second // locks.ttl
	faultClaimAfter = 2 * time.Second // workers.claim_after (slots: 3× this)
	faultPrefix     = "node-healer"   // redis.key_prefix (default)
	faultAlert      = "NodeKernelDeadlock"
)

// faultOptions configure one case.
type faultOptions struct {
	// Nodes are created for the case (names unique across the suite).
	Nodes []string
	// ControlPlane labels every node node-role.kubernetes.io/control-plane.
	ControlPlane bool
	// PodsPerNode ReplicaSet pods per node, each node with a PDB (default 3).
	PodsPerNode int
	// Faults are BMC faults per node.
	Faults map[string]bmcsim.Faults
	// BootDelay holds a node's kubelet this long after the BMC reports
	// power On (a slow boot: wait-ready lasts about this long).
	BootDelay map[string]time.Duration
	// Params are the reboot route's parameters (over faultParams).
	Params map[string]string
	// MaxRuns is safety.max_concurrent_runs (default 1); the checker
	// enforces it.
	MaxRuns int
	// Safety is added to the safety section (YAML flow keys).
	Safety string
	// Replicas are started at once, named healer-a, healer-b… (default 2).
	// Use -1 to start none (the test starts them with startReplica).
	Replicas int
	// WatchNodes samples node readiness every 100 ms (control-plane checks).
	WatchNodes bool
}

// faultParams: runs take ~10 s; drains are allowed a minute (a test
// blocks them with a PDB), the node must come back within a minute.
var faultParams = map[string]string{"reboot_timeout": "3s", "ready_timeout": "60s", "healthy_for": "1s", "drain_timeout": "60s"}

// faultEnv is one case's world.
type faultEnv struct {
	t       *testing.T
	name    string
	dir     string
	cluster *testenv.Cluster
	redis   *testenv.Redis
	rdb     *redis.Client // short timeouts: a frozen Redis must not stall the test
	store   *runstore.Store
	sim     *bmcsim.Sim
	nodes   []string
	ns      string
	pods    int
	config  string
	token   string
	opts    faultOptions

	mu        sync.Mutex
	replicas  []*pipeline.Receiver
	bootDelay map[string]time.Duration

	check *checker
}

// shared control plane of the suite (started by TestFault).
var faultCluster *testenv.Cluster

func newFaultEnv(t *testing.T, name string, o faultOptions) *faultEnv {
	t.Helper()
	if faultCluster == nil {
		t.Fatal("no control plane: fault cases run under TestFault")
	}
	if o.PodsPerNode == 0 {
		o.PodsPerNode = 3
	}
	if o.MaxRuns == 0 {
		o.MaxRuns = 1
	}
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	e := &faultEnv{t: t, name: name, dir: t.TempDir(), cluster: faultCluster, nodes: o.Nodes, ns: "fault-" + name,
		pods: o.PodsPerNode, token: "fault-webhook-token", opts: o, bootDelay: map[string]time.Duration{}}
	for n, d := range o.BootDelay {
		e.bootDelay[n] = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	e.redis = testenv.NewRedis(t)
	e.rdb = redis.NewClient(&redis.Options{Addr: e.redis.Addr, DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { e.rdb.Close() })
	e.store = runstore.New(e.rdb, faultPrefix, 0)

	c := e.cluster
	must(t, c.CreateNodes(ctx, o.Nodes...))
	t.Cleanup(func() {
		// Fewer nodes for kwok to keep alive while the other cases run.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range o.Nodes {
			_ = c.Client.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{})
		}
	})
	if o.ControlPlane {
		for _, n := range o.Nodes {
			patch := []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":""}}}`)
			if _, err := c.Client.CoreV1().Nodes().Patch(ctx, n, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	must(t, c.EnsureNamespace(ctx, e.ns))
	must(t, c.EnsureNamespace(ctx, "node-healer"))
	must(t, c.EnsureNamespace(ctx, "node-healer-exec")) // node_exec.namespace default
	for _, n := range o.Nodes {
		if _, err := c.CreateReplicaSetPods(ctx, e.ns, "web-"+n, n, o.PodsPerNode); err != nil {
			t.Fatal(err)
		}
		one := intstr.FromInt32(1)
		pdb := &policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + n, Namespace: e.ns},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web-" + n}}},
		}
		if _, err := c.Client.PolicyV1().PodDisruptionBudgets(e.ns).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		must(t, e.setPDB(ctx, n, true))
	}
	inventory := e.startBMC(t)

	tokenFile := filepath.Join(e.dir, "webhook-token")
	must(t, os.WriteFile(tokenFile, []byte(e.token+"\n"), 0o600))
	params := map[string]string{}
	for k, v := range faultParams {
		params[k] = v
	}
	for k, v := range o.Params {
		params[k] = v
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var ps []string
	for _, k := range keys {
		ps = append(ps, k+": "+params[k])
	}
	safety := fmt.Sprintf("max_concurrent_runs: %d, settle: 300ms, reboots: {count: 100, period: 1m, burst: 100}, "+
		"breaker: {max_unhealthy_percent: 100, min_unhealthy_nodes: 1000}", o.MaxRuns)
	if o.Safety != "" {
		safety += ", " + o.Safety
	}
	// reconcile_interval 10m: every case is its own node-healer (its own
	// Redis) in one shared cluster, so each would take the others' cordoned
	// nodes for orphans (no run in its Redis) and escalate them; within a
	// case's minute the reconciler would not act anyway (grace 2×interval).
	cfg := fmt.Sprintf(`# written by the fault-injection suite (e2e/fault_env_test.go)
redis: {url: %q}
webhook: {auth: {bearer_token_file: %q}}
bmc: {inventory_file: %q, timeout: 10s}
workers: {count: 2, claim_after: %s, reconcile_interval: 10m}
locks: {ttl: %s}
safety: {%s}
routes:
  - name: reboot
    matchers: ['alertname=%q']
    runbook: reboot
    params: {%s}
`, e.redis.URL(0), tokenFile, inventory, faultClaimAfter, faultLockTTL, safety, faultAlert, strings.Join(ps, ", "))
	e.config = filepath.Join(e.dir, "node-healer.yml")
	must(t, os.WriteFile(e.config, []byte(cfg), 0o600))

	e.check = startChecker(t, e)
	t.Cleanup(func() {
		// Thaw and stop every replica (a frozen one would not see SIGTERM).
		e.mu.Lock()
		rs := append([]*pipeline.Receiver(nil), e.replicas...)
		e.mu.Unlock()
		for _, r := range rs {
			if r.Running() {
				_ = r.Signal(syscall.SIGCONT)
			}
		}
		var wg sync.WaitGroup
		for _, r := range rs {
			wg.Go(r.Stop)
		}
		wg.Wait()
		if t.Failed() {
			for _, r := range rs {
				t.Logf("--- %s (last 60 lines) ---\n%s", r.Log, tailLines(r.Log, 60))
			}
		}
	})
	for range max(o.Replicas, 0) {
		e.startReplica(ctx)
	}
	return e
}

// startBMC serves a simulated BMC per node over TLS and writes the
// inventory. Its power changes play the machine: Off makes the kwok node
// NotReady; On brings it back with a new boot ID after the node's boot delay.
func (e *faultEnv) startBMC(t *testing.T) string {
	queues := map[string]chan string{}
	var systems []bmcsim.System
	var wg sync.WaitGroup
	for _, n := range e.nodes {
		systems = append(systems, bmcsim.System{ID: n, Faults: e.opts.Faults[n]})
		q := make(chan string, 32)
		queues[n] = q
		wg.Go(func() {
			for state := range q {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				var err error
				switch state {
				case "Off":
					err = e.cluster.PowerOff(ctx, n)
				case "On":
					e.mu.Lock()
					d := e.bootDelay[n]
					e.mu.Unlock()
					time.Sleep(d)
					err = e.cluster.PowerOn(ctx, n)
				}
				cancel()
				if err != nil {
					t.Logf("bmc: power %s %s: %v", state, n, err)
				}
			}
		})
	}
	sim, err := bmcsim.New(bmcsim.Options{Systems: systems, Username: "admin", Password: "bmc-pw",
		BootTime: 500 * time.Millisecond, ShutdownTime: 200 * time.Millisecond,
		OnPower: func(system, state string) {
			if q, ok := queues[system]; ok {
				q <- state
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	})
	dir := filepath.Join(e.dir, "bmc")
	must(t, os.MkdirAll(dir, 0o700))
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	must(t, os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "bmc-password"), []byte("bmc-pw\n"), 0o600))
	inv := "defaults:\n  username: admin\n  password_file: bmc-password\n  ca_file: ca.pem\nnodes:\n"
	for _, n := range e.nodes {
		inv += fmt.Sprintf("  %s:\n    endpoint: %s\n    system: %s\n", n, srv.URL, n)
	}
	path := filepath.Join(dir, "inventory.yml")
	must(t, os.WriteFile(path, []byte(inv), 0o600))
	return path
}

// faultReceiver is the receiver binary the cases run: the package's own
// build, or $NODE_HEALER_FAULT_RECEIVER (another build, e.g. of an older
// commit, to see which faults it does not survive).
func faultReceiver() string {
	if p := os.Getenv("NODE_HEALER_FAULT_RECEIVER"); p != "" {
		return p
	}
	return receiverBin
}

// startReplica starts the next replica (healer-a, healer-b, …) with env
// added to its environment, and waits until it is ready.
func (e *faultEnv) startReplica(ctx context.Context, env ...string) *pipeline.Receiver {
	e.t.Helper()
	e.mu.Lock()
	name := fmt.Sprintf("healer-%c", 'a'+len(e.replicas))
	e.mu.Unlock()
	r, err := pipeline.NewReceiver(name, faultReceiver(), e.config, e.cluster.Kubeconfig, e.dir, env...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.replicas = append(e.replicas, r)
	e.mu.Unlock()
	if err := r.Start(ctx); err != nil {
		e.t.Fatalf("start replica %s: %v\n%s", name, err, tailLines(r.Log, 40))
	}
	return r
}

// replica returns the replica whose name is (the prefix of) a timeline
// entry's worker.
func (e *faultEnv) replica(worker string) *pipeline.Receiver {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.replicas {
		if worker == r.Name || strings.HasPrefix(worker, r.Name+"-") {
			return r
		}
	}
	return nil
}

func (e *faultEnv) other(r *pipeline.Receiver) *pipeline.Receiver {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.replicas {
		if x != r {
			return x
		}
	}
	return nil
}

// setBootDelay changes a node's boot delay.
func (e *faultEnv) setBootDelay(node string, d time.Duration) {
	e.mu.Lock()
	e.bootDelay[node] = d
	e.mu.Unlock()
}

// alert posts one Alertmanager webhook notification (v4) firing the
// kernel-deadlock alert for nodes to a running, unfrozen replica, and
// returns the run ID per node.
func (e *faultEnv) alert(nodes ...string) map[string]string {
	e.t.Helper()
	var alerts []string
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for _, n := range nodes {
		h := fnv.New64a()
		h.Write([]byte(e.name + "/" + n))
		alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":%q,"node":%q,"severity":"critical","node_healer":"true","remediation":"reboot"},`+
			`"annotations":{},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus/graph","fingerprint":"%016x"}`,
			faultAlert, n, now, h.Sum64()))
	}
	body := fmt.Sprintf(`{"version":"4","groupKey":"{}/{node_healer=\"true\"}:{alertname=\"%s\"}","status":"firing","receiver":"node-healer","groupLabels":{"alertname":%q},`+
		`"commonLabels":{},"commonAnnotations":{},"externalURL":"http://alertmanager:9093","alerts":[%s]}`, faultAlert, faultAlert, strings.Join(alerts, ","))
	var last error
	for range 3 {
		r := e.liveReplica()
		if r == nil {
			e.t.Fatal("no running replica to post the alert to")
		}
		req, _ := http.NewRequest(http.MethodPost, r.URL+"/webhook", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			last = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("webhook on %s: %s: %s", r.Name, resp.Status, b)
			continue
		}
		var reply handlers.Reply
		if err := json.Unmarshal(b, &reply); err != nil {
			e.t.Fatalf("webhook reply %s: %v", b, err)
		}
		ids := map[string]string{}
		for _, a := range reply.Alerts {
			if a.Outcome != "accepted" {
				e.t.Fatalf("alert for %s not accepted: %+v", a.Node, a)
			}
			ids[a.Node] = a.RunID
		}
		e.t.Logf("alert posted to %s for %s: runs %v", r.Name, strings.Join(nodes, ", "), ids)
		return ids
	}
	e.t.Fatalf("post the alert: %v", last)
	return nil
}

func (e *faultEnv) liveReplica() *pipeline.Receiver {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.replicas {
		if r.Running() && !r.Frozen() {
			return r
		}
	}
	return nil
}

// load reads a run from Redis (nil while it has no record or Redis does
// not answer).
func (e *faultEnv) load(id string) *runbooks.Run {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := e.store.Load(ctx, id)
	if err != nil {
		return nil
	}
	return r
}

// waitRun polls the run every 50 ms until cond holds and returns it.
func (e *faultEnv) waitRun(id, what string, timeout time.Duration, cond func(*runbooks.Run) bool) *runbooks.Run {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *runbooks.Run
	for {
		if r := e.load(id); r != nil {
			last = r
			if cond(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			state := "no record"
			if last != nil {
				state = fmt.Sprintf("%s next %d: %s", last.Status, last.Next, outcomes(last))
			}
			e.t.Fatalf("run %s: timed out after %s waiting for %s (last: %s)", id, timeout, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFinal waits until the run is final.
func (e *faultEnv) waitFinal(id string, timeout time.Duration) *runbooks.Run {
	e.t.Helper()
	return e.waitRun(id, "a final status", timeout, func(r *runbooks.Run) bool { return r.Status.Final() })
}

// inStep reports the last timeline entry when it is step, still started.
func inStep(r *runbooks.Run, step string) (runbooks.Entry, bool) {
	if n := len(r.Timeline); n > 0 {
		last := r.Timeline[n-1]
		return last, last.Step == step && last.Outcome == runbooks.OutcomeStarted && !r.Status.Final()
	}
	return runbooks.Entry{}, false
}

// hardResets and softResets count the reset requests a node's BMC received.
func (e *faultEnv) resets(node string) (soft, hard int) {
	for _, r := range e.sim.Resets(node) {
		switch resetKind(r.Type) {
		case "soft":
			soft++
		case "hard":
			hard++
		}
	}
	return soft, hard
}

func (e *faultEnv) resetList(node string) string {
	var s []string
	for _, r := range e.sim.Resets(node) {
		s = append(s, fmt.Sprintf("%s@%s(%d)", r.Type, r.At.Format("15:04:05.000"), r.Status))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// resetKind classifies a Redfish ResetType: a graceful request the OS
// may ignore, a hard reset, or neither (On after ForceOff, Nmi).
func resetKind(typ string) string {
	switch typ {
	case "GracefulRestart", "GracefulShutdown", "PushPowerButton":
		return "soft"
	case "ForceRestart", "PowerCycle", "ForceOff":
		return "hard"
	}
	return ""
}

// setPDB makes the node's PodDisruptionBudget allow evictions or none
// (no disruption controller runs here: its status is written by hand).
func (e *faultEnv) setPDB(ctx context.Context, node string, allow bool) error {
	pdbs := e.cluster.Client.PolicyV1().PodDisruptionBudgets(e.ns)
	var last error
	for range 20 {
		pdb, err := pdbs.Get(ctx, "web-"+node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n := int32(e.pods)
		pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: n}
		if allow {
			pdb.Status.CurrentHealthy, pdb.Status.ExpectedPods, pdb.Status.DisruptionsAllowed = 1000, 1000, 1000
		}
		if _, last = pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); last == nil {
			return nil
		}
	}
	return fmt.Errorf("PDB web-%s status: %w", node, last)
}

func (e *faultEnv) blockDrain(node string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(e.t, e.setPDB(ctx, node, false))
}

func (e *faultEnv) allowDrain(node string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(e.t, e.setPDB(ctx, node, true))
}

// cordonedBy is the node's cordoned-by-run annotation and whether it is
// unschedulable.
func (e *faultEnv) cordonedBy(node string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := e.cluster.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", false, err
	}
	return n.Annotations[runbooks.AnnotationCordonedBy], n.Spec.Unschedulable, nil
}

// workers lists the replicas that appear in a run's timeline, in order.
func workers(r *runbooks.Run) []string {
	var out []string
	for _, e := range r.Timeline {
		if e.Worker != "" && (len(out) == 0 || out[len(out)-1] != e.Worker) {
			out = append(out, e.Worker)
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tailLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
