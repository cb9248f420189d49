// Command drain benchmarks node-healer's Drainer against `kubectl drain`
// on one private control plane (etcd, kube-apiserver, kwok from
// internal/testenv): per run, two fresh kwok nodes with N ReplicaSet-owned
// pods each; one is drained by kubectl (--ignore-daemonsets
// --delete-emptydir-data), the other by the Drainer (cordon + drain, with
// node-healer's default client limits, QPS 50 / burst 100). It prints one
// line per run and a summary with medians. bench/drain.sh runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/kube"
	"github.com/node-healer/node-healer/internal/testenv"
)

type options struct {
	kubectl string
	pods    int
	runs    int
	dir     string
}

func main() {
	var o options
	flag.StringVar(&o.kubectl, "kubectl", "", "kubectl binary to compare with (empty: node-healer only)")
	flag.IntVar(&o.pods, "pods", 100, "ReplicaSet-owned pods per node")
	flag.IntVar(&o.runs, "runs", 3, "runs (fresh nodes each)")
	flag.StringVar(&o.dir, "dir", "", "folder for the control plane's data and logs (default: a temporary one, removed)")
	flag.Parse()
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "drain bench:", err)
		os.Exit(1)
	}
}

// countingTransport counts the HTTP requests a client sends.
type countingTransport struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

type sample struct {
	kubectl, nhTotal, nhDrain time.Duration
	lastAccepted              time.Duration // of the drain: last Eviction answered 201
	counted, http             int64
}

func run(ctx context.Context, o options, out io.Writer) error {
	dir := o.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "bench-drain-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fmt.Fprintf(out, "starting a control plane in %s\n", dir)
	cluster, err := testenv.StartCluster(ctx, dir, testenv.ClusterOptions{Progress: out})
	if err != nil {
		return err
	}
	defer cluster.Stop()

	// node-healer's client: its config defaults, and a request counter.
	var httpRequests atomic.Int64
	cfg := rest.CopyConfig(cluster.RESTConfig)
	cfg.QPS, cfg.Burst = config.DefaultQPS, config.DefaultBurst
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt: rt, n: &httpRequests} })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	nodes := &kube.Nodes{Client: client}
	drainer := &kube.Drainer{Client: client, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	const ns = "bench"
	if err := cluster.EnsureNamespace(ctx, ns); err != nil {
		return err
	}
	var samples []sample
	for i := range o.runs {
		var s sample
		kNode, nNode := fmt.Sprintf("kubectl-%d", i), fmt.Sprintf("healer-%d", i)
		if err := prepare(ctx, cluster, ns, o.pods, kNode, nNode); err != nil {
			return err
		}
		kubectlRun := func() error {
			if o.kubectl == "" {
				return nil
			}
			start := time.Now()
			cmd := exec.CommandContext(ctx, o.kubectl, "--kubeconfig", cluster.Kubeconfig,
				"drain", kNode, "--ignore-daemonsets", "--delete-emptydir-data")
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("kubectl drain: %w\n%s", err, b)
			}
			s.kubectl = time.Since(start)
			if err := empty(ctx, cluster.Client, kNode); err != nil {
				return fmt.Errorf("after kubectl drain: %w", err)
			}
			return nil
		}
		healerRun := func() error {
			before := httpRequests.Load()
			start := time.Now()
			n, err := nodes.GetNode(ctx, nNode)
			if err != nil {
				return err
			}
			if err := nodes.SetUnschedulable(ctx, nNode, n.ResourceVersion, true, nil); err != nil {
				return err
			}
			dstart := time.Now()
			res, err := drainer.Drain(ctx, nNode, kube.DrainOptions{DeleteEmptyDirData: true, Timeout: 5 * time.Minute})
			if err != nil {
				return fmt.Errorf("node-healer drain: %w", err)
			}
			s.nhDrain = time.Since(dstart)
			s.nhTotal = time.Since(start)
			s.http = httpRequests.Load() - before
			s.counted = res.APIRequests
			for _, ev := range res.Evicted {
				s.lastAccepted = max(s.lastAccepted, ev.After)
			}
			if len(res.Evicted) != o.pods {
				return fmt.Errorf("node-healer evicted %d pods, want %d", len(res.Evicted), o.pods)
			}
			return empty(ctx, cluster.Client, nNode)
		}
		// Alternate which goes first, so neither always meets a warmer server.
		first, second := kubectlRun, healerRun
		if i%2 == 1 {
			first, second = healerRun, kubectlRun
		}
		if err := first(); err != nil {
			return err
		}
		if err := second(); err != nil {
			return err
		}
		samples = append(samples, s)
		fmt.Fprintf(out, "run %d: kubectl drain %6.2fs | node-healer cordon+drain %5.3fs (drain %5.3fs, all evictions accepted at %5.3fs), "+
			"HTTP requests %d (%.2f/pod, drainer counted %d)\n",
			i+1, s.kubectl.Seconds(), s.nhTotal.Seconds(), s.nhDrain.Seconds(), s.lastAccepted.Seconds(), s.http,
			float64(s.http)/float64(o.pods), s.counted)
	}
	med := func(f func(sample) float64) float64 {
		v := make([]float64, len(samples))
		for i, s := range samples {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Fprintf(out, "median of %d runs, %d pods: kubectl drain %.2fs; node-healer cordon+drain %.3fs (drain %.3fs), %.2f HTTP requests/pod\n",
		len(samples), o.pods,
		med(func(s sample) float64 { return s.kubectl.Seconds() }),
		med(func(s sample) float64 { return s.nhTotal.Seconds() }),
		med(func(s sample) float64 { return s.nhDrain.Seconds() }),
		med(func(s sample) float64 { return float64(s.http) / float64(o.pods) }))
	return nil
}

// prepare creates the two nodes and their pods and waits until all pods
// are Running.
func prepare(ctx context.Context, c *testenv.Cluster, ns string, pods int, nodes ...string) error {
	if err := c.CreateNodes(ctx, nodes...); err != nil {
		return err
	}
	for _, n := range nodes {
		if _, err := c.CreateReplicaSetPods(ctx, ns, "web-"+n, n, pods); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, n := range nodes {
		for {
			list, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n).String()})
			if err != nil {
				return err
			}
			running := 0
			for _, p := range list.Items {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
			if running == pods {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s: %d/%d pods Running after 2 min", n, running, pods)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// empty checks that no pod is left on the node.
func empty(ctx context.Context, cs kubernetes.Interface, node string) error {
	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String()})
	if err != nil {
		return err
	}
	if len(list.Items) > 0 {
		return fmt.Errorf("%d pods left on %s", len(list.Items), node)
	}
	return nil
}
