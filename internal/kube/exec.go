package kube

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Labels on node-exec pods.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelAction    = "node-healer.io/action"
	LabelRun       = "node-healer.io/run"
)

// NodeExec runs host commands through short-lived privileged pods pinned
// to the node: hostPID, nsenter into PID 1's namespaces, tolerating every
// taint. Pods live in node-healer's own namespace (its RBAC allows pod
// creation there only) and are named after the run and action, so a
// resumed run finds its pod instead of starting a second one.
type NodeExec struct {
	Client    kubernetes.Interface
	Namespace string // default "node-healer"
	Image     string // needs nsenter; default busybox
	Log       *slog.Logger
}

var _ runbooks.NodeExec = (*NodeExec)(nil)

// DefaultExecImage has nsenter (busybox applet).
const DefaultExecImage = "busybox:1.37"

func (e *NodeExec) ns() string {
	if e.Namespace == "" {
		return "node-healer"
	}
	return e.Namespace
}

func podName(action, runID string) string { return "nh-" + action + "-" + runID }

// Exec creates the pod and, if wait, waits for it to finish.
func (e *NodeExec) Exec(ctx context.Context, node, runID, action string, command []string, wait bool, timeout time.Duration) (runbooks.ExecResult, error) {
	name := podName(action, runID)
	image := e.Image
	if image == "" {
		image = DefaultExecImage
	}
	privileged, noToken := true, false
	grace := int64(5)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns(),
			Labels: map[string]string{LabelManagedBy: "node-healer", LabelAction: action, LabelRun: runID}},
		Spec: corev1.PodSpec{
			NodeName: node, RestartPolicy: corev1.RestartPolicyNever, HostPID: true, HostNetwork: true,
			AutomountServiceAccountToken: &noToken, TerminationGracePeriodSeconds: &grace,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "exec", Image: image,
				Command:         append([]string{"nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"}, command...),
				SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
			}},
		},
	}
	_, err := e.Client.CoreV1().Pods(e.ns()).Create(ctx, pod, metav1.CreateOptions{FieldManager: "node-healer"})
	switch {
	case apierrors.IsAlreadyExists(err):
		if e.Log != nil {
			e.Log.Info("node-exec pod exists already (resumed run); not starting another", "pod", name, "node", node)
		}
	case err != nil:
		return runbooks.ExecResult{Pod: name}, fmt.Errorf("create node-exec pod %s/%s: %w", e.ns(), name, classify(err))
	}
	if !wait {
		return runbooks.ExecResult{Pod: name, Phase: "Dispatched"}, nil
	}
	return e.wait(ctx, name, timeout)
}

// wait watches the pod until it has finished or timeout passes.
func (e *NodeExec) wait(ctx context.Context, name string, timeout time.Duration) (runbooks.ExecResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := runbooks.ExecResult{Pod: name}
	pods := e.Client.CoreV1().Pods(e.ns())
	for {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return res, fmt.Errorf("node-exec pod %s: %w", name, classify(err))
		}
		if done := finished(p, &res); done {
			return res, nil
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: p.ResourceVersion})
		if err != nil {
			return res, fmt.Errorf("watch node-exec pod %s: %w", name, classify(err))
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				w.Stop()
				return res, fmt.Errorf("node-exec pod %s was deleted before it finished", name)
			}
			if p, ok := ev.Object.(*corev1.Pod); ok && finished(p, &res) {
				w.Stop()
				return res, nil
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return res, fmt.Errorf("node-exec pod %s did not finish within %s (phase %s)", name, timeout, res.Phase)
		}
	}
}

func finished(p *corev1.Pod, res *runbooks.ExecResult) bool {
	res.Phase = string(p.Status.Phase)
	if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			res.ExitCode = int(t.ExitCode)
			res.Message = t.Message
			if res.Message == "" && t.Reason != "" && t.Reason != "Completed" {
				res.Message = t.Reason
			}
		}
	}
	return true
}

// Cleanup deletes the action's pod (gone already is fine).
func (e *NodeExec) Cleanup(ctx context.Context, node, runID, action string) error {
	err := e.Client.CoreV1().Pods(e.ns()).Delete(ctx, podName(action, runID), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete node-exec pod: %w", classify(err))
	}
	return nil
}
