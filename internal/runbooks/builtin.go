package runbooks

// Steps by their stable names (persisted in runs, used as metric labels).
var (
	stepCordon        = Step{Name: "cordon", Do: Cordon}
	stepUncordon      = Step{Name: "uncordon", Do: Uncordon}
	stepDrain         = Step{Name: "drain", Destructive: true, Do: Drain}
	stepCapture       = Step{Name: "capture", Do: Capture}
	stepSoftReboot    = Step{Name: "soft-reboot", Destructive: true, Do: SoftReboot}
	stepWaitReboot    = Step{Name: "wait-reboot", Do: WaitReboot}
	stepPowerCycle    = Step{Name: "power-cycle", Destructive: true, Do: PowerCycle}
	stepWaitReady     = Step{Name: "wait-ready", Do: WaitReady}
	stepVerifyHealth  = Step{Name: "verify-health", Do: VerifyHealth}
	stepPowerOff      = Step{Name: "power-off", Destructive: true, Do: powerOffMarked}
	stepOutOfService  = Step{Name: "out-of-service", Destructive: true, Do: OutOfService}
	stepWaitEvacuated = Step{Name: "wait-evacuated", Do: WaitEvacuated}
	stepPowerOn       = Step{Name: "power-on", Do: PowerOnStep}
	stepRemoveOOS     = Step{Name: "remove-out-of-service", Do: RemoveOutOfService}
)

// Builtin returns the runbooks node-healer ships.
func Builtin() []*Runbook {
	return []*Runbook{
		{Name: "cordon", Description: "Mark the node unschedulable and record ownership.",
			Steps: []Step{stepCordon}},
		{Name: "uncordon", Description: "Undo a cordon node-healer owns; an operator's cordon stays.",
			Steps: []Step{stepUncordon}},
		{Name: "drain", Description: "Cordon, then evict the node's pods (PDB-aware, lowest priority first, local storage last); leave it cordoned.",
			Steps: []Step{stepCordon, stepDrain}},
		{Name: "reboot", Description: "Cordon, drain (when responsive), capture evidence (when responsive), soft reboot; if the node does not go down, power-cycle through the BMC; wait Ready, verify health, uncordon.",
			Steps: []Step{stepCordon, stepDrain, stepCapture, stepSoftReboot, stepWaitReboot, stepPowerCycle, stepWaitReady, stepVerifyHealth, stepUncordon}},
		{Name: "power-cycle", Description: "Cordon, drain (when responsive), capture evidence (when responsive), power-cycle through the BMC, wait Ready, verify health, uncordon.",
			Steps: []Step{stepCordon, stepDrain, stepCapture, stepPowerCycle, stepWaitReady, stepVerifyHealth, stepUncordon}},
		{Name: "restart-kubelet", Description: "Restart the kubelet through a node-exec pod, wait Ready, verify health.",
			Steps: []Step{{Name: "restart-kubelet", Destructive: true, Do: execStep("restart-kubelet", cmdRestartKubelet)}, stepWaitReady, stepVerifyHealth}},
		{Name: "restart-runtime", Description: "Cordon, restart the container runtime through a node-exec pod, wait Ready, verify health, uncordon.",
			Steps: []Step{stepCordon, {Name: "restart-runtime", Destructive: true, Do: execStep("restart-runtime", cmdRestartRuntime)}, stepWaitReady, stepVerifyHealth, stepUncordon}},
		{Name: "disk-cleanup", Description: "Prune unused images and old logs through a node-exec pod.",
			Steps: []Step{{Name: "disk-cleanup", Do: execStep("disk-cleanup", cmdDiskCleanup)}}},
		{Name: "fence", Description: "Cordon, capture evidence (when responsive), power off through the BMC, taint out-of-service once Off is confirmed, wait for pods to move, power on, wait Ready, verify health, remove the taint, uncordon.",
			Steps: []Step{stepCordon, stepCapture, stepPowerOff, stepOutOfService, stepWaitEvacuated, stepPowerOn, stepWaitReady, stepVerifyHealth, stepRemoveOOS, stepUncordon}},
	}
}
