package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigKubeconfigList: a colon-separated KUBECONFIG is merged as
// kubectl merges it. Here current-context is in one file and the cluster
// and user it names in the other; main passes $KUBECONFIG as the
// --kubeconfig value when the flag is not set.
func TestConfigKubeconfigList(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ctx := write("context.yaml", `apiVersion: v1
kind: Config
current-context: prod
contexts:
- name: prod
  context: {cluster: prod, user: healer}
`)
	creds := write("credentials.yaml", `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://prod.example:6443"}
- name: staging
  cluster: {server: "https://staging.example:6443"}
users:
- name: healer
  user: {token: prod-token}
`)
	single := write("single.yaml", `apiVersion: v1
kind: Config
current-context: staging
contexts:
- name: staging
  context: {cluster: staging, user: u}
clusters:
- name: staging
  cluster: {server: "https://staging.example:6443"}
users:
- name: u
  user: {token: staging-token}
`)
	list := strings.Join([]string{ctx, creds}, string(os.PathListSeparator))
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster
	for _, tc := range []struct {
		name, flag, env string
		host, token     string
	}{
		{"list as --kubeconfig (from $KUBECONFIG)", list, "", "https://prod.example:6443", "prod-token"},
		{"$KUBECONFIG list, no flag", "", list, "https://prod.example:6443", "prod-token"},
		{"explicit file wins over $KUBECONFIG", single, list, "https://staging.example:6443", "staging-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			cfg, err := Config(tc.flag, 5, 10)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.host || cfg.BearerToken != tc.token || cfg.QPS != 5 || cfg.Burst != 10 {
				t.Fatalf("host %q token %q qps %v burst %d; want %q %q 5 10", cfg.Host, cfg.BearerToken, cfg.QPS, cfg.Burst, tc.host, tc.token)
			}
		})
	}
	t.Run("explicit file must exist", func(t *testing.T) {
		t.Setenv("KUBECONFIG", "")
		if _, err := Config(filepath.Join(dir, "missing.yaml"), 5, 10); err == nil {
			t.Fatal("a missing --kubeconfig file was accepted")
		}
	})
}
