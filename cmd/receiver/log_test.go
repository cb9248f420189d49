package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

const goodConfig = "../../internal/config/testdata/good.yml"

// The log flags belong to the app: before or after the command name, for
// every command.
func TestLogFlagsAppWide(t *testing.T) {
	for _, args := range [][]string{
		{"--log.level=debug", "check-config", goodConfig},
		{"check-config", "--log.level=debug", goodConfig},
	} {
		code, out, errs := runCLI(args...)
		if code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("%v: exit %d %q %q", args, code, out, errs)
		}
		if !strings.Contains(errs, `level=DEBUG`) || !strings.Contains(errs, `msg="running command" command=check-config`) {
			t.Errorf("%v: no debug record on stderr: %q", args, errs)
		}
	}
	code, _, errs := runCLI("--log.level=debug", "--log.format=json", "check-config", goodConfig)
	var rec map[string]any
	if err := json.Unmarshal([]byte(errs), &rec); code != 0 || err != nil {
		t.Fatalf("json: exit %d, %v: %q", code, err, errs)
	}
	if rec["level"] != "DEBUG" || rec["msg"] != "running command" || rec["command"] != "check-config" || rec["goversion"] == "" {
		t.Errorf("json record %v", rec)
	}
	// The default level is info: no debug record.
	if code, _, errs := runCLI("check-config", goodConfig); code != 0 || errs != "" {
		t.Errorf("default level: exit %d, stderr %q", code, errs)
	}
	for _, bad := range []string{"--log.level=verbose", "--log.format=text"} {
		if code, _, errs := runCLI(bad, "check-config", goodConfig); code != 2 || !strings.Contains(errs, "unrecognized log") {
			t.Errorf("%s: exit %d %q", bad, code, errs)
		}
	}
	// serve's flags as the demo passes them (after the command name).
	if code, _, errs := runCLI("serve", "--log.level=debug", "--log.format=json", "--config.file=/nonexistent.yml"); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("serve --log.level: exit %d %q", code, errs)
	}
}

// klogRecords starts serve's logging (serve stops at the missing config
// file, after its logger is set up) and logs through klog as client-go
// does. It returns what reached the configured writer and what klog wrote
// to stderr.
func klogRecords(t *testing.T, o logOptions) (string, string) {
	t.Helper()
	lw := &syncWriter{w: &bytes.Buffer{}}
	if err := runServe(context.Background(), serveOptions{ConfigFile: "/nonexistent.yml", Log: o}, lw); err == nil {
		t.Fatal("serve with no config file returned nil")
	}
	t.Cleanup(func() { redirectKlog(newLogger(logOptions{}, os.Stderr)) })

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	klog.InfoS("Caches populated", "type", "*v1.Node", "reflector", "informers/factory.go:160")
	klog.ErrorS(errors.New("connection refused"), "Failed to watch", "node", "n1")
	klog.V(4).InfoS("Too verbose for klog's default verbosity")
	klog.Warningf("plain klog %s", "warning")
	klog.Flush()
	os.Stderr = stderr
	w.Close()
	direct, _ := io.ReadAll(r)
	return lw.String(), string(direct)
}

func TestKlogToStructuredLog(t *testing.T) {
	got, direct := klogRecords(t, logOptions{Format: "logfmt", Level: "info"})
	if direct != "" {
		t.Errorf("klog also wrote to stderr: %q", direct)
	}
	for _, want := range []string{
		`level=INFO source=log_test.go:`,
		`msg="Caches populated" type=*v1.Node reflector=informers/factory.go:160`,
		`level=ERROR source=log_test.go:`,
		`msg="Failed to watch" err="connection refused" node=n1`,
		`msg="plain klog warning"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("logfmt: no %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "Too verbose") {
		t.Errorf("klog.V(4) logged:\n%s", got)
	}

	got, direct = klogRecords(t, logOptions{Format: "json", Level: "info"})
	if direct != "" {
		t.Errorf("klog also wrote to stderr: %q", direct)
	}
	var recs []map[string]any
	for line := range strings.Lines(got) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON record: %q: %v", line, err)
		}
		recs = append(recs, rec)
	}
	if len(recs) != 3 {
		t.Fatalf("want 3 records, got\n%s", got)
	}
	if r := recs[0]; r["level"] != "INFO" || r["msg"] != "Caches populated" || r["type"] != "*v1.Node" || r["reflector"] != "informers/factory.go:160" {
		t.Errorf("InfoS record %v", r)
	}
	if r := recs[1]; r["level"] != "ERROR" || r["msg"] != "Failed to watch" || r["err"] != "connection refused" || r["node"] != "n1" {
		t.Errorf("ErrorS record %v", r)
	}

	// The level applies to klog's records too.
	got, _ = klogRecords(t, logOptions{Format: "logfmt", Level: "error"})
	if strings.Contains(got, "Caches populated") || !strings.Contains(got, `msg="Failed to watch"`) {
		t.Errorf("level error:\n%s", got)
	}
}
