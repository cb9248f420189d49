package kube

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
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
	// LabelCapture marks a pod that runs a capture command: its output
	// comes back through the container's termination message.
	LabelCapture = "node-healer.io/capture"
)

// CaptureLimit is how much of a captured command's output comes back: the
// tail of it, through the container's termination message (the kubelet
// keeps 4096 bytes of it). Logs are not read: node-healer's RBAC grants no
// pods/log, and a message needs no connection to the kubelet.
const CaptureLimit = 4000

// captureScript runs $1 with sh in the host's namespaces, writes the tail
// of its output to the termination message and all of it to the log, and
// exits with the command's status. It runs in the container's own mount
// namespace, where /dev/termination-log is.
var captureScript = `out=$(nsenter -t 1 -m -u -i -n -p -- sh -c "$1" 2>&1); rc=$?
printf '%s\n' "$out" | tail -c ` + strconv.Itoa(CaptureLimit) + ` > /dev/termination-log
printf '%s\n' "$out"
exit $rc`

var nsenterHost = []string{"nsenter", "-t", "1", "-m", "-u", "-i", "-n", "-p", "--"}

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
	res, _, err := e.run(ctx, node, runID, action, append(append([]string{}, nsenterHost...), command...), nil, wait, timeout)
	return res, err
}

var _ runbooks.Capturer = (*NodeExec)(nil)

// Capture runs a shell command line on the node's host, waits for it
// (timeout) and returns the tail of its output (CaptureLimit bytes,
// stdout and stderr) read from the pod's termination message.
func (e *NodeExec) Capture(ctx context.Context, node, runID, action, commandLine string, timeout time.Duration) (runbooks.CaptureOutput, error) {
	cmd := []string{"sh", "-c", captureScript, "capture", commandLine}
	res, p, err := e.run(ctx, node, runID, action, cmd, map[string]string{LabelCapture: "true"}, true, timeout)
	out := runbooks.CaptureOutput{ExecResult: res}
	if p != nil {
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				out.Output = t.Message
			}
		}
		out.Truncated = len(out.Output) >= CaptureLimit
	}
	return out, err
}

// run creates the pod running command (as the container's command) and,
// if wait, waits for it; it returns the finished pod too.
func (e *NodeExec) run(ctx context.Context, node, runID, action string, command []string, labels map[string]string, wait bool, timeout time.Duration) (runbooks.ExecResult, *corev1.Pod, error) {
	name := podName(action, runID)
	image := e.Image
	if image == "" {
		image = DefaultExecImage
	}
	privileged, noToken := true, false
	grace := int64(5)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns(),
			Labels: podLabels(action, runID, labels)},
		Spec: corev1.PodSpec{
			NodeName: node, RestartPolicy: corev1.RestartPolicyNever, HostPID: true, HostNetwork: true,
			AutomountServiceAccountToken: &noToken, TerminationGracePeriodSeconds: &grace,
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name: "exec", Image: image,
				Command:         command,
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
		return runbooks.ExecResult{Pod: name}, nil, fmt.Errorf("create node-exec pod %s/%s: %w", e.ns(), name, classify(err))
	}
	if !wait {
		return runbooks.ExecResult{Pod: name, Phase: "Dispatched"}, nil, nil
	}
	return e.wait(ctx, name, timeout)
}

func podLabels(action, runID string, extra map[string]string) map[string]string {
	l := map[string]string{LabelManagedBy: "node-healer", LabelAction: action, LabelRun: runID}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// wait watches the pod until it has finished or timeout passes, and
// returns it finished.
func (e *NodeExec) wait(ctx context.Context, name string, timeout time.Duration) (runbooks.ExecResult, *corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := runbooks.ExecResult{Pod: name}
	pods := e.Client.CoreV1().Pods(e.ns())
	for {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return res, nil, fmt.Errorf("node-exec pod %s: %w", name, classify(err))
		}
		if done := finished(p, &res); done {
			return res, p, nil
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: p.ResourceVersion})
		if err != nil {
			return res, nil, fmt.Errorf("watch node-exec pod %s: %w", name, classify(err))
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				w.Stop()
				return res, nil, fmt.Errorf("node-exec pod %s was deleted before it finished", name)
			}
			if p, ok := ev.Object.(*corev1.Pod); ok && finished(p, &res) {
				w.Stop()
				return res, p, nil
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return res, nil, fmt.Errorf("node-exec pod %s did not finish within %s (phase %s)", name, timeout, res.Phase)
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
