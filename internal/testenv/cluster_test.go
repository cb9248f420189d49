package testenv

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts etcd, kube-apiserver and kwok")
	}
	start := time.Now()
	c := NewCluster(t, ClusterOptions{Progress: &testWriter{t: t}})
	t.Logf("StartCluster took %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("kubeconfig", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := kubernetes.NewForConfig(cfg) // verifies TLS with the CA
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Fatalf("default ServiceAccount: %v", err)
		}
	})

	t.Run("nodes become Ready", func(t *testing.T) {
		start := time.Now()
		if err := c.CreateNodes(ctx, "n1", "n2", "n3"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("3 nodes took %s to become Ready, want < 10s", d)
		}
		t.Logf("3 nodes Ready in %s", time.Since(start).Round(time.Millisecond))
		err := poll(ctx, "lease n1 renewed", func(ctx context.Context) (string, bool, error) {
			l, err := c.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "n1", metav1.GetOptions{})
			if err != nil {
				return err.Error(), false, nil
			}
			return "no renewTime", l.Spec.RenewTime != nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("pod becomes Running", func(t *testing.T) {
		if _, err := c.CreatePod(ctx, "default", "web", "n1"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitPodRunning(ctx, "default", "web"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("replicaset pods", func(t *testing.T) {
		if err := c.EnsureNamespace(ctx, "apps"); err != nil {
			t.Fatal(err)
		}
		pods, err := c.CreateReplicaSetPods(ctx, "apps", "api", "n2", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(pods) != 10 {
			t.Fatalf("got %d pods, want 10", len(pods))
		}
		for _, p := range pods {
			ref := metav1.GetControllerOf(p)
			if ref == nil || ref.Kind != "ReplicaSet" || ref.Name != "api" {
				t.Fatalf("pod %s: controller %+v, want ReplicaSet api", p.Name, ref)
			}
			if err := c.WaitPodRunning(ctx, "apps", p.Name); err != nil {
				t.Fatal(err)
			}
		}
		// A deleted pod goes away: kwok plays the kubelet.
		if err := c.Client.CoreV1().Pods("apps").Delete(ctx, pods[0].Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitGone(ctx, t, c, "apps", pods[0].Name)
	})

	t.Run("node goes NotReady and back", func(t *testing.T) {
		if err := c.SetNodeNotReady(ctx, "n3"); err != nil {
			t.Fatal(err)
		}
		n, err := c.Client.CoreV1().Nodes().Get(ctx, "n3", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := nodeReady(n); got != corev1.ConditionUnknown {
			t.Fatalf("n3 Ready=%s, want Unknown", got)
		}
		if !hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) {
			t.Errorf("n3 lacks the unreachable taint: %v", n.Spec.Taints)
		}
		// Without a kubelet a pod on n3 stays Pending.
		if _, err := c.CreatePod(ctx, "default", "stuck", "n3"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "stuck", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodRunning {
			t.Errorf("pod on a NotReady node became Running")
		}
		if err := c.SetNodeReady(ctx, "n3"); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitPodRunning(ctx, "default", "stuck"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("kwok restarts", func(t *testing.T) {
		c.StopKwok()
		if _, err := c.CreatePod(ctx, "default", "after-restart", "n1"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := c.StartKwok(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitPodRunning(ctx, "default", "after-restart"); err != nil {
			t.Fatal(err)
		}
		t.Logf("kwok restarted and ran a pod in %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("stop leaves nothing running", func(t *testing.T) {
		procs := []*proc{c.etcd, c.apiserver, c.kwok}
		c.Stop()
		for _, p := range procs {
			if !p.exited() {
				t.Errorf("%s still running", p.name)
			}
			if err := syscall.Kill(p.cmd.Process.Pid, 0); err == nil {
				t.Errorf("%s (pid %d) still exists", p.name, p.cmd.Process.Pid)
			}
		}
	})
}

func waitGone(ctx context.Context, t *testing.T, c *Cluster, ns, name string) {
	t.Helper()
	err := poll(ctx, "pod "+ns+"/"+name+" gone", func(ctx context.Context) (string, bool, error) {
		_, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", true, nil
		}
		return "still there", false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testWriter sends complete progress lines to t.Log.
type testWriter struct {
	t   *testing.T
	buf strings.Builder
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	for {
		s := w.buf.String()
		line, rest, ok := strings.Cut(s, "\n")
		if !ok {
			return len(p), nil
		}
		w.t.Log(line)
		w.buf.Reset()
		w.buf.WriteString(rest)
	}
}
