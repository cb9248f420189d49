package runbooks

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Param documents one runbook parameter (set per route under params:).
type Param struct {
	Name    string
	Default string
	Help    string
}

// Params of the built-in steps, with defaults. A route may set any of
// these for a runbook whose steps read them.
var Params = []Param{
	{"drain_timeout", "10m", "how long the drain may take (PodDisruptionBudgets) before the run escalates"},
	{"force_after_timeout", "false", "continue to the reboot when the drain times out (pods still there are cut off)"},
	{"delete_emptydir_data", "true", "evict pods with emptyDir volumes (their data is lost)"},
	{"force_unmanaged", "false", "evict pods no controller manages (they are not recreated)"},
	{"evict_critical", "false", "also evict system-node-critical / system-cluster-critical pods"},
	{"soft_reboot", "auto", "how to reboot gracefully: bmc, exec (a node-exec pod running systemctl reboot) or auto (bmc when the node has one)"},
	{"reboot_timeout", "5m", "how long to wait for a soft reboot to take the node down before power-cycling"},
	{"reboot_progress_timeout", "90s", "power-cycle sooner, after this long, when a soft reboot shows no sign of progress at all (BMC power state and BootProgress, kubelet Lease, Ready, boot ID); a node showing progress gets reboot_timeout"},
	{"ready_timeout", "10m", "how long to wait for the node to come back Ready after a reset"},
	{"healthy_for", "1m", "how long the node must stay Ready, with a fresh Lease and no problem conditions, before uncordon"},
	{"lease_max_age", "40s", "a kubelet Lease older than this means the node is unresponsive"},
	{"problem_conditions", "KernelDeadlock,ReadonlyFilesystem,FrequentKubeletRestart,FrequentContainerdRestart,FrequentDockerRestart,CorruptDockerOverlay2", "node conditions that must be False before uncordon"},
	{"require_alert_resolved", "false", "also wait for the triggering alert to resolve before uncordon"},
	{"exec_timeout", "5m", "how long a node-exec action may run"},
	{"evacuate_timeout", "5m", "fence: how long to wait for pods to leave the out-of-service node"},
	{"capture", "true", "before a reboot, power-cycle or power-off, run capture_commands on the node (node-exec pods) and keep their output with the run"},
	{"capture_commands", "dmesg -T | tail -n 200\njournalctl -k -b -n 200\njournalctl -u kubelet -n 100", "the capture's shell command lines, one per line (the last 4000 bytes of each are kept)"},
	{"capture_max_bytes", "65536", "how many bytes of captured output a run keeps in all (the tail of each output; at most 262144)"},
	{"capture_timeout", "1m", "how long the whole capture may take; the reboot goes on after it either way"},
	{"hold_timeout", "1h", "how long a run may be held before a destructive step (silence, pause, rate limit, window) before it escalates"},
}

func paramDefault(name string) string {
	for _, p := range Params {
		if p.Name == name {
			return p.Default
		}
	}
	panic("runbooks: undeclared parameter " + name)
}

// ValidateParams checks a route's params: known names, parsable values.
func ValidateParams(params map[string]string) error {
	known := map[string]bool{}
	for _, p := range Params {
		known[p.Name] = true
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := params[k]
		if !known[k] {
			return fmt.Errorf("unknown parameter %q", k)
		}
		d := paramDefault(k)
		switch {
		case k == "capture_commands":
			if err := validateCaptureCommands(v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		case k == "capture_max_bytes":
			if n, err := strconv.Atoi(v); err != nil || n < 0 || n > maxCaptureBytes {
				return fmt.Errorf("%s: %q is not a number of bytes from 0 to %d", k, v, maxCaptureBytes)
			}
		case d == "true" || d == "false":
			if _, err := strconv.ParseBool(v); err != nil {
				return fmt.Errorf("%s: %q is not true or false", k, v)
			}
		case strings.HasSuffix(d, "m") || strings.HasSuffix(d, "s"):
			if dur, err := time.ParseDuration(v); err != nil || dur <= 0 {
				return fmt.Errorf("%s: %q is not a positive duration", k, v)
			}
		case k == "soft_reboot":
			if v != "auto" && v != "bmc" && v != "exec" {
				return fmt.Errorf("%s: %q is not auto, bmc or exec", k, v)
			}
		}
	}
	return nil
}

func (x *Exec) param(name string) string {
	if v, ok := x.Run.Params[name]; ok {
		return v
	}
	return paramDefault(name)
}

func (x *Exec) duration(name string) time.Duration {
	d, err := time.ParseDuration(x.param(name))
	if err != nil {
		d, _ = time.ParseDuration(paramDefault(name))
	}
	return d
}

func (x *Exec) integer(name string) int {
	n, err := strconv.Atoi(x.param(name))
	if err != nil {
		n, _ = strconv.Atoi(paramDefault(name))
	}
	return n
}

func (x *Exec) flag(name string) bool {
	b, _ := strconv.ParseBool(x.param(name))
	return b
}
