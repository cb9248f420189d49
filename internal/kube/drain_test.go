package kube

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/node-healer/node-healer/internal/testenv"
)

// cluster is shared by the package's integration tests; each test uses
// nodes and namespaces of its own. nil under -short.
var cluster *testenv.Cluster

func TestMain(m *testing.M) {
	os.Exit(testenv.MainWithCluster(m, testenv.ClusterOptions{}, &cluster))
}

// drainEnv is one test's node and namespace on the shared cluster.
type drainEnv struct {
	t      *testing.T
	ctx    context.Context
	node   string
	ns     string
	rsUID  map[string]types.UID
	client kubernetes.Interface
}

func newDrainEnv(t *testing.T, name string) *drainEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("integration: needs kube-apiserver and kwok")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &drainEnv{t: t, ctx: ctx, node: name, ns: name, rsUID: map[string]types.UID{}, client: cluster.Client}
	if err := cluster.CreateNodes(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := cluster.EnsureNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
	for _, pc := range []struct {
		name  string
		value int32
	}{{"drain-low", 10}, {"drain-mid", 100}, {"drain-high", 1000}} {
		_, err := cluster.Client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: pc.name}, Value: pc.value}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	return e
}

func (e *drainEnv) drainer() *Drainer { return &Drainer{Client: e.client} }

// owned makes a pod controlled by a ReplicaSet (created once per name).
func (e *drainEnv) owned(rs string) func(*corev1.Pod) {
	uid, ok := e.rsUID[rs]
	if !ok {
		labels := map[string]string{"rs": rs}
		obj, err := e.client.AppsV1().ReplicaSets(e.ns).Create(e.ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: rs, Namespace: e.ns},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: testenv.PauseImage}}}}},
		}, metav1.CreateOptions{})
		if err != nil {
			e.t.Fatal(err)
		}
		uid = obj.UID
		e.rsUID[rs] = uid
	}
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet",
			Name: rs, UID: uid, Controller: ptr.To(true)}}
	}
}

func (e *drainEnv) daemonSet(name string) func(*corev1.Pod) {
	labels := map[string]string{"ds": name}
	ds, err := e.client.AppsV1().DaemonSets(e.ns).Create(e.ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: testenv.PauseImage}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet",
			Name: name, UID: ds.UID, Controller: ptr.To(true)}}
	}
}

// localPV gives the pod a claim bound to a local PersistentVolume on the
// node (bound by hand: no PersistentVolume controller runs here).
func (e *drainEnv) localPV(name string) func(*corev1.Pod) {
	pvName := e.ns + "-" + name
	_, err := e.client.CoreV1().PersistentVolumes().Create(e.ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "local",
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: "/mnt/disks/" + name}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname",
					Operator: corev1.NodeSelectorOpIn, Values: []string{e.node}}}}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = e.client.CoreV1().PersistentVolumeClaims(e.ns).Create(e.ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To("local"),
			VolumeName:       pvName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return func(p *corev1.Pod) {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}})
	}
}

func withLabel(k, v string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Labels[k] = v }
}

func withClass(class string) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.PriorityClassName = class }
}

func withEmptyDir(p *corev1.Pod) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "scratch",
		VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
}

func withHostPath(p *corev1.Pod) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data",
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/lib/data"}}})
}

func withHook(action string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[PreEvictHookAnnotation] = action
	}
}

func mirror(p *corev1.Pod) {
	p.Annotations = map[string]string{MirrorPodAnnotation: "b0b2e3f1"}
}

// job makes a pod owned by a Job: kwok completes such pods (Succeeded).
func (e *drainEnv) job(name string) func(*corev1.Pod) {
	j, err := e.client.BatchV1().Jobs(e.ns).Create(e.ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "run", Image: testenv.PauseImage}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job",
			Name: name, UID: j.UID, Controller: ptr.To(true)}}
	}
}

// pods creates pods and waits until each is Running and Ready (a PDB only
// guards Ready pods), or Succeeded for Job pods.
func (e *drainEnv) pods(specs map[string][]func(*corev1.Pod)) {
	e.t.Helper()
	for name, mut := range specs {
		if _, err := cluster.CreatePod(e.ctx, e.ns, name, e.node, mut...); err != nil {
			e.t.Fatal(err)
		}
	}
	for name := range specs {
		e.waitReady(name)
	}
}

func (e *drainEnv) waitReady(name string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, name, metav1.GetOptions{})
		if err == nil {
			ctrl := metav1.GetControllerOf(p)
			if ctrl != nil && ctrl.Kind == "Job" {
				if p.Status.Phase == corev1.PodSucceeded {
					return
				}
			} else if p.Status.Phase == corev1.PodRunning && podReady(p) {
				return
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pod %s not Ready (or Succeeded) after 30s (err %v)", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// onNode is the sorted names of the pods on the node.
func (e *drainEnv) onNode() []string {
	e.t.Helper()
	list, err := e.client.CoreV1().Pods("").List(e.ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", e.node).String()})
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
	}
	sort.Strings(names)
	return names
}

// pdb creates a PodDisruptionBudget selecting app=<app> and writes the
// status the disruption controller (which does not run here) would:
// observedGeneration = generation and the given disruptionsAllowed.
func (e *drainEnv) pdb(name, app string, healthy, allowed int32) {
	e.t.Helper()
	c := e.client.PolicyV1().PodDisruptionBudgets(e.ns)
	obj, err := c.Create(e.ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: ptr.To(intstr.FromInt32(healthy - allowed)),
			Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	obj.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: obj.Generation, DisruptionsAllowed: allowed,
		CurrentHealthy: healthy, DesiredHealthy: healthy - allowed, ExpectedPods: healthy,
	}
	if _, err := c.UpdateStatus(e.ctx, obj, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// deletions records the order in which the node's pods are deleted, from
// a watch of the test's own.
type deletions struct {
	mu    sync.Mutex
	names []string
	stop  func()
}

func (e *drainEnv) watchDeletions() *deletions {
	e.t.Helper()
	list, err := e.client.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := e.client.CoreV1().Pods(e.ns).Watch(e.ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		e.t.Fatal(err)
	}
	d := &deletions{stop: w.Stop}
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Deleted {
				d.mu.Lock()
				d.names = append(d.names, p.Name)
				d.mu.Unlock()
			}
		}
	}()
	return d
}

func (d *deletions) get() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.names)
}

// TestDrainPolicies: DaemonSet, mirror and critical pods stay; unmanaged
// and emptyDir pods are refused until Force/DeleteEmptyDirData; PDB-guarded
// pods go through their budget; EvictCritical evicts critical pods.
func TestDrainPolicies(t *testing.T) {
	e := newDrainEnv(t, "drain-policy")
	e.pods(map[string][]func(*corev1.Pod){
		"agent":      {e.daemonSet("agent")},
		"static-etc": {mirror},
		"dns":        {e.owned("dns"), withClass("system-cluster-critical")},
		"proxy":      {e.owned("proxy"), withClass("system-node-critical")},
		"cache":      {e.owned("cache"), withEmptyDir},
		"loner":      nil,
		"web-1":      {e.owned("web")},
		"guarded-1":  {e.owned("guarded"), withLabel("app", "guarded")},
		"guarded-2":  {e.owned("guarded"), withLabel("app", "guarded")},
		// Finished: evicted first whatever its volumes, not waited for.
		"report": {e.job("report"), withEmptyDir},
	})
	e.pdb("guarded", "guarded", 2, 2)
	all := e.onNode()
	d := e.drainer()

	t.Run("refused without Force and DeleteEmptyDirData", func(t *testing.T) {
		res, err := d.Drain(e.ctx, e.node, DrainOptions{Timeout: 10 * time.Second})
		if !errors.Is(err, ErrDrainRefused) {
			t.Fatalf("err = %v, want ErrDrainRefused", err)
		}
		for _, want := range []string{"drain-policy/loner", "drain-policy/cache", "force", "delete-emptydir-data"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "report") {
			t.Errorf("error %q names the finished pod", err)
		}
		if len(res.Evicted) != 0 || res.APIRequests != 1 {
			t.Errorf("evicted %d pods with %d requests, want 0 evictions after 1 List", len(res.Evicted), res.APIRequests)
		}
		if got := e.onNode(); !slices.Equal(got, all) {
			t.Errorf("pods on node = %v, want all of %v", got, all)
		}
	})

	t.Run("Force and DeleteEmptyDirData", func(t *testing.T) {
		res, err := d.Drain(e.ctx, e.node, DrainOptions{Force: true, DeleteEmptyDirData: true, Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := e.onNode(), []string{"agent", "dns", "proxy", "static-etc"}; !slices.Equal(got, want) {
			t.Errorf("pods left = %v, want %v", got, want)
		}
		wantSkipped := map[string]int{ReasonDaemonSet: 1, ReasonMirror: 1, ReasonCritical: 2}
		if !maps.Equal(res.Skipped, wantSkipped) {
			t.Errorf("skipped = %v, want %v", res.Skipped, wantSkipped)
		}
		if len(res.Evicted) != 6 {
			t.Fatalf("evicted %d pods, want 6: %+v", len(res.Evicted), res.Evicted)
		}
		if first := res.Evicted[0]; first.Name != "report" || !res.Waves[0].Finished {
			t.Errorf("first eviction = %+v, waves %+v; want the finished pod report in a wave of its own", first, res.Waves)
		}
		// The budget saw both guarded evictions.
		pdb, err := e.client.PolicyV1().PodDisruptionBudgets(e.ns).Get(e.ctx, "guarded", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if pdb.Status.DisruptionsAllowed != 0 || len(pdb.Status.DisruptedPods) != 2 {
			t.Errorf("PDB status: disruptionsAllowed %d, disruptedPods %v; want 0 and both guarded pods",
				pdb.Status.DisruptionsAllowed, pdb.Status.DisruptedPods)
		}
		if last := res.Evicted[len(res.Evicted)-1]; last.Name != "cache" || !last.LocalStorage {
			t.Errorf("last eviction = %+v, want the emptyDir pod cache", last)
		}
		t.Logf("evicted %d pods in %s with %d API requests", len(res.Evicted), res.Duration, res.APIRequests)
	})

	t.Run("EvictCritical", func(t *testing.T) {
		res, err := d.Drain(e.ctx, e.node, DrainOptions{EvictCritical: true, Timeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := e.onNode(), []string{"agent", "static-etc"}; !slices.Equal(got, want) {
			t.Errorf("pods left = %v, want %v", got, want)
		}
		if len(res.Evicted) != 2 {
			t.Errorf("evicted %+v, want dns and proxy", res.Evicted)
		}
	})
}

// TestDrainOrder: lowest priority first, local storage last, one wave at
// a time (a wave's pods are gone before the next wave's first eviction);
// the pre-evict hook runs before its pod's eviction.
func TestDrainOrder(t *testing.T) {
	e := newDrainEnv(t, "drain-order")
	e.pods(map[string][]func(*corev1.Pod){
		"high-1":       {e.owned("high"), withClass("drain-high")},
		"high-2":       {e.owned("high"), withClass("drain-high")},
		"mid-1":        {e.owned("mid"), withClass("drain-mid")},
		"low-1":        {e.owned("low"), withClass("drain-low")},
		"low-2":        {e.owned("low"), withClass("drain-low")},
		"none-1":       {e.owned("none")},
		"none-2":       {e.owned("none")},
		"scratch-low":  {e.owned("scratch"), withClass("drain-low"), withEmptyDir},
		"db-high-hook": {e.owned("db"), withClass("drain-high"), withHostPath, withHook("flush-wal")},
	})
	prio := map[string]int32{"high-1": 1000, "high-2": 1000, "mid-1": 100, "low-1": 10, "low-2": 10,
		"none-1": 0, "none-2": 0, "scratch-low": 10, "db-high-hook": 1000}
	local := map[string]bool{"scratch-low": true, "db-high-hook": true}

	type hookCall struct {
		pod, action string
		present     bool
		onNode      []string
	}
	var hooks []hookCall
	var hmu sync.Mutex
	dels := e.watchDeletions()
	defer dels.stop()
	res, err := e.drainer().Drain(e.ctx, e.node, DrainOptions{
		DeleteEmptyDirData: true,
		Timeout:            30 * time.Second,
		PreEvict: func(ctx context.Context, pod *corev1.Pod) error {
			p, err := e.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			present := err == nil && p.DeletionTimestamp == nil
			hmu.Lock()
			defer hmu.Unlock()
			hooks = append(hooks, hookCall{pod.Name, pod.Annotations[PreEvictHookAnnotation], present, e.onNode()})
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.onNode(); len(got) != 0 {
		t.Fatalf("pods left: %v", got)
	}

	// Accepted evictions: non-local by ascending priority, then local.
	var order []string
	for _, ev := range res.Evicted {
		order = append(order, ev.Name)
	}
	t.Logf("eviction order: %v", order)
	checkOrder := func(what string, names []string) {
		t.Helper()
		for i := 1; i < len(names); i++ {
			a, b := names[i-1], names[i]
			if local[a] && !local[b] {
				t.Errorf("%s: local-storage pod %s before %s: %v", what, a, b, names)
			}
			if local[a] == local[b] && prio[a] > prio[b] {
				t.Errorf("%s: %s (priority %d) before %s (priority %d): %v", what, a, prio[a], b, prio[b], names)
			}
		}
		if len(names) != len(prio) {
			t.Errorf("%s: %d pods, want %d: %v", what, len(names), len(prio), names)
		}
	}
	checkOrder("evictions", order)
	// The API server's own record: deletions seen by an independent watch.
	deadline := time.Now().Add(5 * time.Second)
	for len(dels.get()) < len(prio) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	checkOrder("deletions", dels.get())

	wantWaves := []WaveResult{{Priority: 0, Pods: 2}, {Priority: 10, Pods: 2}, {Priority: 100, Pods: 1},
		{Priority: 1000, Pods: 2}, {Priority: 10, LocalStorage: true, Pods: 1}, {Priority: 1000, LocalStorage: true, Pods: 1}}
	var gotWaves []WaveResult
	for _, w := range res.Waves {
		w.Duration = 0
		gotWaves = append(gotWaves, w)
	}
	if !slices.Equal(gotWaves, wantWaves) {
		t.Errorf("waves = %+v, want %+v", gotWaves, wantWaves)
	}

	if len(hooks) != 1 || res.Hooks != 1 {
		t.Fatalf("hook calls = %+v (result says %d), want one for db-high-hook", hooks, res.Hooks)
	}
	h := hooks[0]
	if h.pod != "db-high-hook" || h.action != "flush-wal" || !h.present {
		t.Errorf("hook call = %+v, want db-high-hook/flush-wal while the pod is still there", h)
	}
	if !slices.Equal(h.onNode, []string{"db-high-hook"}) {
		t.Errorf("pods on the node when the hook ran = %v, want only db-high-hook (it is last)", h.onNode)
	}
	if last := res.Evicted[len(res.Evicted)-1]; last.Name != "db-high-hook" {
		t.Errorf("last eviction %s, want db-high-hook", last.Name)
	}
}

// TestDrainHookFails: a failing pre-evict hook stops the drain; its pod
// is not evicted.
func TestDrainHookFails(t *testing.T) {
	e := newDrainEnv(t, "drain-hook")
	e.pods(map[string][]func(*corev1.Pod){
		"app":  {e.owned("app")},
		"data": {e.owned("data"), withHostPath, withHook("backup")},
	})
	boom := errors.New("backup target unreachable")
	_, err := e.drainer().Drain(e.ctx, e.node, DrainOptions{Timeout: 20 * time.Second,
		PreEvict: func(context.Context, *corev1.Pod) error { return boom }})
	if !errors.Is(err, ErrPreEvictHook) || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want ErrPreEvictHook wrapping the hook's error", err)
	}
	if got := e.onNode(); !slices.Equal(got, []string{"data"}) {
		t.Errorf("pods left = %v, want [data]", got)
	}
}

// TestDrainPDBTimeout: a budget that never allows the eviction makes the
// drain time out with ErrDrainTimeout naming the pod and the budget; the
// other pods, including a higher-priority wave, are evicted; the guarded
// pod is untouched.
func TestDrainPDBTimeout(t *testing.T) {
	e := newDrainEnv(t, "drain-pdb")
	e.pods(map[string][]func(*corev1.Pod){
		"guarded": {e.owned("guarded"), withLabel("app", "guarded")},
		"web-1":   {e.owned("web")},
		"web-2":   {e.owned("web")},
		"api":     {e.owned("api"), withClass("drain-high")},
	})
	e.pdb("guarded", "guarded", 1, 0)
	const timeout = 3 * time.Second
	start := time.Now()
	res, err := e.drainer().Drain(e.ctx, e.node, DrainOptions{Timeout: timeout})
	took := time.Since(start)
	if !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("err = %v, want ErrDrainTimeout", err)
	}
	t.Logf("error after %s: %v", took.Round(time.Millisecond), err)
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("drain returned after %s, want about %s", took, timeout)
	}
	var te *DrainTimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("err is %T, want *DrainTimeoutError", err)
	}
	want := []RemainingPod{{Namespace: e.ns, Name: "guarded", PDB: "guarded"}}
	for i := range te.Remaining {
		te.Remaining[i].BlockedBy = ""
	}
	if !slices.Equal(te.Remaining, want) {
		t.Errorf("remaining = %+v, want %+v", te.Remaining, want)
	}
	if res.Blocked < 2 || res.Blocked > 8 {
		t.Errorf("%d PDB refusals in %s, want a few (backoff from 500 ms)", res.Blocked, timeout)
	}
	if got := e.onNode(); !slices.Equal(got, []string{"guarded"}) {
		t.Errorf("pods left = %v, want [guarded]", got)
	}
	p, err := e.client.CoreV1().Pods(e.ns).Get(e.ctx, "guarded", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil || !podReady(p) {
		t.Errorf("guarded pod: err %v, deletionTimestamp %v, ready %v; want untouched", err, p.DeletionTimestamp, podReady(p))
	}
}

// TestDrainMultiplePDBs: the Eviction API's 500 for a pod with two budgets
// is a clear error at once, not a retry until the timeout.
func TestDrainMultiplePDBs(t *testing.T) {
	e := newDrainEnv(t, "drain-multi")
	e.pods(map[string][]func(*corev1.Pod){"db": {e.owned("db"), withLabel("app", "db")}})
	e.pdb("db-a", "db", 1, 1)
	e.pdb("db-b", "db", 1, 1)
	start := time.Now()
	_, err := e.drainer().Drain(e.ctx, e.node, DrainOptions{Timeout: 20 * time.Second})
	if !errors.Is(err, ErrMultiplePDBs) {
		t.Fatalf("err = %v, want ErrMultiplePDBs", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %s, want an immediate error", took)
	}
	if !strings.Contains(err.Error(), "drain-multi/db") {
		t.Errorf("error %q does not name the pod", err)
	}
	if got := e.onNode(); !slices.Equal(got, []string{"db"}) {
		t.Errorf("pods left = %v, want [db]", got)
	}
}

// TestPlan: the dry run reports waves, skipped, refused and terminating
// pods and changes nothing.
func TestPlan(t *testing.T) {
	e := newDrainEnv(t, "drain-plan")
	e.pods(map[string][]func(*corev1.Pod){
		"agent":   {e.daemonSet("agent")},
		"static":  {mirror},
		"proxy":   {e.owned("proxy"), withClass("system-node-critical")},
		"loner":   nil,
		"cache":   {e.owned("cache"), withEmptyDir},
		"web":     {e.owned("web")},
		"api":     {e.owned("api"), withClass("drain-high")},
		"db":      {e.owned("db"), withHostPath, withHook("flush"), withLabel("app", "db")},
		"batch":   {e.owned("batch"), withClass("drain-low")},
		"leaving": {e.owned("leaving"), func(p *corev1.Pod) { p.Finalizers = []string{"example.com/hold"} }},
		"ledger":  {e.owned("ledger"), e.localPV("ledger")},
	})
	e.pdb("db", "db", 1, 1)
	// A pod already being deleted (a finalizer keeps it).
	if err := e.client.CoreV1().Pods(e.ns).Delete(e.ctx, "leaving", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		_, _ = e.client.CoreV1().Pods(e.ns).Patch(context.Background(), "leaving", types.MergePatchType, patch, metav1.PatchOptions{})
	})
	before := e.snapshot()

	plan, err := e.drainer().Plan(e.ctx, e.node, DrainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plan:\n%s", plan)
	var waves [][]string
	for _, w := range plan.Waves {
		var names []string
		for _, p := range w.Pods {
			names = append(names, p.Name)
		}
		waves = append(waves, names)
	}
	if want := [][]string{{"web"}, {"batch"}, {"api"}, {"db", "ledger"}}; !slices.EqualFunc(waves, want, slices.Equal) {
		t.Fatalf("waves = %v, want %v", waves, want)
	}
	db, ledger := plan.Waves[3].Pods[0], plan.Waves[3].Pods[1]
	if !plan.Waves[3].LocalStorage || db.Hook != "flush" || !slices.Equal(db.LocalStorage, []string{"hostPath:data"}) {
		t.Errorf("last wave = %+v, want db with hostPath storage and hook flush", plan.Waves[3])
	}
	if !slices.Equal(ledger.LocalStorage, []string{"localPV:data"}) {
		t.Errorf("ledger's local storage = %v, want its local PersistentVolume", ledger.LocalStorage)
	}
	check := func(what string, got []PlannedPod, want map[string][]string) {
		t.Helper()
		m := map[string][]string{}
		for _, p := range got {
			m[p.Name] = p.Reasons
		}
		if len(m) != len(want) {
			t.Errorf("%s = %v, want %v", what, m, want)
		}
		for k, v := range want {
			if !slices.Equal(m[k], v) {
				t.Errorf("%s[%s] = %v, want %v", what, k, m[k], v)
			}
		}
	}
	check("skipped", plan.Skipped, map[string][]string{"agent": {ReasonDaemonSet}, "static": {ReasonMirror}, "proxy": {ReasonCritical}})
	check("refused", plan.Refused, map[string][]string{"loner": {ReasonUnmanaged}, "cache": {ReasonEmptyDir}})
	check("terminating", plan.Terminating, map[string][]string{"leaving": {ReasonTerminating}})
	if !errors.Is(plan.Err(), ErrDrainRefused) {
		t.Errorf("plan.Err() = %v, want ErrDrainRefused", plan.Err())
	}
	if plan2, err := e.drainer().Plan(e.ctx, e.node, DrainOptions{Force: true, DeleteEmptyDirData: true}); err != nil || plan2.Err() != nil || plan2.Evictions() != 7 {
		t.Errorf("plan with Force and DeleteEmptyDirData: err %v, %v, %d evictions; want 7", err, plan2.Err(), plan2.Evictions())
	}

	if after := e.snapshot(); !maps.Equal(before, after) {
		t.Errorf("Plan changed the cluster:\nbefore %v\nafter  %v", before, after)
	}
}

// snapshot maps every pod and PDB of the namespace to its resourceVersion
// (pods being deleted to "terminating").
func (e *drainEnv) snapshot() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	pods, err := e.client.CoreV1().Pods(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pods.Items {
		out["pod/"+p.Name] = p.ResourceVersion
		if p.DeletionTimestamp != nil {
			// kwok keeps writing a pod its finalizer holds.
			out["pod/"+p.Name] = "terminating"
		}
	}
	pdbs, err := e.client.PolicyV1().PodDisruptionBudgets(e.ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range pdbs.Items {
		out["pdb/"+p.Name] = p.ResourceVersion
	}
	return out
}

// TestDrain100Pods: 100 ReplicaSet pods with node-healer's default client
// limits (QPS 50, burst 100): at most 1.2 API requests per pod, seconds
// not tens of seconds.
func TestDrain100Pods(t *testing.T) {
	e := newDrainEnv(t, "drain-100")
	if _, err := cluster.CreateReplicaSetPods(e.ctx, e.ns, "web", e.node, 100); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(cluster.RESTConfig)
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := (&Drainer{Client: cs}).Drain(e.ctx, e.node, DrainOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("100 pods: %s, %d API requests (%.2f per pod)", res.Duration.Round(time.Millisecond), res.APIRequests, res.RequestsPerPod())
	if len(res.Evicted) != 100 {
		t.Errorf("evicted %d, want 100", len(res.Evicted))
	}
	if res.RequestsPerPod() > 1.2 {
		t.Errorf("%.2f API requests per pod, want ≤ 1.2", res.RequestsPerPod())
	}
	if res.Duration > 10*time.Second {
		t.Errorf("drain took %s, want seconds", res.Duration)
	}
	if got := e.onNode(); len(got) != 0 {
		t.Errorf("%d pods left", len(got))
	}
}
