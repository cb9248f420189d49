package runbooks

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Node-exec commands, run on the host through nsenter into PID 1.
var (
	cmdRestartKubelet = []string{"systemctl", "restart", "kubelet"}
	cmdRestartRuntime = []string{"systemctl", "restart", "containerd"}
	cmdDiskCleanup    = []string{"sh", "-c", "crictl rmi --prune; journalctl --vacuum-size=500M; find /var/log -name '*.gz' -mtime +3 -delete; df -h /var/lib"}
)

// execStep runs a command on the node and waits for it (exec_timeout).
// The node must be responsive: a node-exec pod needs a kubelet.
func execStep(action string, command []string) StepFunc {
	return func(ctx context.Context, x *Exec) (Outcome, string, error) {
		if x.Exec == nil || x.Status == nil {
			return "", "", errors.New(action + ": no node-exec runner configured")
		}
		if x.DryRun {
			return OutcomeDryRun, "would run `" + strings.Join(command, " ") + "` on the node", nil
		}
		st, err := x.Status.Status(ctx, x.Run.Node)
		if err != nil {
			return "", "", err
		}
		if !st.Responsive(x.Now(), x.duration("lease_max_age")) {
			return "", "", Escalate("node unresponsive (Ready=%s): cannot run %s through a pod", orNone(st.Ready), action)
		}
		res, err := x.Exec.Exec(ctx, x.Run.Node, x.Run.ID, action, command, true, x.duration("exec_timeout"))
		_ = x.Exec.Cleanup(context.WithoutCancel(ctx), x.Run.Node, x.Run.ID, action)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", action, err)
		}
		detail := fmt.Sprintf("`%s` in pod %s: %s", strings.Join(command, " "), res.Pod, res.Phase)
		if res.Message != "" {
			detail += " (" + res.Message + ")"
		}
		x.Audit(ctx, action, detail)
		if res.Phase != "Succeeded" {
			_ = x.Nodes.Event(ctx, x.Run.Node, "Warning", "NodeHealerExecFailed", fmt.Sprintf("node-healer run %s: %s", x.Run.ID, detail))
			return "", "", fmt.Errorf("%s failed: %s (exit code %d)", action, detail, res.ExitCode)
		}
		_ = x.Nodes.Event(ctx, x.Run.Node, "Normal", "NodeHealerExec", fmt.Sprintf("node-healer run %s: %s", x.Run.ID, detail))
		return OutcomeDone, detail, nil
	}
}
