package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// Receiver is one node-healer replica: the real receiver binary running
// `serve`.
type Receiver struct {
	Name string
	// URL is the base URL (http://127.0.0.1:PORT); Addr its host:port.
	URL, Addr string
	// Log is the replica's log file.
	Log string
	// Env is added to the inherited environment (e.g. a test failpoint).
	Env []string

	bin, config, kubeconfig string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *Receiver) start(ctx context.Context) error {
	logf, err := os.OpenFile(r.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, "serve", "--config.file="+r.config, "--web.listen-address="+r.Addr,
		"--kubeconfig="+r.kubeconfig, "--replica="+r.Name, "--log.level=debug")
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(r.Env) > 0 {
		cmd.Env = append(os.Environ(), r.Env...)
	}
	// Killed with us if we die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", r.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("receiver %s exited during start-up; see %s", r.Name, r.Log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(r.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("receiver %s not ready within 60s; see %s", r.Name, r.Log)
		}
	}
}

// Running reports whether the process runs.
func (r *Receiver) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return false
	}
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (kill -9: no cleanup, no lock release) and waits
// until the process is gone.
func (r *Receiver) Kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop asks the replica to stop (SIGTERM), kills it after 15 s, and waits.
func (r *Receiver) Stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped or killed replica again on the same port.
func (r *Receiver) Restart(ctx context.Context) error {
	r.Stop()
	return r.start(ctx)
}

// BuildReceiver builds ./cmd/receiver into dir and returns the binary's
// path (for tests; the demo uses bin/receiver from `make build`).
func BuildReceiver(dir string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "receiver")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/receiver")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/receiver: %w\n%s", err, b)
	}
	return out, nil
}
