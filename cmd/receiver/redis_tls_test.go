package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/testenv"
)

// TestServeRedisTLS: serve against a TLS-only Redis is ready with the
// server's CA in redis.tls.ca_file; with another CA it says so at
// start-up and /-/ready answers 503 naming redis and the settings to check.
func TestServeRedisTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	r := testenv.NewRedisTLS(t)
	other, err := testenv.NewTestCA(t.TempDir(), "other")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ca string
		ready    int
		body     string
	}{
		{"server CA", r.CA.CAFile, http.StatusOK, "OK"},
		{"other CA", other.CAFile, http.StatusServiceUnavailable,
			"redis: redis TLS: the server's certificate does not verify (check redis.tls.ca_file and redis.tls.server_name): tls: failed to verify certificate: x509: certificate signed by unknown authority"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := fmt.Sprintf("redis:\n  url: %s\n  tls: {ca_file: %s}\nwebhook: {auth: {bearer_token_file: token}}\nworkers: {reconcile_interval: 10m}\n%s", r.URL(0), tc.ca, defaultRoutes)
			cfgFile := filepath.Join(dir, "node-healer.yml")
			if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			port, err := testenv.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			url := fmt.Sprintf("http://127.0.0.1:%d", port)
			lw := &syncWriter{w: &bytes.Buffer{}}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- runServe(ctx, serveOptions{ConfigFile: cfgFile, ListenAddress: fmt.Sprintf("127.0.0.1:%d", port),
					Kubeconfig: cluster.Kubeconfig, Replica: "tls-" + tc.name, Log: logOptions{Format: "logfmt", Level: "info"}}, lw)
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve returned %v", err)
				}
				if t.Failed() {
					t.Logf("receiver log:\n%s", lw.String())
				}
			}()
			var code int
			var body string
			waitFor(t, fmt.Sprintf("/-/ready %d", tc.ready), 30*time.Second, func() bool {
				resp, err := http.Get(url + "/-/ready")
				if err != nil {
					return false
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code, body = resp.StatusCode, string(b)
				return code == tc.ready && strings.Contains(body, tc.body)
			})
			if tc.ready != http.StatusOK {
				waitFor(t, "the start-up log line", 10*time.Second, func() bool {
					return strings.Contains(lw.String(), "redis not usable at start-up") && strings.Contains(lw.String(), "check redis.tls.ca_file")
				})
			}
		})
	}
}
