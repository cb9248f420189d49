package testenv

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"syscall"
)

// Faults for the fault-injection suite (e2e, -run Fault): freeze
// redis-server as a long stall would (SIGSTOP: connections stay open and
// nothing is answered; expiry times are absolute, so keys whose TTL
// passed meanwhile are gone when it wakes), and stop and restart
// kube-apiserver on the same port with the same data and certificates.

// Pid is redis-server's process ID (0 when it is not running).
func (r *Redis) Pid() int {
	if r.p == nil {
		return 0
	}
	return r.p.pid()
}

// Freeze stops redis-server with SIGSTOP: it keeps its connections and
// answers nothing until Thaw.
func (r *Redis) Freeze() error { return r.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen redis-server (SIGCONT).
func (r *Redis) Thaw() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) error {
	pid := r.Pid()
	if pid == 0 {
		return errors.New("redis-server is not running")
	}
	return syscall.Kill(pid, sig)
}

// StopAPIServer stops kube-apiserver (SIGTERM, SIGKILL after a grace
// period) and returns once it has exited. etcd and kwok keep running;
// clients see connection refused until RestartAPIServer.
func (c *Cluster) StopAPIServer() {
	c.apiserver.stop(stopGrace)
}

// APIServerRunning reports whether kube-apiserver's process runs.
func (c *Cluster) APIServerRunning() bool {
	return c.apiserver != nil && !c.apiserver.exited()
}

// RestartAPIServer starts kube-apiserver again after StopAPIServer, with
// the same flags (same port, etcd, certificates and tokens, so every
// client's configuration stays valid), and returns once /readyz answers.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	old := c.apiserver
	if old == nil {
		return errors.New("kube-apiserver was never started")
	}
	if !old.exited() {
		return errors.New("kube-apiserver is still running; StopAPIServer first")
	}
	p, err := startProc("kube-apiserver", old.cmd.Path, old.cmd.Args[1:], old.log)
	if err != nil {
		return err
	}
	c.apiserver = p
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := p.waitUntil(ctx, apiserverTimeout, func(ctx context.Context) error {
		return httpOK(ctx, insecure, c.Host+"/readyz", c.RESTConfig.BearerToken, "")
	}); err != nil {
		return fmt.Errorf("restart kube-apiserver: %w", err)
	}
	return nil
}
