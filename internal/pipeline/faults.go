package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// Faults on a replica, for the fault-injection suite (e2e, -run Fault):
// freeze it (SIGSTOP, as a long GC pause or a VM stall would), thaw it,
// kill it, and start replicas outside a Pipeline.

// NewReceiver describes one replica of the receiver binary bin serving
// config (node-healer's config file) against kubeconfig, on a free
// loopback port, logging to dir/receiver-NAME.log. env is added to its
// environment (e.g. the test failpoint NODE_HEALER_FAILPOINT_STOP_AFTER_STEP).
// It is not started: call Start.
func NewReceiver(name, bin, config, kubeconfig, dir string, env ...string) (*Receiver, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return &Receiver{Name: name, Addr: addr, URL: "http://" + addr, Log: filepath.Join(dir, "receiver-"+name+".log"),
		Env: env, bin: bin, config: config, kubeconfig: kubeconfig}, nil
}

// Start starts the replica and returns once it is ready (GET /-/ready 200).
func (r *Receiver) Start(ctx context.Context) error { return r.start(ctx) }

// Pid is the process ID of the running replica (0 if it never started).
func (r *Receiver) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Signal sends sig to the running replica.
func (r *Receiver) Signal(sig syscall.Signal) error {
	if !r.Running() {
		return fmt.Errorf("replica %s is not running", r.Name)
	}
	return syscall.Kill(r.Pid(), sig)
}

// Freeze stops the replica with SIGSTOP: its goroutines, timers and lease
// renewals stop; its connections stay open.
func (r *Receiver) Freeze() error { return r.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen replica (SIGCONT).
func (r *Receiver) Thaw() error { return r.Signal(syscall.SIGCONT) }

// Frozen reports whether the replica's process is stopped (state T in
// /proc/PID/stat), by Freeze or by its own failpoint.
func (r *Receiver) Frozen() bool {
	if !r.Running() {
		return false
	}
	s, err := procState(r.Pid())
	return err == nil && (s == 'T' || s == 't')
}

// WaitFrozen waits until the replica's process is stopped.
func (r *Receiver) WaitFrozen(ctx context.Context) error {
	for !r.Frozen() {
		if !r.Running() {
			return fmt.Errorf("replica %s exited; see %s", r.Name, r.Log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica %s not stopped: %w", r.Name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// procState is the state letter of /proc/PID/stat (R, S, D, T, t, Z…).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) state …: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, errors.New("unexpected /proc stat format")
	}
	return b[i+2], nil
}
