package deploy

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/node-healer/node-healer/internal/kube"
)

// TestCodeUnderRBAC is the other half of TestRBAC: instead of asking about
// a hand-written list of calls, it runs node-healer's own Kubernetes code
// (internal/kube: node cache, node reads and patches, Lease, Events, drain,
// node-exec pods, /readyz) as the ServiceAccount, by impersonation, against
// the RBAC applied for real. A call the code makes that the manifests do
// not allow fails here as Forbidden.
func TestCodeUnderRBAC(t *testing.T) {
	needCluster(t)
	ctx := t.Context()
	r := renderT(t)
	c := newAPIClient(t)
	setUp(t, c, r)
	for _, o := range r.ofKind("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding") {
		if err := c.apply(ctx, o, false); err != nil {
			t.Fatalf("apply %s: %v", o, err)
		}
	}
	node := testNode
	if err := cluster.WaitNodeReady(ctx, node); err != nil {
		t.Fatal(err)
	}

	// Workload to drain (as the admin): two managed pods, and one whose
	// claim is bound to a local volume (the drain reads both).
	const ns = "deploy-drain"
	if err := cluster.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.CreateReplicaSetPods(ctx, ns, "app", node, 2); err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy-local"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/deploy-local"}},
		},
	}
	if _, err := cluster.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			VolumeName:  pv.Name,
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.CreatePod(ctx, ns, "with-volume", node, func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
	}); err != nil {
		t.Fatal(err)
	}

	// node-healer's client, as its ServiceAccount.
	cfg := rest.CopyConfig(cluster.RESTConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: receiverSA,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:node-healer", "system:authenticated"}}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// The RBAC authorizer's cache may lag the bindings by a moment.
	nodes := &kube.Nodes{Client: client, Instance: "deploy-test"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := nodes.GetNode(ctx, node)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetNode as %s: %v", receiverSA, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("readyz", func(t *testing.T) {
		if err := client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error(); err != nil {
			t.Error(err)
		}
	})
	t.Run("node cache", func(t *testing.T) {
		cache := kube.StartNodeCache(ctx, client, 0)
		sctx, cancel := contextTimeout(t, 15*time.Second)
		defer cancel()
		if !cache.WaitSynced(sctx) {
			t.Fatal("node informer did not sync (nodes list/watch)")
		}
		if ok, err := cache.NodeExists(ctx, node); err != nil || !ok {
			t.Errorf("NodeExists(%s) = %v, %v", node, ok, err)
		}
	})
	t.Run("node status and writes", func(t *testing.T) {
		st, err := nodes.Status(ctx, node) // node + kubelet Lease
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("status: %+v", st)
		n, err := nodes.GetNode(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		v := "deploy-test"
		if err := nodes.SetUnschedulable(ctx, node, n.ResourceVersion, true, map[string]*string{"node-healer.io/deploy-test": &v}); err != nil {
			t.Errorf("cordon: %v", err)
		}
		if err := nodes.Annotate(ctx, node, map[string]*string{"node-healer.io/deploy-test": nil}, map[string]*string{"node-healer.io/deploy-test": &v}); err != nil {
			t.Errorf("annotate: %v", err)
		}
		for _, present := range []bool{true, false} {
			if err := nodes.SetTaint(ctx, node, "node-healer.io/deploy-test", "x", string(corev1.TaintEffectNoSchedule), present); err != nil {
				t.Errorf("taint (present=%v): %v", present, err)
			}
		}
	})
	t.Run("events", func(t *testing.T) {
		// Events are written in the background: twice the same one is a
		// create, then a patch (series count 2). Stop waits for the writes;
		// a Forbidden shows in the write-error metric.
		reg := prometheus.NewRegistry()
		ev := kube.NewEvents(client, kube.EventOptions{Instance: "deploy-test", Registerer: reg})
		nodes := &kube.Nodes{Client: client, Instance: "deploy-test", Events: ev}
		for range 2 {
			if err := nodes.Event(ctx, node, corev1.EventTypeNormal, "DeployTest", "RBAC check"); err != nil {
				t.Errorf("event: %v", err)
			}
		}
		var list *eventsv1.EventList
		deadline := time.Now().Add(20 * time.Second) // a create/patch race costs one 10s retry
		for {
			var err error
			list, err = cluster.Client.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "regarding.name=" + node + ",reason=DeployTest"})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) == 1 && list.Items[0].Series != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		ev.Stop(5 * time.Second)
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP node_healer_event_write_errors_total Failed Kubernetes Event writes, by verb (create, patch); transport errors are retried by client-go (12 tries, 10s apart).
# TYPE node_healer_event_write_errors_total counter
node_healer_event_write_errors_total{verb="create"} 0
node_healer_event_write_errors_total{verb="patch"} 0
`), "node_healer_event_write_errors_total"); err != nil {
			t.Errorf("event writes failed as %s: %v", receiverSA, err)
		}
		if len(list.Items) != 1 || list.Items[0].Series == nil || list.Items[0].Series.Count != 2 {
			t.Errorf("events.k8s.io Events: %+v; want one with series.count 2", list.Items)
		}
	})
	t.Run("node-exec pod", func(t *testing.T) {
		e := &kube.NodeExec{Client: client, Namespace: "node-healer-exec"}
		res, err := e.Exec(ctx, node, "rbac", "deploy-test", []string{"true"}, true, time.Minute)
		if err != nil {
			t.Fatalf("exec: %v", err)
		}
		if res.Phase != string(corev1.PodSucceeded) {
			t.Errorf("node-exec pod phase %s, want Succeeded", res.Phase)
		}
		if err := e.Cleanup(ctx, node, "rbac", "deploy-test"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	t.Run("drain", func(t *testing.T) {
		var logs bytes.Buffer
		d := &kube.Drainer{Client: client, Log: slog.New(slog.NewTextHandler(&logs, nil))}
		res, err := d.Drain(ctx, node, kube.DrainOptions{Force: true, Timeout: time.Minute})
		if err != nil {
			t.Fatalf("drain: %v\n%s", err, logs.String())
		}
		if len(res.Evicted) != 3 {
			t.Errorf("evicted %d pods, want 3", len(res.Evicted))
		}
		// The claim/volume lookups only log their errors (they order the
		// drain, they do not block it): a Forbidden would show here.
		if strings.Contains(logs.String(), "cannot read") {
			t.Errorf("drain could not read a claim or volume:\n%s", logs.String())
		}
	})
}
