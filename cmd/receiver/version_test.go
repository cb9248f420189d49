package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"
)

// setVersion sets what -ldflags -X would, for the length of the test.
func setVersion(t *testing.T, v, rev, branch string) {
	t.Helper()
	old := [...]string{version.Version, version.Revision, version.Branch}
	version.Version, version.Revision, version.Branch = v, rev, branch
	t.Cleanup(func() { version.Version, version.Revision, version.Branch = old[0], old[1], old[2] })
}

func TestVersionFlag(t *testing.T) {
	setVersion(t, "v1.2.3-test", "0123abcd", "feature/x")
	code, out, errs := runCLI("--version")
	// kingpin writes the version where it writes usage: stderr here.
	if code != 0 || out != "" {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, want := range []string{
		"receiver, version v1.2.3-test (branch: feature/x, revision: 0123abcd)",
		"go version:       " + runtime.Version(),
		"platform:         " + runtime.GOOS + "/" + runtime.GOARCH,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("--version output lacks %q:\n%s", want, errs)
		}
	}
	// Nothing runs after it: not serve (the default command) either.
	if strings.Contains(errs, "node-healer.yml") || strings.Contains(errs, "level=") {
		t.Errorf("--version ran a command:\n%s", errs)
	}
}

// buildInfoLabels gathers reg and returns node_healer_build_info's labels.
func buildInfoLabels(t *testing.T, reg *prometheus.Registry) map[string]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "node_healer_build_info" {
			continue
		}
		if len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Fatalf("node_healer_build_info: %v", mf)
		}
		labels := map[string]string{}
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		return labels
	}
	t.Fatal("no node_healer_build_info")
	return nil
}

func TestBuildInfoMetric(t *testing.T) {
	setVersion(t, "v1.2.3-test", "0123abcd", "main")
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo())
	got := buildInfoLabels(t, reg)
	for k, want := range map[string]string{"version": "v1.2.3-test", "revision": "0123abcd", "branch": "main",
		"goversion": runtime.Version(), "goos": runtime.GOOS, "goarch": runtime.GOARCH} {
		if got[k] != want {
			t.Errorf("build_info %s=%q, want %q (all: %v)", k, got[k], want, got)
		}
	}
}

// TestBuildInfoServed scrapes a running receiver's /metrics.
func TestBuildInfoServed(t *testing.T) {
	rec := startReceiver(t)
	if !rec.metric(t, `node_healer_build_info{branch="`) {
		t.Error("/metrics has no node_healer_build_info")
	}
	if !rec.metric(t, `goversion="`+runtime.Version()+`"`) {
		t.Error("node_healer_build_info has no goversion label")
	}
}

// TestMakeBuildSetsVersion builds the binaries with the Makefile's build
// target and runs `receiver --version`: the -ldflags -X wiring must reach
// github.com/prometheus/common/version.
func TestMakeBuildSetsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries with make (runs without -short)")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	bin := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "build", "BIN="+bin, "VERSION=v0.0.0-ldflags.1", "BUILD_USER=tester@ci")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "receiver"), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("receiver --version: %v\n%s", err, out)
	}
	// The revision is the Makefile's `git rev-parse HEAD` (unknown outside
	// a git checkout), not Go's own VCS stamp.
	rev := "unknown"
	git := exec.Command("git", "rev-parse", "HEAD")
	git.Dir = "../.."
	if b, err := git.Output(); err == nil {
		rev = strings.TrimSpace(string(b))
	}
	for _, want := range []string{"receiver, version v0.0.0-ldflags.1 (branch: ", "revision: " + rev + ")",
		"build user:       tester@ci", "go version:       go"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("receiver --version lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "build date:       \n") {
		t.Errorf("no build date:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(bin, "bmc-sim")); err != nil {
		t.Errorf("make build did not build every command into BIN: %v", err)
	}
}
