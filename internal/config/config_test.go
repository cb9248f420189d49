package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var runbooks = []string{"cordon", "uncordon"}

// Rejections: one fixture per validation rule, with the message it must give.
var rejections = map[string]string{
	"bad.unknown-field.yml":               "field colour not found",
	"bad.redis-url.yml":                   `redis.url: "http://localhost:6379" is not a redis://`,
	"bad.redis-min-replicas.yml":          "redis.min_replicas_acked: must be between 0 and 16, got -1",
	"bad.redis-min-replicas-cluster.yml":  "redis.min_replicas_acked: not supported with redis.cluster yet",
	"bad.redis-replication-timeout.yml":   "redis.replication_timeout: must be between 10ms and 2s",
	"bad.redis-url-password.yml":          "redis.url: do not put a password in the URL",
	"bad.redis-url-sentinel.yml":          "redis.sentinel: cannot be combined with redis.url; set one of redis.url, redis.sentinel, redis.cluster",
	"bad.redis-sentinel-cluster.yml":      "redis.cluster: cannot be combined with redis.sentinel",
	"bad.redis-sentinel-no-master.yml":    "redis.sentinel.master_name: required",
	"bad.redis-sentinel-no-addrs.yml":     "redis.sentinel.addrs: at least one host:port is required",
	"bad.redis-sentinel-addr.yml":         `redis.sentinel.addrs[1]: "sentinel-2" is not host:port`,
	"bad.redis-sentinel-password.yml":     "redis.password_file: with redis.sentinel, set redis.sentinel.password_file",
	"bad.redis-cluster-no-addrs.yml":      "redis.cluster.addrs: at least one host:port is required",
	"bad.redis-tls-ca.yml":                "redis.tls.ca_file: open ",
	"bad.redis-tls-ca-content.yml":        "redis.tls: unable to use specified CA cert",
	"bad.redis-tls-plain-url.yml":         "redis.tls: redis.url is redis:// (plain text); use rediss://",
	"bad.redis-tls-no-key.yml":            "redis.tls: cert_file and key_file are both required",
	"bad.qps.yml":                         "kubernetes.qps: must be positive",
	"bad.no-auth.yml":                     "webhook.auth: configure bearer_token_file (or set allow_unauthenticated: true",
	"bad.auth-conflict.yml":               "webhook.auth: allow_unauthenticated cannot be combined",
	"bad.webhook-basic-auth-moved.yml":    "webhook.auth.basic_auth: moved to the web configuration file (--web.config.file): basic_auth_users",
	"bad.token-missing.yml":               "webhook.auth.bearer_token_file: open",
	"bad.token-empty.yml":                 "webhook.auth.bearer_token_file:",
	"bad.webhook-tls-moved.yml":           "webhook.tls: moved to the web configuration file (--web.config.file): tls_server_config",
	"bad.breaker-group-by.yml":            `safety.breaker.group_by: "not a label!" is not a node label name`,
	"bad.body-limit.yml":                  "webhook.max_body_bytes: must be positive",
	"bad.workers.yml":                     "workers.count: must be between 1 and 256",
	"bad.notify-interval.yml":             "notify.interval: 100ms is outside 1s–10m",
	"bad.claim-after.yml":                 "workers.claim_after: must be at least 1s",
	"bad.reconcile-interval.yml":          "workers.reconcile_interval: must be between 1s and 10m",
	"bad.lock-ttl.yml":                    "locks.ttl: must be at least 1s",
	"bad.no-routes.yml":                   "routes: at least one route is required",
	"bad.route-name.yml":                  "routes[0]: name: required",
	"bad.route-dup.yml":                   `routes[1].name: "deadlock" is already used by routes[0]`,
	"bad.matcher.yml":                     "routes[0]: matchers[0]:",
	"bad.no-matchers.yml":                 "routes[0]: matchers: at least one matcher is required",
	"bad.no-runbook.yml":                  "routes[0]: runbook: required",
	"bad.unknown-runbook.yml":             `routes[0]: runbook: unknown runbook "format-disk" (known: cordon, uncordon)`,
	"bad.node-label.yml":                  `routes[0]: node_label: "no-dashes" is not a valid label name`,
	"bad.duration.yml":                    `not a valid duration string: "soon"`,
	"bad.empty.yml":                       "config is empty",
	"bad.bmc-timeout.yml":                 "bmc.timeout: must be at least 100ms",
	"bad.bmc-off-wait.yml":                "bmc.off_wait: 1h0m0s is outside 0–30m",
	"bad.bmc-inventory.yml":               "bmc.inventory_file: stat",
	"bad.window-old-syntax.yml":           "routes[0]: maintenance_windows[0]: field days: windows are Alertmanager time intervals now",
	"bad.window-unknown-field.yml":        "routes[0]: maintenance_windows[1]: field weekday not found",
	"bad.window-time.yml":                 "routes[0]: maintenance_windows[1]: times[0]: start time cannot be equal or greater than end time (a range cannot wrap midnight",
	"bad.window-time-field.yml":           "routes[0]: maintenance_windows[1]: times[0]: field start not found (want start_time, end_time)",
	"bad.window-weekday.yml":              `routes[0]: maintenance_windows[1]: weekdays[0]: "funday": funday is not a valid weekday`,
	"bad.window-month.yml":                `routes[0]: maintenance_windows[1]: months[0]: "march:january": end month january is before start month march`,
	"bad.window-location.yml":             "routes[0]: maintenance_windows[1]: location: unknown time zone Mars/Olympus",
	"bad.window-empty.yml":                "routes[0]: maintenance_windows[1]: empty: a window without times",
	"bad.hook-no-url.yml":                 "hooks[0].url: required",
	"bad.hook-blocking-finished.yml":      "hooks[1].on[0]: a blocking hook is only asked before-destructive, not on run-finished",
	"bad.hook-event.yml":                  `hooks[0].on[1]: unknown event "rebooted"`,
	"bad.hook-dup.yml":                    `hooks[1].name: "ticket" is already used by hooks[0]`,
	"bad.hook-timeout.yml":                "hooks[0].timeout: 1h is outside 0–5m",
	"bad.gate-query-unknown-kind.yml":     "field block_if_temperature not found",
	"bad.gate-query-empty.yml":            "gates.block_if_query[0].query: required",
	"bad.gate-query-name.yml":             "gates.block_if_query[0].name: required",
	"bad.gate-query-dup.yml":              `gates.block_if_query[1].name: "storage" is already used by gates.block_if_query[0]`,
	"bad.gate-query-url.yml":              `gates.block_if_query[0].prometheus_url: "prometheus:9090": want http(s)://host[:port][/prefix]`,
	"bad.gate-alert-matcher.yml":          `routes[0].gates.block_if_alerts[1][1]: "cluster=~\"(unclosed\"":`,
	"bad.gate-alert-empty.yml":            "gates.block_if_alerts[0]: at least one matcher is required",
	"bad.gate-alert-no-alertmanagers.yml": "gates.block_if_alerts: needs alertmanagers",
	"bad.gate-pods-selector.yml":          `gates.blocking_pods.label_selector: "app in (ceph": unable to parse requirement`,
	"bad.gate-pods-empty-selector.yml":    "gates.blocking_pods.label_selector: required",
	"bad.gate-pods-namespace.yml":         `gates.blocking_pods.namespaces[1]: "Not_A_Namespace" is not a namespace name`,
	"bad.gate-pods-scope.yml":             `routes[0].gates.blocking_pods.scope: "zone": want node`,
	"bad.gate-handsoff-empty.yml":         "gates.hands_off.taints[1]: empty: want key or key=value",
	"bad.gate-handsoff-key.yml":           `gates.hands_off.annotations[0]: "not a key=1": key "not a key"`,
	"bad.gate-handsoff-label-value.yml":   `gates.hands_off.labels[0]: "maintenance=in progress": value "in progress"`,
	"bad.gate-handsoff-route.yml":         "routes[0].gates.hands_off.no_defaults: only in the global gates section",
	"bad.ui-operators-dup.yml":            `ui.operators[2]: "alice" listed twice`,
	"bad.ui-operators-cert.yml":           `ui.operators[0]: "cert:": a client certificate needs its common name`,
	"bad.ui-operators-space.yml":          `ui.operators[0]: "alice ": a user name, without surrounding spaces`,
}

func TestRejections(t *testing.T) {
	checkRejections(t, "testdata/bad.*.yml", rejections)
}

// checkRejections loads every fixture matching pattern and wants the
// error its entry in want names (each fixture needs one); an error must
// never show a secret of the fixtures ("hunter2").
func checkRejections(t *testing.T, pattern string, want map[string]string) {
	t.Helper()
	files, _ := filepath.Glob(pattern)
	if len(files) != len(want) {
		t.Errorf("%d fixtures but %d expectations: every %s needs an entry", len(files), len(want), pattern)
	}
	for _, f := range files {
		w, ok := want[filepath.Base(f)]
		if !ok {
			t.Errorf("%s: no expected message", f)
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := LoadFile(f, runbooks)
			if err == nil {
				t.Fatalf("accepted; want error containing %q", w)
			}
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q\n does not contain %q", err, w)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %q", err)
			}
		})
	}
}

func TestGoodConfigDefaults(t *testing.T) {
	c, err := LoadFile("testdata/good.yml", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.URL != DefaultRedisURL || c.Webhook.MaxBodyBytes != DefaultMaxBodyBytes || c.Kubernetes.QPS != DefaultQPS {
		t.Errorf("defaults not applied: %+v", c)
	}
	if time.Duration(c.Locks.TTL) != 30*time.Second || c.Workers.Count != 2 {
		t.Errorf("defaults not applied: %+v %+v", c.Locks, c.Workers)
	}
	if c.Webhook.Auth.Token() != "test-token" {
		t.Errorf("token not read from file")
	}
	if s := fmt.Sprint(c.Webhook.Auth.Token()); s != "<secret>" {
		t.Errorf("secret printed as %q", s)
	}
	if c.Routes[0].NodeLabel != "node" {
		t.Errorf("node label default = %q", c.Routes[0].NodeLabel)
	}
}

func TestRouting(t *testing.T) {
	data := `
webhook: {auth: {allow_unauthenticated: true}}
routes:
  - name: deadlock
    matchers: ['alertname="NodeKernelDeadlock"', 'severity=~"critical|page"']
    runbook: cordon
  - name: by-instance
    matchers: ['alertname=~"Node.*"']
    runbook: uncordon
    node_label: instance
    strip_port: true
`
	c, err := Parse([]byte(data), ".", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		labels  map[string]string
		route   string
		node    string
		hasNode bool
	}{
		{map[string]string{"alertname": "NodeKernelDeadlock", "severity": "page", "node": "n1"}, "deadlock", "n1", true},
		{map[string]string{"alertname": "NodeKernelDeadlock", "severity": "warning", "instance": "n2:9100"}, "by-instance", "n2", true},
		{map[string]string{"alertname": "NodeKernelDeadlock", "severity": "critical"}, "deadlock", "", false},
		{map[string]string{"alertname": "NodeOOM", "instance": "10.0.0.7"}, "by-instance", "10.0.0.7", true},
		{map[string]string{"alertname": "Watchdog"}, "", "", false},
	}
	for _, tc := range cases {
		r := c.Match(tc.labels)
		name := ""
		if r != nil {
			name = r.Name
		}
		if name != tc.route {
			t.Errorf("%v: route %q, want %q", tc.labels, name, tc.route)
			continue
		}
		if r == nil {
			continue
		}
		n, ok := r.Node(tc.labels)
		if n != tc.node || ok != tc.hasNode {
			t.Errorf("%v: node %q,%v want %q,%v", tc.labels, n, ok, tc.node, tc.hasNode)
		}
	}
}

func TestMaintenanceWindows(t *testing.T) {
	data := `
webhook: {auth: {allow_unauthenticated: true}}
routes:
  - name: reboot
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: cordon
    maintenance_windows:
      - times: [{start_time: "22:00", end_time: "24:00"}]
        weekdays: [saturday]
        location: Europe/Berlin
      - {days_of_month: ["1:7", "-1"], months: ["january:march"], years: ["2026:2027"]}
  - name: any-time
    matchers: ['alertname="NodeOOM"']
    runbook: cordon
`
	c, err := Parse([]byte(data), ".", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	ws := c.Routes[0].Windows()
	if len(ws) != 2 || len(c.Routes[1].Windows()) != 0 {
		t.Fatalf("windows %+v, %+v", ws, c.Routes[1].Windows())
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for _, tc := range []struct {
		w    int
		at   time.Time
		want bool
	}{
		{0, time.Date(2026, 11, 28, 22, 30, 0, 0, berlin), true},  // Saturday
		{0, time.Date(2026, 11, 28, 21, 59, 0, 0, berlin), false}, //
		{0, time.Date(2026, 11, 29, 22, 30, 0, 0, berlin), false}, // Sunday
		{1, time.Date(2027, 2, 28, 12, 0, 0, 0, time.UTC), true},  // last day of February
		{1, time.Date(2027, 2, 8, 12, 0, 0, 0, time.UTC), false},
		{1, time.Date(2028, 1, 1, 12, 0, 0, 0, time.UTC), false},
	} {
		if got := ws[tc.w].ContainsTime(tc.at); got != tc.want {
			t.Errorf("window %d at %s: %v, want %v", tc.w, tc.at, got, tc.want)
		}
	}
}

func TestExampleConfig(t *testing.T) {
	c, err := parseExample(t)
	if err != nil {
		t.Fatalf("the shipped example must load: %v", err)
	}
	if len(c.Routes) == 0 {
		t.Fatal("example has no routes")
	}
}

// parseExample loads the shipped example with its token file pointed at a
// fixture (the example names a production path).
func parseExample(t *testing.T) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile("../../examples/node-healer.yml")
	if err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs("testdata/token")
	data = bytes.ReplaceAll(data, []byte("/etc/node-healer/webhook-token"), []byte(abs))
	return Parse(data, ".", nil) // runbook names: checked with the real registry in cmd/receiver
}

// TestHookTokenFileRelative: a hook's bearer_token_file is relative to the
// config file's folder, like every other file the config names.
func TestHookTokenFileRelative(t *testing.T) {
	c, err := Parse([]byte(`webhook: {auth: {allow_unauthenticated: true}}
hooks:
  - {name: ticket, url: "http://tickets.example/hook", on: [before-destructive], blocking: true, bearer_token_file: secrets/ticket-token}
routes:
  - name: deadlock
    matchers: ['alertname="NodeKernelDeadlock"']
    runbook: cordon
`), "/etc/node-healer", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Hooks[0].BearerTokenFile; got != "/etc/node-healer/secrets/ticket-token" {
		t.Fatalf("bearer_token_file %q", got)
	}
}

// MayAct: without ui.operators every authenticated user acts; with it only
// those listed (exact names, "cert:CN" for certificates).
func TestUIOperators(t *testing.T) {
	var none UI
	if ok, why := none.MayAct("anyone"); !ok || why != "" {
		t.Errorf("no operators configured: MayAct = %v %q, want true", ok, why)
	}
	u := UI{Operators: []string{"alice", "cert:oncall"}}
	for user, want := range map[string]bool{"alice": true, "cert:oncall": true, "bob": false, "Alice": false, "oncall": false, "": false} {
		ok, why := u.MayAct(user)
		if ok != want || ok != (why == "") {
			t.Errorf("MayAct(%q) = %v %q, want %v", user, ok, why, want)
		}
	}
	if _, why := u.MayAct("bob"); why != "bob is not in ui.operators (read-only)" {
		t.Errorf("why = %q", why)
	}
}
