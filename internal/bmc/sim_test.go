package bmc_test

import (
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/testenv"
)

const (
	user     = "admin"
	password = "s3cr3t-Pa55w0rd"
	mockupID = "437XR1138R2"
)

// env is a simulator behind a TLS server, and a client's view of it.
type env struct {
	sim    *bmcsim.Sim
	srv    *httptest.Server
	caFile string
	pwFile string
	logs   *testenv.SyncBuffer

	mu     sync.Mutex
	events []string // OnPower calls, "system=state"
}

func (e *env) onPower(system, state string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, system+"="+state)
}

func (e *env) powerEvents() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.events...)
}

// start serves a simulator over TLS; the client trusts the server's
// certificate through a CA file (verification stays on).
func start(t testing.TB, o bmcsim.Options) *env {
	t.Helper()
	e := &env{logs: &testenv.SyncBuffer{}}
	o.Username, o.Password = user, password
	if o.BootTime == 0 {
		o.BootTime = 300 * time.Millisecond
	}
	o.OnPower = e.onPower
	sim, err := bmcsim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	e.srv = httptest.NewUnstartedServer(sim)
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // expected TLS failures
	e.srv.StartTLS()
	t.Cleanup(func() {
		sim.Close()
		e.srv.Close()
	})
	dir := t.TempDir()
	e.caFile = filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})
	if err := os.WriteFile(e.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	e.pwFile = filepath.Join(dir, "password")
	if err := os.WriteFile(e.pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) target(node, system string) bmc.Target {
	return bmc.Target{Node: node, Endpoint: e.srv.URL, System: system, Username: user,
		PasswordFile: e.pwFile, CAFile: e.caFile}
}

func (e *env) options() bmc.Options {
	return bmc.Options{Timeout: 2 * time.Second, Poll: 20 * time.Millisecond, OffWait: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
}

func (e *env) client(t *testing.T, node, system string, o bmc.Options) *bmc.Client {
	t.Helper()
	c, err := bmc.New(e.target(node, system), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// resetTypes lists the reset types a system received.
func (e *env) resetTypes(system string) []string {
	var out []string
	for _, r := range e.sim.Resets(system) {
		out = append(out, r.Type)
	}
	return out
}
