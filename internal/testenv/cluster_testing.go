package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// NewCluster starts a cluster for one test (see StartCluster) and stops it
// when the test ends; if the test failed, the tail of each process's log is
// logged first. Start-up takes several seconds: a package with many
// cluster tests should share one cluster through MainWithCluster.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	dir := t.TempDir()
	c, err := StartCluster(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("testenv: start cluster: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Log(c.LogTails(40))
		}
	})
	return c
}

// MainWithCluster is for a package's TestMain: it starts one cluster,
// stores it in *c, runs the tests and stops it. Under -short no cluster is
// started and *c stays nil: integration tests must skip themselves
// (testing.Short()). Tests that share the cluster must use names of their
// own (nodes, namespaces). Each test package is its own process with its
// own cluster on its own free ports, so packages still run in parallel.
//
//	var cluster *testenv.Cluster
//
//	func TestMain(m *testing.M) {
//		os.Exit(testenv.MainWithCluster(m, testenv.ClusterOptions{}, &cluster))
//	}
func MainWithCluster(m *testing.M, opts ClusterOptions, c **Cluster) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "testenv-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	cl, err := StartCluster(context.Background(), dir, opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: start cluster: %v\n(logs kept in %s)\n", err, dir)
		return 1
	}
	*c = cl
	code := m.Run()
	cl.Stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "testenv: cluster logs kept in %s\n%s\n", dir, cl.LogTails(40))
		return code
	}
	_ = os.RemoveAll(dir)
	return code
}

// LogTails returns the last n lines of each process's log.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for _, name := range []string{"etcd", "kube-apiserver", "kwok"} {
		p := filepath.Join(c.Dir, name+".log")
		fmt.Fprintf(&b, "--- last lines of %s ---\n%s\n", p, tailFile(p, n))
	}
	return b.String()
}
