package config

import (
	"os"
	"strings"
	"testing"
)

func TestRedisTopologies(t *testing.T) {
	const rest = `
webhook: {auth: {allow_unauthenticated: true}}
routes: [{name: r, matchers: ['alertname="X"'], runbook: cordon}]
`
	t.Run("sentinel", func(t *testing.T) {
		c, err := Parse([]byte(`
redis:
  sentinel:
    master_name: mymaster
    addrs: [redis-node-0.redis-headless:26379, redis-node-1.redis-headless:26379]
    username: node-healer
    password_file: testdata/password
    sentinel_password_file: testdata/token
`+rest), ".", runbooks)
		if err != nil {
			t.Fatal(err)
		}
		s := c.Redis.Sentinel
		if c.Redis.URL != "" {
			t.Errorf("url defaulted to %q next to sentinel", c.Redis.URL)
		}
		if s.Password() == "" || s.SentinelPassword() != "test-token" {
			t.Errorf("sentinel secrets not read")
		}
		if d := c.Redis.Describe(); strings.Contains(d, string(s.Password())) || !strings.Contains(d, `"mymaster"`) {
			t.Errorf("Describe() = %q", d)
		}
	})
	t.Run("cluster+tls", func(t *testing.T) {
		c, err := Parse([]byte(`
redis:
  cluster: {addrs: ["10.0.0.1:6379"]}
  tls: {insecure_skip_verify: true, server_name: redis.internal}
`+rest), ".", runbooks)
		if err != nil {
			t.Fatal(err)
		}
		if c.Redis.URL != "" || c.Redis.TLS.Common().ServerName != "redis.internal" {
			t.Errorf("%+v", c.Redis)
		}
		if d := c.Redis.Describe(); d != "cluster via 10.0.0.1:6379 (tls)" {
			t.Errorf("Describe() = %q", d)
		}
	})
}

// TestRedisExamples: the shipped Redis examples are valid configs (their
// secret and CA files name production paths, so they are not read here).
func TestRedisExamples(t *testing.T) {
	for _, f := range []string{"redis-sentinel.yml", "redis-tls.yml"} {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile("../../examples/" + f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parse(data, ".", nil, false)
			if err != nil {
				t.Fatalf("the shipped example must load: %v", err)
			}
			if c.Redis.Sentinel == nil && c.Redis.TLS == nil {
				t.Errorf("%s configures neither Sentinel nor TLS", f)
			}
		})
	}
}
