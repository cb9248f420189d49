// Package config loads and validates node-healer's configuration file.
//
// Like Alertmanager's config package: YAML decoded strictly (unknown keys
// are errors), defaults applied, then validated with errors that name the
// field ("routes[1].matchers[0]: …"). Routes use Alertmanager's own matcher
// syntax so users write what they already know.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Config is the whole configuration file.
type Config struct {
	Redis      Redis      `yaml:"redis"`
	Kubernetes Kubernetes `yaml:"kubernetes"`
	Webhook    Webhook    `yaml:"webhook"`
	Workers    Workers    `yaml:"workers"`
	Locks      Locks      `yaml:"locks"`
	BMC        BMC        `yaml:"bmc"`
	Safety     Safety     `yaml:"safety"`
	// Alertmanagers are where silences are read (see alertmanager.go).
	Alertmanagers []*AlertmanagerConfig `yaml:"alertmanagers"`
	// Alertmanager is deprecated: mapped onto Alertmanagers when the file
	// is parsed, then nil.
	Alertmanager *Alertmanager `yaml:"alertmanager,omitempty"`
	NodeExec     NodeExec      `yaml:"node_exec"`
	// Notify: node-healer's own alerts, sent to the Alertmanagers above.
	Notify Notify `yaml:"notify"`
	// UI: who may act on the operator page (ui.go).
	UI UI `yaml:"ui"`
	// Gates asked before every destructive step of every route (gates.go).
	Gates *Gates `yaml:"gates"`
	// Hooks: HTTP POSTs of the run at points of its life (gates.go).
	Hooks  []Hook   `yaml:"hooks"`
	Routes []*Route `yaml:"routes"`

	deprecations []string
}

// BMC says where node BMCs are described (Redfish).
type BMC struct {
	// InventoryFile maps nodes to BMC endpoints and credential files
	// (see internal/bmc). Empty: no BMC; power steps escalate.
	InventoryFile string         `yaml:"inventory_file"`
	Timeout       model.Duration `yaml:"timeout"`
	// OffWait bounds the wait for the machine to be Off inside one power
	// operation: between ForceOff and On of a Redfish hard reset done in
	// two steps, and IPMI's soft reboot (chassis power soft, then on once
	// off) and refused-cycle fallback. Default 2m; at most 30m.
	OffWait model.Duration `yaml:"off_wait"`
}

// Safety holds the cluster-wide limits (see internal/safety).
type Safety struct {
	MaxConcurrentRuns         int            `yaml:"max_concurrent_runs"`
	MaxConcurrentControlPlane int            `yaml:"max_concurrent_control_plane"`
	Reboots                   RateLimit      `yaml:"reboots"`
	NodeRuns                  NodeRuns       `yaml:"node_runs"`
	Breaker                   Breaker        `yaml:"breaker"`
	Settle                    model.Duration `yaml:"settle"`
	ExcludeLabel              string         `yaml:"exclude_label"`
}

// RateLimit is count events per period, with a burst.
type RateLimit struct {
	Count  int            `yaml:"count"`
	Period model.Duration `yaml:"period"`
	Burst  int            `yaml:"burst"`
}

// NodeRuns caps runs per node per window; past it a human is called.
type NodeRuns struct {
	Max    int            `yaml:"max"`
	Window model.Duration `yaml:"window"`
}

// Breaker is the blast-radius circuit breaker.
type Breaker struct {
	MaxUnhealthyPercent float64        `yaml:"max_unhealthy_percent"`
	MaxUnhealthyNodes   int            `yaml:"max_unhealthy_nodes"`
	MinUnhealthyNodes   int            `yaml:"min_unhealthy_nodes"`
	Hold                model.Duration `yaml:"hold"`
	// GroupBy names a node label (e.g. topology.kubernetes.io/zone): the
	// thresholds also apply to each group of nodes sharing its value, so
	// one failure domain going bad stops remediation there only.
	GroupBy string `yaml:"group_by"`
}

// NodeExec configures the privileged pods that run host commands.
type NodeExec struct {
	Namespace string `yaml:"namespace"`
	Image     string `yaml:"image"`
}

// Redis says where run state, the alert stream and locks live: one of
// URL (a single server, the default), Sentinel or Cluster, each
// optionally over TLS (see internal/redisconn, which builds the client).
type Redis struct {
	URL          string         `yaml:"url"`
	PasswordFile string         `yaml:"password_file"`
	Sentinel     *RedisSentinel `yaml:"sentinel"`
	Cluster      *RedisCluster  `yaml:"cluster"`
	TLS          *RedisTLS      `yaml:"tls"`
	KeyPrefix    string         `yaml:"key_prefix"`
	DedupeTTL    model.Duration `yaml:"dedupe_ttl"`
	RunTTL       model.Duration `yaml:"run_ttl"`
	// MinReplicasAcked > 0: a node lock counts as taken, the webhook
	// confirms alerts and a reset decision is acted on only once that many
	// replicas acknowledged the write (Redis WAIT), within ReplicationTimeout.
	MinReplicasAcked   int            `yaml:"min_replicas_acked"`
	ReplicationTimeout model.Duration `yaml:"replication_timeout"`

	password Secret
}

// Password is the secret read from PasswordFile (empty when unset).
func (r Redis) Password() Secret { return r.password }

// Describe names the topology for logs and check-config; it carries no
// secret.
func (r Redis) Describe() string {
	var s string
	switch {
	case r.Sentinel != nil:
		s = fmt.Sprintf("sentinel master %q via %s", r.Sentinel.MasterName, strings.Join(r.Sentinel.Addrs, ","))
	case r.Cluster != nil:
		s = "cluster via " + strings.Join(r.Cluster.Addrs, ",")
	default:
		s = r.URL
	}
	if r.TLS != nil {
		s += " (tls)"
	}
	return s
}

// RedisSentinel finds the primary through Redis Sentinel and follows it
// across failovers.
type RedisSentinel struct {
	MasterName string   `yaml:"master_name"`
	Addrs      []string `yaml:"addrs"`
	// Username and PasswordFile authenticate to the primary (and replicas).
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// SentinelPasswordFile authenticates to the Sentinels themselves
	// (Sentinel's requirepass).
	SentinelPasswordFile string `yaml:"sentinel_password_file"`

	password, sentinelPassword Secret
}

// Password is the data nodes' secret read from PasswordFile.
func (s RedisSentinel) Password() Secret { return s.password }

// SentinelPassword is the Sentinels' secret read from SentinelPasswordFile.
func (s RedisSentinel) SentinelPassword() Secret { return s.sentinelPassword }

// RedisCluster talks to a Redis Cluster; Addrs are seed nodes, the rest
// of the cluster is discovered. The password is redis.password_file.
type RedisCluster struct {
	Addrs []string `yaml:"addrs"`
}

// RedisTLS is the client side of TLS to Redis, for every topology. Files
// are read when the client is built (internal/redisconn, through
// prometheus/common's TLSConfig); the client certificate is re-read on
// each handshake, so it can be rotated in place.
type RedisTLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Kubernetes tunes the client-go client.
type Kubernetes struct {
	QPS   float32 `yaml:"qps"`
	Burst int     `yaml:"burst"`
}

// Webhook configures the Alertmanager webhook endpoint. TLS, client
// certificates and basic auth are not here: they are the web configuration
// file's (--web.config.file, prometheus/exporter-toolkit), which protects
// every endpoint; the bearer token below is checked on /webhook on top.
type Webhook struct {
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	Auth         Auth  `yaml:"auth"`
	// TLS is the removed webhook.tls: decoded only to say where it went.
	TLS Moved `yaml:"tls,omitempty"`
}

// Auth configures the webhook's bearer token. It is required unless
// AllowUnauthenticated is set explicitly (then /webhook relies on the web
// configuration file alone: basic_auth_users or client certificates).
type Auth struct {
	BearerTokenFile      string `yaml:"bearer_token_file"`
	AllowUnauthenticated bool   `yaml:"allow_unauthenticated"`
	// BasicAuth is the removed webhook.auth.basic_auth: decoded only to
	// say where it went.
	BasicAuth Moved `yaml:"basic_auth,omitempty"`

	token Secret
}

// Token is the bearer token read from BearerTokenFile.
func (a Auth) Token() Secret { return a.token }

// Moved is a key that no longer belongs in this file: whatever its value,
// decoding it records that it is set, and validation says where it went.
type Moved bool

// UnmarshalYAML accepts any value.
func (m *Moved) UnmarshalYAML(*yaml.Node) error {
	*m = true
	return nil
}

// Migration errors for the keys that moved to the web configuration file.
const (
	movedTLS = "webhook.tls: moved to the web configuration file (--web.config.file): " +
		"tls_server_config: {cert_file, key_file, client_ca_file, client_auth_type: RequireAndVerifyClientCert}; " +
		"see README \"Webhook security\""
	movedBasicAuth = "webhook.auth.basic_auth: moved to the web configuration file (--web.config.file): " +
		"basic_auth_users: {USERNAME: BCRYPT_HASH}, which protects every endpoint; " +
		"keep webhook.auth.bearer_token_file for Alertmanager, or set allow_unauthenticated: true to rely on the web configuration alone; " +
		"see README \"Webhook security\""
)

// Workers configures the stream consumers in this replica.
type Workers struct {
	Count      int            `yaml:"count"`
	ClaimAfter model.Duration `yaml:"claim_after"`
	// ReconcileInterval: how often a replica looks for half-done work
	// nothing tracks any more (see internal/reconcile).
	ReconcileInterval model.Duration `yaml:"reconcile_interval"`
}

// Locks configures per-node lease locks.
type Locks struct {
	TTL model.Duration `yaml:"ttl"`
}

// Secret is a credential read from a file; it never prints itself.
type Secret string

func (Secret) String() string { return "<secret>" }

// MarshalYAML hides the value when a config is printed.
func (Secret) MarshalYAML() (any, error) { return "<secret>", nil }

// Defaults.
const (
	DefaultRedisURL     = "redis://127.0.0.1:6379/0"
	DefaultKeyPrefix    = "node-healer"
	DefaultMaxBodyBytes = 1 << 20
	DefaultNodeLabel    = "node"
	DefaultQPS          = 50
	DefaultBurst        = 100
)

func (c *Config) setDefaults() {
	c.Notify.setDefaults()
	d := func(p *model.Duration, v time.Duration) {
		if *p == 0 {
			*p = model.Duration(v)
		}
	}
	if c.Redis.URL == "" && c.Redis.Sentinel == nil && c.Redis.Cluster == nil {
		c.Redis.URL = DefaultRedisURL
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = DefaultKeyPrefix
	}
	d(&c.Redis.DedupeTTL, 24*time.Hour)
	d(&c.Redis.RunTTL, 7*24*time.Hour)
	d(&c.Redis.ReplicationTimeout, 500*time.Millisecond)
	if c.Kubernetes.QPS == 0 {
		c.Kubernetes.QPS = DefaultQPS
	}
	if c.Kubernetes.Burst == 0 {
		c.Kubernetes.Burst = DefaultBurst
	}
	if c.Webhook.MaxBodyBytes == 0 {
		c.Webhook.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Workers.Count == 0 {
		c.Workers.Count = 2
	}
	d(&c.Workers.ClaimAfter, time.Minute)
	d(&c.Workers.ReconcileInterval, 30*time.Second)
	d(&c.Locks.TTL, 30*time.Second)
	d(&c.BMC.Timeout, 10*time.Second)
	sf := &c.Safety
	if sf.MaxConcurrentRuns == 0 {
		sf.MaxConcurrentRuns = 1
	}
	if sf.MaxConcurrentControlPlane == 0 {
		sf.MaxConcurrentControlPlane = 1
	}
	if sf.Reboots.Count == 0 {
		sf.Reboots.Count = 1
	}
	d(&sf.Reboots.Period, 10*time.Minute)
	if sf.Reboots.Burst == 0 {
		sf.Reboots.Burst = 1
	}
	if sf.NodeRuns.Max == 0 {
		sf.NodeRuns.Max = 3
	}
	d(&sf.NodeRuns.Window, 24*time.Hour)
	if sf.Breaker.MaxUnhealthyPercent == 0 && sf.Breaker.MaxUnhealthyNodes == 0 {
		sf.Breaker.MaxUnhealthyPercent = 20
	}
	d(&sf.Breaker.Hold, 5*time.Minute)
	if sf.Breaker.MinUnhealthyNodes == 0 {
		sf.Breaker.MinUnhealthyNodes = 3
	}
	d(&sf.Settle, 5*time.Second)
	if sf.ExcludeLabel == "" {
		sf.ExcludeLabel = "node-healer.io/exclude"
	}
	c.setAlertmanagerDefaults()
	if c.NodeExec.Namespace == "" {
		c.NodeExec.Namespace = "node-healer-exec"
	}
	if c.NodeExec.Image == "" {
		c.NodeExec.Image = "busybox:1.37"
	}
	for _, r := range c.Routes {
		if r != nil && r.NodeLabel == "" {
			r.NodeLabel = DefaultNodeLabel
		}
	}
}

// Parse decodes YAML strictly, applies defaults and validates. Relative
// file paths are resolved against baseDir; secret files are read.
// knownRunbooks, when non-nil, is the set of runbook names routes may use.
func Parse(data []byte, baseDir string, knownRunbooks []string) (*Config, error) {
	return parse(data, baseDir, knownRunbooks, true)
}

// secretMode says which secret files parse reads and how it treats a
// missing one.
type secretMode struct {
	skip      bool // none (route test)
	redisOnly bool // only Redis' (runs, status, pause)
	// missing, when set, is told about a secret file that does not exist or
	// cannot be read here, instead of failing (check-config on a machine
	// without the mounted secrets).
	missing func(field, path string, err error)
}

func parse(data []byte, baseDir string, knownRunbooks []string, secrets bool) (*Config, error) {
	return parseMode(data, baseDir, knownRunbooks, secretMode{skip: !secrets})
}

func parseMode(data []byte, baseDir string, knownRunbooks []string, mode secretMode) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	c := &Config{}
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config is empty")
		}
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := c.migrateAlertmanager(); err != nil {
		return nil, err
	}
	c.setDefaults()
	if err := c.validate(knownRunbooks); err != nil {
		return nil, err
	}
	if err := c.validateAlertmanagers(baseDir); err != nil {
		return nil, err
	}
	if err := c.validateAlertGatesNeedAlertmanagers(); err != nil {
		return nil, err
	}
	c.resolveHookFiles(baseDir)
	if !mode.skip {
		if err := c.readSecrets(baseDir, mode); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// LoadFile reads and parses a configuration file, secrets included.
func LoadFile(path string, knownRunbooks []string) (*Config, error) {
	return loadFile(path, knownRunbooks, true)
}

// LoadFileSkipSecrets parses a configuration file without reading the
// secret files it names, for tools that only need routes or Redis
// settings (route test, runs show) on a machine without those files.
func LoadFileSkipSecrets(path string, knownRunbooks []string) (*Config, error) {
	return loadFile(path, knownRunbooks, false)
}

// LoadFileForRedis parses a configuration file and reads only the secret
// files Redis needs, for the commands that only talk to Redis (runs,
// status, pause, resume): the webhook's token need not be readable there.
func LoadFileForRedis(path string, knownRunbooks []string) (*Config, error) {
	return loadFileMode(path, knownRunbooks, secretMode{redisOnly: true})
}

// LoadFileCheck parses a configuration file as serve would, except that a
// secret file that does not exist or cannot be read is reported to missing
// (field, path, error) instead of failing: check-config on an operator's
// machine, where the secrets are not mounted. An empty secret file is
// still an error.
func LoadFileCheck(path string, knownRunbooks []string, missing func(field, path string, err error)) (*Config, error) {
	return loadFileMode(path, knownRunbooks, secretMode{missing: missing})
}

func loadFile(path string, knownRunbooks []string, secrets bool) (*Config, error) {
	return loadFileMode(path, knownRunbooks, secretMode{skip: !secrets})
}

func loadFileMode(path string, knownRunbooks []string, mode secretMode) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parseMode(data, filepath.Dir(path), knownRunbooks, mode)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func (c *Config) validate(known []string) error {
	if err := c.Notify.validate(); err != nil {
		return err
	}
	if err := c.UI.validate(); err != nil {
		return err
	}
	if err := c.Gates.validate("gates"); err != nil {
		return err
	}
	if err := validateHooksList(c.Hooks); err != nil {
		return err
	}
	if err := c.Redis.validate(); err != nil {
		return err
	}
	if strings.ContainsAny(c.Redis.KeyPrefix, " {}") {
		return fmt.Errorf("redis.key_prefix: %q must not contain spaces or braces", c.Redis.KeyPrefix)
	}
	if c.Kubernetes.QPS < 0 {
		return fmt.Errorf("kubernetes.qps: must be positive, got %v", c.Kubernetes.QPS)
	}
	if c.Kubernetes.Burst < 0 {
		return fmt.Errorf("kubernetes.burst: must be positive, got %d", c.Kubernetes.Burst)
	}
	if c.Webhook.MaxBodyBytes < 0 {
		return fmt.Errorf("webhook.max_body_bytes: must be positive, got %d", c.Webhook.MaxBodyBytes)
	}
	a := c.Webhook.Auth
	if c.Webhook.TLS {
		return errors.New(movedTLS)
	}
	if a.BasicAuth {
		return errors.New(movedBasicAuth)
	}
	if a.BearerTokenFile == "" && !a.AllowUnauthenticated {
		return errors.New("webhook.auth: configure bearer_token_file (or set allow_unauthenticated: true when the web configuration file authenticates every request)")
	}
	if a.AllowUnauthenticated && a.BearerTokenFile != "" {
		return errors.New("webhook.auth: allow_unauthenticated cannot be combined with bearer_token_file")
	}
	if c.Workers.Count < 1 || c.Workers.Count > 256 {
		return fmt.Errorf("workers.count: must be between 1 and 256, got %d", c.Workers.Count)
	}
	if time.Duration(c.Workers.ClaimAfter) < time.Second {
		return fmt.Errorf("workers.claim_after: must be at least 1s, got %s", c.Workers.ClaimAfter)
	}
	if ri := time.Duration(c.Workers.ReconcileInterval); ri < time.Second || ri > 10*time.Minute {
		return fmt.Errorf("workers.reconcile_interval: must be between 1s and 10m, got %s", c.Workers.ReconcileInterval)
	}
	if time.Duration(c.Locks.TTL) < time.Second {
		return fmt.Errorf("locks.ttl: must be at least 1s, got %s", c.Locks.TTL)
	}
	if time.Duration(c.BMC.Timeout) < 100*time.Millisecond {
		return fmt.Errorf("bmc.timeout: must be at least 100ms, got %s", c.BMC.Timeout)
	}
	sf := c.Safety
	if sf.MaxConcurrentRuns < 0 || sf.MaxConcurrentControlPlane < 0 {
		return errors.New("safety.max_concurrent_runs, max_concurrent_control_plane: must be positive")
	}
	if sf.Reboots.Count < 0 || sf.Reboots.Burst < 0 || time.Duration(sf.Reboots.Period) <= 0 {
		return fmt.Errorf("safety.reboots: count and burst must be positive and period set, got %+v", sf.Reboots)
	}
	if w := time.Duration(c.BMC.OffWait); w < 0 || w > 30*time.Minute {
		return fmt.Errorf("bmc.off_wait: %s is outside 0–30m", w)
	}
	if sf.NodeRuns.Max < 0 {
		return errors.New("safety.node_runs.max: must be positive")
	}
	if sf.Breaker.MaxUnhealthyPercent < 0 || sf.Breaker.MaxUnhealthyPercent > 100 || sf.Breaker.MaxUnhealthyNodes < 0 {
		return fmt.Errorf("safety.breaker.max_unhealthy_percent: must be between 0 and 100, got %v", sf.Breaker.MaxUnhealthyPercent)
	}
	if g := sf.Breaker.GroupBy; g != "" {
		if errs := validation.IsQualifiedName(g); len(errs) > 0 {
			return fmt.Errorf("safety.breaker.group_by: %q is not a node label name: %s", g, strings.Join(errs, "; "))
		}
	}
	if len(c.Routes) == 0 {
		return errors.New("routes: at least one route is required")
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		if r == nil {
			return fmt.Errorf("routes[%d]: empty route", i)
		}
		if err := r.compile(known); err != nil {
			return fmt.Errorf("routes[%d]: %w", i, err)
		}
		if err := r.Gates.validate(fmt.Sprintf("routes[%d].gates", i)); err != nil {
			return err
		}
		if j, dup := seen[r.Name]; dup {
			return fmt.Errorf("routes[%d].name: %q is already used by routes[%d]", i, r.Name, j)
		}
		seen[r.Name] = i
	}
	return nil
}

func (c *Config) readSecrets(baseDir string, mode secretMode) error {
	read := func(field, path string, dst *Secret) error {
		if path == "" {
			return nil
		}
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		b, err := os.ReadFile(path)
		if err != nil && mode.missing != nil && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
			mode.missing(field, path, err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return fmt.Errorf("%s: %s is empty", field, path)
		}
		*dst = Secret(s)
		return nil
	}
	if err := read("redis.password_file", c.Redis.PasswordFile, &c.Redis.password); err != nil {
		return err
	}
	if s := c.Redis.Sentinel; s != nil {
		if err := read("redis.sentinel.password_file", s.PasswordFile, &s.password); err != nil {
			return err
		}
		if err := read("redis.sentinel.sentinel_password_file", s.SentinelPasswordFile, &s.sentinelPassword); err != nil {
			return err
		}
	}
	if err := c.Redis.TLS.resolve(baseDir); err != nil {
		return err
	}
	if mode.redisOnly {
		return nil
	}
	if err := read("webhook.auth.bearer_token_file", c.Webhook.Auth.BearerTokenFile, &c.Webhook.Auth.token); err != nil {
		return err
	}
	if f := c.BMC.InventoryFile; f != "" {
		if !filepath.IsAbs(f) {
			c.BMC.InventoryFile = filepath.Join(baseDir, f)
		}
		if _, err := os.Stat(c.BMC.InventoryFile); err != nil {
			return fmt.Errorf("bmc.inventory_file: %w", err)
		}
	}
	return nil
}

// validateAlertGatesNeedAlertmanagers: block_if_alerts reads firing
// alerts from the alertmanagers; without any it could only fail closed.
func (c *Config) validateAlertGatesNeedAlertmanagers() error {
	if len(c.Alertmanagers) > 0 {
		return nil
	}
	if c.Gates != nil && len(c.Gates.BlockIfAlerts) > 0 {
		return errors.New("gates.block_if_alerts: needs alertmanagers (where the firing alerts are read)")
	}
	for i, r := range c.Routes {
		if r.Gates != nil && len(r.Gates.BlockIfAlerts) > 0 {
			return fmt.Errorf("routes[%d].gates.block_if_alerts: needs alertmanagers (where the firing alerts are read)", i)
		}
	}
	return nil
}
