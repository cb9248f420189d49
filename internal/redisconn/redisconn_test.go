package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/testenv"
)

// client parses a redis section the way check-config and serve do and
// builds the client from it.
func client(t *testing.T, redisYAML string) (redis.UniversalClient, *config.Config) {
	t.Helper()
	cfg, err := config.Parse([]byte(redisYAML+`
webhook: {auth: {allow_unauthenticated: true}}
routes: [{name: r, matchers: ['alertname="X"'], runbook: cordon}]
`), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg.Redis, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, cfg
}

func integration(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server (integration)")
	}
}

func TestTopologyFromConfig(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want string
	}{
		{"redis: {url: redis://127.0.0.1:6379/3}", "*redis.Client"},
		{"redis: {sentinel: {master_name: m, addrs: [127.0.0.1:26379]}}", "*redis.Client"}, // a failover client is a *redis.Client
		{"redis: {cluster: {addrs: [127.0.0.1:7000]}}", "*redis.ClusterClient"},
	} {
		c, _ := client(t, tc.yaml)
		if got := fmt.Sprintf("%T", c); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.yaml, got, tc.want)
		}
	}
	cfg, err := config.Parse([]byte("redis: {cluster: {addrs: [127.0.0.1:7000]}}\nwebhook: {auth: {allow_unauthenticated: true}}\nroutes: [{name: r, matchers: ['a=\"b\"'], runbook: x}]"), ".", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg.Redis, Options{URL: "redis://other:6379/0"}); err == nil || !strings.Contains(err.Error(), "--redis.url cannot override redis.sentinel or redis.cluster") {
		t.Errorf("override of a cluster: %v", err)
	}
}

// TestSentinelFailover: the client built from redis.sentinel (both
// passwords from files) writes and reads through the primary the
// Sentinels name, and after SIGKILL of that primary follows the promoted
// replica without being rebuilt.
func TestSentinelFailover(t *testing.T) {
	integration(t)
	s := testenv.NewRedisSentinel(t, testenv.SentinelOptions{Password: "data-pw", SentinelPassword: "sentinel-pw"})
	ctx := context.Background()
	dir := t.TempDir()
	for f, v := range map[string]string{"redis-password": "data-pw\n", "sentinel-password": "sentinel-pw\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	section := fmt.Sprintf("redis:\n  sentinel:\n    master_name: %s\n    addrs: [%s]\n", s.MasterName, strings.Join(s.Sentinels, ", "))
	pw := fmt.Sprintf("    password_file: %s\n", filepath.Join(dir, "redis-password"))
	spw := fmt.Sprintf("    sentinel_password_file: %s\n", filepath.Join(dir, "sentinel-password"))

	// Each password is needed where it is documented to be used.
	for name, yaml := range map[string]string{"no sentinel password": section + pw, "no data password": section + spw} {
		c, _ := client(t, yaml)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := Ping(pctx, c)
		cancel()
		if err == nil {
			t.Errorf("%s: connected", name)
		} else if strings.Contains(err.Error(), "-pw") {
			t.Errorf("%s: the error shows a password: %v", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}

	c, _ := client(t, section+pw+spw)
	if err := Ping(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "before", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "before").Result(); err != nil || v != "v1" {
		t.Fatalf("get: %q %v", v, err)
	}
	old, err := s.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: old, Password: "data-pw"})
	v, err := direct.Get(ctx, "before").Result()
	direct.Close()
	if err != nil || v != "v1" {
		t.Fatalf("the write did not go to the primary %s: %q %v", old, v, err)
	}
	// Only what reached the replica survives the failover (replication is
	// asynchronous; node-healer does not WAIT yet): make sure it did.
	if n, err := c.Do(ctx, "WAIT", 1, 2000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1: %d %v", n, err)
	}

	killed := time.Now()
	if _, err := s.KillPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	promoted, err := s.WaitFailover(ctx, old, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sentinels promoted %s %s after the kill of %s", promoted, time.Since(killed).Round(100*time.Millisecond), old)
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for {
		if last = c.Set(ctx, "after", "v2", 0).Err(); last == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not follow the new primary %s: %v\n%s", promoted, last, s.LogTails(10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("first successful write %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	if v, err := c.Get(ctx, "before").Result(); err != nil || v != "v1" {
		t.Errorf("replicated value lost in the failover: %q %v", v, err)
	}
	direct = redis.NewClient(&redis.Options{Addr: promoted, Password: "data-pw"})
	defer direct.Close()
	if v, err := direct.Get(ctx, "after").Result(); err != nil || v != "v2" {
		t.Errorf("the write after failover is not on the promoted primary %s: %q %v", promoted, v, err)
	}
}

// TestTLS: a TLS-only redis-server; the client trusts it through
// redis.tls.ca_file, and refuses it, with an error that says what to
// check, under another CA or another server name.
func TestTLS(t *testing.T) {
	integration(t)
	r := testenv.NewRedisTLS(t)
	ctx := context.Background()

	c, _ := client(t, fmt.Sprintf("redis:\n  url: %s\n  tls: {ca_file: %s}\n", r.URL(0), r.CA.CAFile))
	if err := Ping(ctx, c); err != nil {
		t.Fatalf("ca_file of the server's CA: %v", err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("get over TLS: %q %v", v, err)
	}

	other, err := testenv.NewTestCA(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	for name, yaml := range map[string]string{
		"wrong CA":          fmt.Sprintf("redis:\n  url: %s\n  tls: {ca_file: %s}\n", r.URL(0), other.CAFile),
		"wrong server name": fmt.Sprintf("redis:\n  url: %s\n  tls: {ca_file: %s, server_name: redis.example.com}\n", r.URL(0), r.CA.CAFile),
		"system roots":      fmt.Sprintf("redis:\n  url: %s\n", r.URL(0)),
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := client(t, yaml)
			err := Ping(ctx, c)
			if err == nil {
				t.Fatal("connected")
			}
			if !IsTLSVerify(err) || !strings.Contains(err.Error(), "redis TLS: the server's certificate does not verify (check redis.tls.ca_file and redis.tls.server_name): ") {
				t.Fatalf("unclear error: %v", err)
			}
			t.Log(err)
		})
	}
	c, _ = client(t, fmt.Sprintf("redis:\n  url: %s\n  tls: {insecure_skip_verify: true}\n", r.URL(0)))
	if err := Ping(ctx, c); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
}

// TestClusterFromConfig: redis.cluster seeded with one node reaches keys
// in every master's slots.
func TestClusterFromConfig(t *testing.T) {
	integration(t)
	rc, _ := testenv.NewRedisCluster(t)
	ctx := context.Background()
	c, _ := client(t, fmt.Sprintf("redis:\n  cluster: {addrs: [%s]}\n", rc.Addrs[0]))
	if err := Ping(ctx, c); err != nil {
		t.Fatal(err)
	}
	for i := range 30 { // 30 keys spread over the three masters' slots
		k := fmt.Sprintf("k%d", i)
		if err := c.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("set %s: %v", k, err)
		}
		if v, err := c.Get(ctx, k).Int(); err != nil || v != i {
			t.Fatalf("get %s: %d %v", k, v, err)
		}
	}
}

// TestSetLogger: go-redis' own messages (here: a Sentinel that cannot
// be reached) become structured records of node-healer's log.
func TestSetLogger(t *testing.T) {
	var buf testenv.SyncBuffer
	SetLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { SetLogger(slog.New(slog.DiscardHandler)) })
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{fmt.Sprintf("127.0.0.1:%d", port)}, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("ping through a Sentinel that is not there succeeded")
	}
	got := buf.String()
	for _, want := range []string{"level=WARN", "component=redis", "sentinel: GetMasterAddrByName", "failed"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}
