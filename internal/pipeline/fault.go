package pipeline

import (
	"context"
	"fmt"
	"time"
)

// Kernel log lines that node-problem-detector's kernel monitor
// (deploy/npd/kernel-monitor-filelog.json) turns into conditions.
const (
	// LineKernelDeadlock is the seed's line: KernelDeadlock (ContainerRuntimeHung).
	LineKernelDeadlock = "INFO: task docker:1123 blocked for more than 120 seconds."
	// LineReadonlyFS sets ReadonlyFilesystem (FilesystemIsReadOnly).
	LineReadonlyFS = "EXT4-fs (sda1): Remounting filesystem read-only"
)

// WriteKernelLog appends a kernel message to node's kern.log (the node must
// be one of Options.FaultNodes) and returns when it was written: the
// start of every latency the pipeline measures.
func (p *Pipeline) WriteKernelLog(node, msg string) (time.Time, error) {
	npd := p.NPD[node]
	if npd == nil {
		return time.Time{}, fmt.Errorf("%s has no node-problem-detector (Options.FaultNodes)", node)
	}
	at, err := npd.Write(msg)
	if err == nil {
		p.logf("kern.log %s: %s", node, msg)
	}
	return at, err
}

// ClearFault makes the problem go away without a reboot: node-problem-
// detector restarts on an empty kern.log, its gauge drops to 0, and the
// alert resolves.
func (p *Pipeline) ClearFault(ctx context.Context, node string) error {
	npd := p.NPD[node]
	if npd == nil {
		return fmt.Errorf("%s has no node-problem-detector", node)
	}
	npd.Stop()
	if err := npd.Truncate(); err != nil {
		return err
	}
	p.logf("fault cleared on %s", node)
	return npd.Start(ctx)
}
