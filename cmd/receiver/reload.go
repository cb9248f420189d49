package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
	"gopkg.in/yaml.v3"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/safety"
)

// liveConfig is the part of the configuration a reload (SIGHUP, POST
// /-/reload) swaps without a restart: the routes (what the webhook
// routes, with their runbook, params, dry_run, node label and maintenance
// windows), the webhook's bearer token (its file re-read) and the
// operator page's ui.operators. Components read it per request or per
// step through Match, Auth, Windows and MayAct; every
// other section is fixed at start-up, and a reload that changes one says
// that a restart is required.
type liveConfig struct {
	path, webConfigFile string
	log                 *slog.Logger
	cur                 atomic.Pointer[liveState]
	mu                  sync.Mutex // one reload at a time

	ok, okTime prometheus.Gauge
}

type liveState struct {
	cfg     *config.Config
	windows map[string][]safety.MaintenanceWindow
}

func newLiveConfig(path, webConfigFile string, cfg *config.Config, reg prometheus.Registerer, log *slog.Logger) (*liveConfig, error) {
	l := &liveConfig{path: path, webConfigFile: webConfigFile, log: log,
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Name: "node_healer_config_last_reload_successful",
			Help: "Whether the last configuration reload (start-up, SIGHUP or POST /-/reload) succeeded."}),
		okTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "node_healer_config_last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration reload (start-up counts)."}),
	}
	if err := l.store(cfg); err != nil {
		return nil, err
	}
	if reg != nil {
		reg.MustRegister(l.ok, l.okTime)
	}
	l.ok.Set(1)
	l.okTime.SetToCurrentTime()
	return l, nil
}

func (l *liveConfig) store(cfg *config.Config) error {
	w, err := routeWindows(cfg)
	if err != nil {
		return err
	}
	l.cur.Store(&liveState{cfg: cfg, windows: w})
	if missing := operatorsWithoutUser(cfg.UI.Operators, l.webConfigFile); len(missing) > 0 {
		l.log.Warn("ui.operators names users the web configuration file has no basic_auth_users entry for: nobody can sign in as them (a typo?)", "users", missing, "web_config", l.webConfigFile)
	}
	if cfg.Webhook.Auth.AllowUnauthenticated && !webAuthenticates(l.webConfigFile) {
		l.log.Warn("webhook.auth.allow_unauthenticated is set and the web configuration file has neither basic_auth_users nor required client certificates: anyone who reaches the port can post alerts", "web_config", l.webConfigFile)
	}
	return nil
}

// readWebConfig reads and parses the web configuration file
// (exporter-toolkit's format), as exporter-toolkit does per request.
func readWebConfig(path string) (*web.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read --web.config.file: %w", err)
	}
	var c web.Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("cannot parse --web.config.file: %w", err)
	}
	return &c, nil
}

// operatorsWithoutUser lists the ui.operators (other than cert:CN ones)
// that the web configuration file's basic_auth_users lacks; none when the
// file cannot be read (its own check reports that).
func operatorsWithoutUser(operators []string, webConfigFile string) []string {
	if len(operators) == 0 || webConfigFile == "" {
		return nil
	}
	c, err := readWebConfig(webConfigFile)
	if err != nil {
		return nil
	}
	var missing []string
	for _, op := range operators {
		if _, ok := c.Users[op]; !ok && !strings.HasPrefix(op, "cert:") {
			missing = append(missing, op)
		}
	}
	return missing
}

// webAuthenticates tells whether the web configuration file makes every
// request authenticate: basic_auth_users, or client certificates required.
func webAuthenticates(path string) bool {
	if path == "" {
		return false
	}
	c, err := readWebConfig(path)
	if err != nil {
		return false
	}
	switch c.TLSConfig.ClientAuth {
	case "RequireAndVerifyClientCert", "RequireAnyClientCert", "RequireClientCert":
		return true
	}
	return len(c.Users) > 0
}

// Match routes an alert with the current routes (handlers.Router).
func (l *liveConfig) Match(labels map[string]string) *config.Route {
	return l.cur.Load().cfg.Match(labels)
}

// Auth is the current webhook bearer token.
func (l *liveConfig) Auth() config.Auth { return l.cur.Load().cfg.Webhook.Auth }

// MayAct says whether user may act on the operator page, by the current
// ui.operators (ui.Options.MayAct): a reload grants or takes it at once.
func (l *liveConfig) MayAct(user string) (bool, string) { return l.cur.Load().cfg.UI.MayAct(user) }

// Windows are a route's current maintenance windows (safety.Windows).
func (l *liveConfig) Windows(route string) []safety.MaintenanceWindow {
	return l.cur.Load().windows[route]
}

// Reload re-reads the configuration file (and its secret files) and the
// web configuration file. An invalid file is rejected: logged, counted
// (node_healer_config_last_reload_successful 0) and returned; the old
// configuration stays in force.
func (l *liveConfig) Reload(_ context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.reload()
	if err != nil {
		l.ok.Set(0)
		l.log.Error("configuration reload failed; the old configuration stays in force", "file", l.path, "err", err)
		return err
	}
	l.ok.Set(1)
	l.okTime.SetToCurrentTime()
	return nil
}

func (l *liveConfig) reload() error {
	cfg, err := loadConfig(l.path)
	if err != nil {
		return err
	}
	// exporter-toolkit reads the web configuration file on every request
	// and handshake by itself; checking it here puts a broken one in the
	// reload metric and the log instead of only in failing requests.
	if err := web.Validate(l.webConfigFile); err != nil {
		return fmt.Errorf("%s: %w", l.webConfigFile, err)
	}
	old := l.cur.Load().cfg
	if err := l.store(cfg); err != nil {
		return err
	}
	if keys := restartKeys(old, cfg); len(keys) > 0 {
		l.log.Warn("configuration reloaded, but these sections changed and take effect only after a restart", "file", l.path, "restart_required", keys)
	}
	l.log.Info("configuration reloaded", "file", l.path, "routes", len(cfg.Routes))
	return nil
}

// restartKeys names the sections read only at start-up that differ
// between a and b (secrets compared too, never printed).
func restartKeys(a, b *config.Config) []string {
	var keys []string
	for _, s := range []struct {
		key  string
		x, y any
	}{
		{"redis", a.Redis, b.Redis},
		{"kubernetes", a.Kubernetes, b.Kubernetes},
		{"webhook.max_body_bytes", a.Webhook.MaxBodyBytes, b.Webhook.MaxBodyBytes},
		{"workers", a.Workers, b.Workers},
		{"locks", a.Locks, b.Locks},
		{"bmc", a.BMC, b.BMC},
		{"safety", a.Safety, b.Safety},
		{"alertmanagers", a.Alertmanagers, b.Alertmanagers},
		{"node_exec", a.NodeExec, b.NodeExec},
	} {
		if !reflect.DeepEqual(s.x, s.y) {
			keys = append(keys, s.key)
		}
	}
	return keys
}

// reloadOnSIGHUP reloads the configuration on each SIGHUP until ctx
// ends (errors are logged and counted by Reload). The handler is in place
// when it returns; stop removes it.
func reloadOnSIGHUP(ctx context.Context, l *liveConfig) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-quit:
				return
			case <-hup:
				l.log.Info("SIGHUP: reloading configuration", "file", l.path)
				_ = l.Reload(ctx)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(quit)
		<-done
	}
}
