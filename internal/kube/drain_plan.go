package kube

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
)

// Annotations and names the drain reads from pods.
const (
	// PreEvictHookAnnotation on a pod names an action (e.g. "flush-cache")
	// that must run before the pod is evicted: Drain calls
	// DrainOptions.PreEvict for it right before its eviction.
	PreEvictHookAnnotation = "node-healer.io/pre-evict-hook"
	// MirrorPodAnnotation marks the API server's copy of a static pod.
	MirrorPodAnnotation = corev1.MirrorPodAnnotationKey
)

// Reasons a pod is skipped or refused, as they appear in DrainPlan and
// DrainResult.Skipped (stable: they may be used as metric labels).
const (
	ReasonDaemonSet   = "daemonset"   // managed by a DaemonSet: left alone
	ReasonMirror      = "mirror"      // static pod: the kubelet owns it
	ReasonCritical    = "critical"    // system-node/cluster-critical, EvictCritical unset
	ReasonUnmanaged   = "unmanaged"   // no controller: refused without Force
	ReasonEmptyDir    = "emptydir"    // emptyDir data: refused without DeleteEmptyDirData
	ReasonTerminating = "terminating" // already being deleted: only waited for
)

// criticalClasses are the built-in PriorityClasses never evicted unless
// DrainOptions.EvictCritical.
var criticalClasses = map[string]bool{"system-node-critical": true, "system-cluster-critical": true}

// PlannedPod is one pod in a DrainPlan.
type PlannedPod struct {
	Namespace, Name string
	UID             types.UID
	// Priority is spec.priority (0 when unset); PriorityClass its class.
	Priority      int32
	PriorityClass string
	// LocalStorage lists the pod's node-local volumes ("emptyDir:cache",
	// "hostPath:logs", "localPV:data"); such pods are evicted last.
	LocalStorage []string
	// Finished pods (Succeeded/Failed) are evicted first, without waiting.
	Finished bool
	// Hook is the PreEvictHookAnnotation value, if any.
	Hook string
	// Reasons say why a pod is skipped, refused or only waited for.
	Reasons []string

	pod *corev1.Pod
}

// Ref is "namespace/name".
func (p PlannedPod) Ref() string { return p.Namespace + "/" + p.Name }

// Wave is a set of pods evicted together: same priority, same locality.
type Wave struct {
	Priority     int32
	LocalStorage bool
	Finished     bool
	Pods         []PlannedPod
}

// DrainPlan is what Drain would do to a node, computed from one List of
// its pods. Plan changes nothing.
type DrainPlan struct {
	Node string
	// Waves in eviction order: finished pods, then pods without local
	// storage by ascending priority, then pods with local storage by
	// ascending priority.
	Waves []Wave
	// Skipped pods stay on the node (Reasons: daemonset, mirror, critical).
	Skipped []PlannedPod
	// Refused pods make Drain fail before it evicts anything (Reasons:
	// unmanaged, emptydir). Err reports them.
	Refused []PlannedPod
	// Terminating pods are already being deleted; Drain waits for them.
	Terminating []PlannedPod

	resourceVersion string // of the List, for the watch
}

// Evictions is the number of pods the plan evicts.
func (p *DrainPlan) Evictions() int {
	n := 0
	for _, w := range p.Waves {
		n += len(w.Pods)
	}
	return n
}

// Err is nil unless the plan has refused pods; then it wraps
// ErrDrainRefused and names them and the option that would allow them.
func (p *DrainPlan) Err() error {
	if len(p.Refused) == 0 {
		return nil
	}
	byReason := map[string][]string{}
	for _, r := range p.Refused {
		for _, reason := range r.Reasons {
			byReason[reason] = append(byReason[reason], r.Ref())
		}
	}
	var parts []string
	if pods := byReason[ReasonUnmanaged]; len(pods) > 0 {
		parts = append(parts, fmt.Sprintf("%d pod(s) not managed by a controller would be lost for good (allow with the force option): %s",
			len(pods), strings.Join(pods, ", ")))
	}
	if pods := byReason[ReasonEmptyDir]; len(pods) > 0 {
		parts = append(parts, fmt.Sprintf("%d pod(s) with emptyDir data would lose it (allow with the delete-emptydir-data option): %s",
			len(pods), strings.Join(pods, ", ")))
	}
	return fmt.Errorf("%w: node %s: %s", ErrDrainRefused, p.Node, strings.Join(parts, "; "))
}

// String is a human-readable plan for dry runs.
func (p *DrainPlan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "drain node %s: %d eviction(s) in %d wave(s)", p.Node, p.Evictions(), len(p.Waves))
	for i, w := range p.Waves {
		kind := fmt.Sprintf("priority %d", w.Priority)
		switch {
		case w.Finished:
			kind = "finished pods"
		case w.LocalStorage:
			kind += ", local storage"
		}
		fmt.Fprintf(&b, "\n  wave %d (%s):", i+1, kind)
		for _, pp := range w.Pods {
			fmt.Fprintf(&b, " %s", pp.Ref())
			if pp.Hook != "" {
				fmt.Fprintf(&b, " [hook %s]", pp.Hook)
			}
		}
	}
	for _, g := range []struct {
		what string
		pods []PlannedPod
	}{{"wait for", p.Terminating}, {"skip", p.Skipped}, {"refuse", p.Refused}} {
		for _, pp := range g.pods {
			fmt.Fprintf(&b, "\n  %s %s (%s)", g.what, pp.Ref(), strings.Join(pp.Reasons, ", "))
		}
	}
	return b.String()
}

// Plan lists the node's pods (one request) and sorts them into waves,
// skipped, refused and terminating pods per o, without changing anything.
// Pods with PersistentVolumeClaims cost two GETs per claim to find local
// PersistentVolumes. A plan with refused pods is not an error here: see
// DrainPlan.Err.
func (d *Drainer) Plan(ctx context.Context, node string, o DrainOptions) (*DrainPlan, error) {
	return d.plan(ctx, node, o, &requestCounter{})
}

func (d *Drainer) plan(ctx context.Context, node string, o DrainOptions, rc *requestCounter) (*DrainPlan, error) {
	rc.add()
	list, err := d.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list pods on node %s: %w", node, classify(err))
	}
	lv := &localVolumes{d: d, rc: rc, pvs: map[string]bool{}}
	plan := &DrainPlan{Node: node, resourceVersion: list.ResourceVersion}
	var evict []PlannedPod
	for i := range list.Items {
		pod := &list.Items[i]
		pp := describePod(pod)
		pp.LocalStorage = append(pp.LocalStorage, lv.of(ctx, pod)...)
		switch action, reasons := classifyPod(pod, o); action {
		case actionSkip:
			pp.Reasons = reasons
			plan.Skipped = append(plan.Skipped, pp)
		case actionRefuse:
			pp.Reasons = reasons
			plan.Refused = append(plan.Refused, pp)
		case actionWait:
			pp.Reasons = reasons
			plan.Terminating = append(plan.Terminating, pp)
		default:
			evict = append(evict, pp)
		}
	}
	plan.Waves = waves(evict)
	for _, s := range [][]PlannedPod{plan.Skipped, plan.Refused, plan.Terminating} {
		slices.SortFunc(s, byRef)
	}
	return plan, nil
}

func describePod(pod *corev1.Pod) PlannedPod {
	pp := PlannedPod{
		Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		PriorityClass: pod.Spec.PriorityClassName,
		Finished:      pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed,
		Hook:          pod.Annotations[PreEvictHookAnnotation],
		pod:           pod,
	}
	if pod.Spec.Priority != nil {
		pp.Priority = *pod.Spec.Priority
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil:
			pp.LocalStorage = append(pp.LocalStorage, "emptyDir:"+v.Name)
		case v.HostPath != nil:
			pp.LocalStorage = append(pp.LocalStorage, "hostPath:"+v.Name)
		}
	}
	return pp
}

type podAction int

const (
	actionEvict podAction = iota
	actionSkip
	actionRefuse
	actionWait
)

// classifyPod applies the drain policy to one pod, in kubectl drain's
// order: mirror and DaemonSet pods are left alone, then critical pods;
// pods already being deleted are only waited for; finished pods are
// always evicted; unmanaged pods and emptyDir data need an explicit option.
func classifyPod(pod *corev1.Pod, o DrainOptions) (podAction, []string) {
	if _, ok := pod.Annotations[MirrorPodAnnotation]; ok {
		return actionSkip, []string{ReasonMirror}
	}
	ctrl := metav1.GetControllerOf(pod)
	if ctrl != nil && ctrl.Kind == "DaemonSet" && strings.HasPrefix(ctrl.APIVersion, "apps/") {
		return actionSkip, []string{ReasonDaemonSet}
	}
	if criticalClasses[pod.Spec.PriorityClassName] && !o.EvictCritical {
		return actionSkip, []string{ReasonCritical}
	}
	if pod.DeletionTimestamp != nil {
		return actionWait, []string{ReasonTerminating}
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return actionEvict, nil
	}
	var refused []string
	if ctrl == nil && !o.Force {
		refused = append(refused, ReasonUnmanaged)
	}
	if !o.DeleteEmptyDirData && slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.EmptyDir != nil }) {
		refused = append(refused, ReasonEmptyDir)
	}
	if len(refused) > 0 {
		return actionRefuse, refused
	}
	return actionEvict, nil
}

// waves groups pods to evict: finished pods first, then pods without
// local storage by ascending priority, then pods with local storage by
// ascending priority; pods in a wave are sorted by namespace/name.
func waves(pods []PlannedPod) []Wave {
	type key struct {
		finished, local bool
		priority        int32
	}
	keyOf := func(p PlannedPod) key {
		if p.Finished {
			return key{finished: true}
		}
		return key{local: len(p.LocalStorage) > 0, priority: p.Priority}
	}
	slices.SortFunc(pods, func(a, b PlannedPod) int {
		ka, kb := keyOf(a), keyOf(b)
		switch {
		case ka.finished != kb.finished:
			if ka.finished {
				return -1
			}
			return 1
		case ka.local != kb.local:
			if kb.local {
				return -1
			}
			return 1
		case ka.priority != kb.priority:
			return cmp.Compare(ka.priority, kb.priority)
		}
		return byRef(a, b)
	})
	var out []Wave
	for i, p := range pods {
		if i == 0 || keyOf(p) != keyOf(pods[i-1]) {
			k := keyOf(p)
			out = append(out, Wave{Priority: k.priority, LocalStorage: k.local, Finished: k.finished})
		}
		w := &out[len(out)-1]
		w.Pods = append(w.Pods, p)
	}
	return out
}

func byRef(a, b PlannedPod) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// localVolumes finds PersistentVolumeClaims bound to local
// PersistentVolumes (spec.local or spec.hostPath), caching per claim.
type localVolumes struct {
	d   *Drainer
	rc  *requestCounter
	pvs map[string]bool // namespace/claim → local
}

func (l *localVolumes) of(ctx context.Context, pod *corev1.Pod) []string {
	var out []string
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		key := pod.Namespace + "/" + v.PersistentVolumeClaim.ClaimName
		local, ok := l.pvs[key]
		if !ok {
			local = l.lookup(ctx, pod.Namespace, v.PersistentVolumeClaim.ClaimName)
			l.pvs[key] = local
		}
		if local {
			out = append(out, "localPV:"+v.Name)
		}
	}
	return out
}

// lookup reads the claim and its volume. Errors only cost the ordering
// hint (the pod is then ordered as one without local storage), so they
// are logged, not returned.
func (l *localVolumes) lookup(ctx context.Context, ns, claim string) bool {
	l.rc.add()
	pvc, err := l.d.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if err != nil || pvc.Spec.VolumeName == "" {
		if err != nil && !apierrors.IsNotFound(err) {
			l.d.log().Warn("drain: cannot read claim; ordering its pod as without local storage", "claim", ns+"/"+claim, "err", err)
		}
		return false
	}
	l.rc.add()
	pv, err := l.d.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			l.d.log().Warn("drain: cannot read volume; ordering its pod as without local storage", "pv", pvc.Spec.VolumeName, "err", err)
		}
		return false
	}
	return pv.Spec.Local != nil || pv.Spec.HostPath != nil
}
