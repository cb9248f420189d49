package bmc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSecretNeverPrinted(t *testing.T) {
	const v = "hunter2-value"
	s := Secret(v)
	tg := Target{Node: "n1", Username: "admin", Password: s}
	var out []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		out = append(out, fmt.Sprintf(f, s), fmt.Sprintf(f, tg), fmt.Sprintf(f, &tg))
	}
	out = append(out, fmt.Sprint(s), fmt.Sprintln(tg), s.String())
	j, _ := json.Marshal(tg)
	y, _ := yaml.Marshal(tg)
	out = append(out, string(j), string(y))
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secret", s, "target", tg)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "secret", s, "target", tg)
	out = append(out, logs.String())
	for _, o := range out {
		if strings.Contains(o, v) || strings.Contains(o, fmt.Sprintf("%x", v)) {
			t.Fatalf("secret leaked: %s", o)
		}
	}
	if s.Reveal() != v {
		t.Fatal("Reveal lost the value")
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := ReadSecret(write("lf", "pw\n")); err != nil || s.Reveal() != "pw" {
		t.Fatalf("LF: %q, %v", s.Reveal(), err)
	}
	if s, err := ReadSecret(write("crlf", "pw\r\n")); err != nil || s.Reveal() != "pw" {
		t.Fatalf("CRLF: %q, %v", s.Reveal(), err)
	}
	if s, err := ReadSecret(write("inner", " p w \n")); err != nil || s.Reveal() != " p w " {
		t.Fatalf("inner spaces: %q, %v", s.Reveal(), err)
	}
	if _, err := ReadSecret(write("empty", "\n")); err == nil {
		t.Fatal("empty secret accepted")
	}
	if _, err := ReadSecret(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}
