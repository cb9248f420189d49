package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/kube"
)

// DrainSpec is the node drained at kubelet's maximum.
type DrainSpec struct {
	Pods int // 110: kubelet's default maxPods
	// PDBPods (a third) are under PodDisruptionBudgets of PDBSize pods
	// each, each allowing one disruption at a time.
	PDBPods, PDBSize int
	Kubectl          string // kubectl binary; "" skips the comparison
}

// DrainSide is one drain's figures.
type DrainSide struct {
	Tool     string
	Duration time.Duration
	Requests int64 // HTTP requests to the API server (cordon included)
	Blocked  int   // 429s from budgets (node-healer's count)
	Err      error
}

// DrainResult compares node-healer's drain with kubectl drain of an
// identical node in the same cluster and run.
type DrainResult struct {
	Spec     DrainSpec
	Healer   DrainSide
	Kubectl  DrainSide
	Priority []int32 // the three classes' values
}

var priorityClasses = []struct {
	name  string
	value int32
}{{"scale-low", 1000}, {"scale-mid", 10000}, {"scale-high", 100000}}

// DrainNamespace holds the drain phase's pods and budgets.
const DrainNamespace = "drain"

// Drain creates two identical nodes with spec.Pods pods each — three
// priority classes, a third under budgets — drains one with node-healer's
// Drainer (node-healer's client limits, QPS 50 / burst 100; cordon first)
// and the other with `kubectl drain --ignore-daemonsets
// --delete-emptydir-data`. No disruption controller runs here, so the
// harness plays it: a budget allows one disruption again once the pod it
// last let go is gone (its replacement would be Ready elsewhere).
func Drain(ctx context.Context, e *Env, spec DrainSpec) (DrainResult, error) {
	res := DrainResult{Spec: spec}
	cs := e.Cluster.Client
	for _, pc := range priorityClasses {
		_, err := cs.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: pc.name}, Value: pc.value}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return res, err
		}
		res.Priority = append(res.Priority, pc.value)
	}
	f := &Fleet{C: e.Cluster}
	nodes := []string{"drain-healer", "drain-kubectl"}
	if err := f.CreateNodes(ctx, nodes); err != nil {
		return res, err
	}
	owner, err := f.EnsureReplicaSet(ctx, DrainNamespace, "app")
	if err != nil {
		return res, err
	}
	fcs, err := f.cs()
	if err != nil {
		return res, err
	}
	var pdbs []string
	for _, node := range nodes {
		groups := (spec.PDBPods + spec.PDBSize - 1) / spec.PDBSize
		for g := range groups {
			name := fmt.Sprintf("%s-pdb-%d", node, g)
			one := intstr.FromInt32(1)
			pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: DrainNamespace},
				Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one,
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"pdb": name}}}}
			if _, err := cs.PolicyV1().PodDisruptionBudgets(DrainNamespace).Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
				return res, fmt.Errorf("create PDB %s: %w", name, err)
			}
			pdbs = append(pdbs, name)
		}
		err := f.each(ctx, spec.Pods, func(ctx context.Context, i int) error {
			labels := map[string]string{"app": "app", "node": node}
			if i < spec.PDBPods {
				labels["pdb"] = fmt.Sprintf("%s-pdb-%d", node, i/spec.PDBSize)
			}
			p := NewPod(DrainNamespace, fmt.Sprintf("%s-%03d", node, i), node, owner, labels)
			p.Spec.PriorityClassName = priorityClasses[i%len(priorityClasses)].name
			_, err := fcs.CoreV1().Pods(DrainNamespace).Create(ctx, p, metav1.CreateOptions{})
			return err
		})
		if err != nil {
			return res, err
		}
	}
	if err := f.WaitPodsRunning(ctx, DrainNamespace, 3*time.Minute); err != nil {
		return res, err
	}
	dctx, stopDC := context.WithCancel(ctx)
	var dcwg sync.WaitGroup
	dcwg.Go(func() { disruptionController(dctx, cs, pdbs) })
	defer func() { stopDC(); dcwg.Wait() }()
	// Wait until every budget allows its one disruption.
	if err := waitBudgets(ctx, cs, pdbs); err != nil {
		return res, err
	}

	res.Healer = healerDrain(ctx, e, nodes[0])
	if spec.Kubectl != "" {
		res.Kubectl = kubectlDrain(ctx, e, spec.Kubectl, nodes[1])
	}
	for _, side := range []struct {
		s    *DrainSide
		node string
	}{{&res.Healer, nodes[0]}, {&res.Kubectl, nodes[1]}} {
		if side.s.Tool == "" || side.s.Err != nil {
			continue
		}
		list, err := cs.CoreV1().Pods(DrainNamespace).List(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("spec.nodeName", side.node).String()})
		if err == nil && len(list.Items) > 0 {
			side.s.Err = fmt.Errorf("%d pods left on %s", len(list.Items), side.node)
		}
	}
	return res, nil
}

// healerDrain cordons and drains the node with node-healer's kube package,
// counting every HTTP request its client sends.
func healerDrain(ctx context.Context, e *Env, node string) DrainSide {
	side := DrainSide{Tool: "node-healer"}
	var n atomic.Int64
	cfg := rest.CopyConfig(e.Cluster.RESTConfig)
	cfg.QPS, cfg.Burst = config.DefaultQPS, config.DefaultBurst
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countRT{rt, &n} })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		side.Err = err
		return side
	}
	nodes := &kube.Nodes{Client: client}
	d := &kube.Drainer{Client: client, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	start := time.Now()
	nd, err := nodes.GetNode(ctx, node)
	if err == nil {
		err = nodes.SetUnschedulable(ctx, node, nd.ResourceVersion, true, nil)
	}
	if err != nil {
		side.Err = fmt.Errorf("cordon: %w", err)
		return side
	}
	r, err := d.Drain(ctx, node, kube.DrainOptions{DeleteEmptyDirData: true, Timeout: 10 * time.Minute})
	side.Duration = time.Since(start)
	side.Requests = n.Load()
	if err != nil {
		side.Err = err
	}
	if r != nil {
		side.Blocked = r.Blocked
	}
	return side
}

type countRT struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// kubectlDrain runs kubectl drain at -v=6, which logs one line per HTTP
// request ("GET https://… 200 OK in 3 milliseconds").
func kubectlDrain(ctx context.Context, e *Env, bin, node string) DrainSide {
	side := DrainSide{Tool: "kubectl drain"}
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", e.Cluster.Kubeconfig, "-v=6",
		"drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=10m")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	side.Duration = time.Since(start)
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.Contains(l, "round_trippers") && strings.Contains(l, " https://") && strings.Contains(l, " in ") {
			side.Requests++
		}
		if strings.Contains(l, "Cannot evict pod as it would violate the pod's disruption budget") {
			side.Blocked++
		}
	}
	if err != nil {
		tail := out.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		side.Err = fmt.Errorf("kubectl drain: %w\n%s", err, tail)
	}
	return side
}

// disruptionController plays the disruption controller for the budgets:
// every 100 ms, a budget whose last disrupted pod is gone allows one
// disruption again (as when the replacement is Ready elsewhere); one
// whose pod is still there allows none.
func disruptionController(ctx context.Context, cs kubernetes.Interface, pdbs []string) {
	api := cs.PolicyV1().PodDisruptionBudgets(DrainNamespace)
	for ctx.Err() == nil {
		pods, err := cs.CoreV1().Pods(DrainNamespace).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err == nil {
			present := map[string]bool{}
			healthy := map[string]int32{}
			for _, p := range pods.Items {
				present[p.Name] = true
				if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
					healthy[p.Labels["pdb"]]++
				}
			}
			for _, name := range pdbs {
				pdb, err := api.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				disrupted := false
				for p := range pdb.Status.DisruptedPods {
					if present[p] {
						disrupted = true
					}
				}
				allowed := int32(1)
				if disrupted {
					allowed = 0
				}
				h := healthy[name]
				st := policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: allowed,
					CurrentHealthy: h, DesiredHealthy: max(h-allowed, 0), ExpectedPods: h}
				if !disrupted {
					st.DisruptedPods = nil
				} else {
					st.DisruptedPods = pdb.Status.DisruptedPods
				}
				if pdb.Status.DisruptionsAllowed == st.DisruptionsAllowed && pdb.Status.ObservedGeneration == st.ObservedGeneration &&
					len(pdb.Status.DisruptedPods) == len(st.DisruptedPods) && pdb.Status.CurrentHealthy == h {
					continue
				}
				pdb.Status = st
				_, _ = api.UpdateStatus(ctx, pdb, metav1.UpdateOptions{}) // a conflict: next round
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func waitBudgets(ctx context.Context, cs kubernetes.Interface, pdbs []string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ok := 0
		for _, name := range pdbs {
			pdb, err := cs.PolicyV1().PodDisruptionBudgets(DrainNamespace).Get(ctx, name, metav1.GetOptions{})
			if err == nil && pdb.Status.DisruptionsAllowed == 1 && pdb.Status.ObservedGeneration == pdb.Generation {
				ok++
			}
		}
		if ok == len(pdbs) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d budgets allow a disruption after 1 min", ok, len(pdbs))
		}
		sleep(ctx, 200*time.Millisecond)
	}
}
