package safety

import (
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// m builds an API matcher from Alertmanager syntax pieces.
func m(name, op, value string) apiMatcher {
	return apiMatcher{Name: name, Value: value, IsRegex: op == "=~" || op == "!~", IsEqual: ptr(op == "=" || op == "=~")}
}

func sil(id string, ms ...apiMatcher) amSilence {
	return compileSilence(apiSilence{ID: id, Matchers: ms, CreatedBy: "alice", Comment: "c " + id,
		EndsAt: time.Date(2030, 1, 2, 15, 4, 0, 0, time.UTC)})
}

func TestSilenceHolds(t *testing.T) {
	kd := map[string]string{"alertname": "NodeKernelDeadlock", "node": "n1", "severity": "critical"}
	for _, c := range []struct {
		name  string
		sil   amSilence
		alert map[string]string
		node  string
		want  bool
	}{
		{"node equal", sil("a", m("node", "=", "n1")), nil, "n1", true},
		{"node equal, other node", sil("a", m("node", "=", "n1")), nil, "n2", false},
		{"node equal via alert labels", sil("a", m("node", "=", "n1")), kd, "", true},
		{"node and alertname, node only", sil("a", m("node", "=", "n1"), m("alertname", "=", "NodeKernelDeadlock")), nil, "n1", false},
		{"node and alertname, alert", sil("a", m("node", "=", "n1"), m("alertname", "=", "NodeKernelDeadlock")), kd, "n1", true},
		{"alertname", sil("a", m("alertname", "=", "NodeKernelDeadlock")), kd, "n9", true},
		{"alertname, other alert", sil("a", m("alertname", "=", "NodeDiskFull")), kd, "n1", false},
		{"alertname, no alert labels", sil("a", m("alertname", "=", "NodeKernelDeadlock")), nil, "n1", false},
		{"regex anchored", sil("a", m("alertname", "=~", "Node")), kd, "", false},
		{"regex", sil("a", m("alertname", "=~", "Node.*")), kd, "", true},
		{"regex alternation anchored", sil("a", m("node", "=~", "n1|n2")), nil, "n12", false},
		{"regex alternation", sil("a", m("node", "=~", "n1|n2")), nil, "n2", true},
		{"not equal", sil("a", m("alertname", "=~", ".+"), m("severity", "!=", "critical")), kd, "", false},
		{"not equal, absent label", sil("a", m("alertname", "=~", ".+"), m("team", "!=", "db")), kd, "", true},
		{"not regex", sil("a", m("node", "=~", ".+"), m("node", "!~", "n[0-9]")), nil, "n1", false},
		{"not regex, no match", sil("a", m("node", "=~", ".+"), m("node", "!~", "n[0-9]")), nil, "m1", true},
		{"negative matcher on another label does not pause all", sil("a", m("severity", "!=", "critical"), m("env", "=", "prod")), nil, "n1", false},
		{"global pause", sil("a", m("node_healer", "=", "paused")), kd, "n1", true},
		{"global pause, no node", sil("a", m("node_healer", "=", "paused")), nil, "", true},
		{"global pause regex", sil("a", m("node_healer", "=~", "paused|frozen")), nil, "", true},
		{"other node_healer value", sil("a", m("node_healer", "=", "resumed")), nil, "n1", false},
		{"pause and node are separate sets", sil("a", m("node_healer", "=", "paused"), m("node", "=", "n1")), nil, "n1", false},
		{"no matchers", sil("a"), kd, "n1", false},
		{"uncompilable regex holds", sil("a", m("node", "=~", "(")), nil, "n1", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := silenceHolds(&c.sil, c.alert, c.node); got != c.want {
				t.Errorf("silenceHolds(%v, %v, %q) = %v, want %v", c.sil.matchers, c.alert, c.node, got, c.want)
			}
		})
	}
}

func TestCompileSilenceIsEqualAbsent(t *testing.T) {
	// Alertmanager before 0.22 has no isEqual: equality.
	s := compileSilence(apiSilence{ID: "x", Matchers: []apiMatcher{
		{Name: "node", Value: "n1"},
		{Name: "rack", Value: "r.*", IsRegex: true},
	}})
	if got := s.matchers.String(); got != `{node="n1",rack=~"r.*"}` {
		t.Fatalf("matchers = %s", got)
	}
}

func TestEvaluateSilences(t *testing.T) {
	now := time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC)
	early := sil("early", m("node", "=", "n1"))
	early.endsAt = now.Add(time.Hour)
	late := sil("late", m("node_healer", "=", "paused"))
	late.endsAt = now.Add(3 * time.Hour)
	other := sil("other", m("node", "=", "n2"))
	other.endsAt = now.Add(48 * time.Hour)

	if h := evaluateSilences(nil, nil, "n1", now); h.Held || h.Reason != "" || !h.Until.IsZero() {
		t.Fatalf("no silences: %+v", h)
	}
	// The same silence from both members of an HA pair counts once.
	h := evaluateSilences([]amSilence{early, other, late, early, late}, nil, "n1", now)
	if !h.Held || !h.Until.Equal(late.endsAt) {
		t.Fatalf("held %v until %s, want until %s", h.Held, h.Until, late.endsAt)
	}
	want := `silence late by alice: c late (matchers node_healer="paused") until 13:00 UTC (and 1 more)`
	if h.Reason != want {
		t.Fatalf("reason\n got %s\nwant %s", h.Reason, want)
	}
	h = evaluateSilences([]amSilence{early, other}, nil, "n2", now)
	if want := `silence other by alice: c other (matchers node="n2") until 2030-01-04 10:00 UTC`; h.Reason != want {
		t.Fatalf("reason\n got %s\nwant %s", h.Reason, want)
	}
}

func TestDescribe(t *testing.T) {
	now := time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC)
	s := compileSilence(apiSilence{ID: "x", Comment: "  multi\nline   " + strings.Repeat("y", 300),
		Matchers: []apiMatcher{m("rack", "!~", "r1|r2"), m("alertname", "=", "A")}, EndsAt: now.Add(2 * time.Hour)})
	got := s.describe(now)
	if !strings.HasPrefix(got, "silence x: multi line yyy") || strings.Contains(got, " by ") {
		t.Errorf("describe = %q", got)
	}
	if !strings.Contains(got, "…") || !strings.HasSuffix(got, `(matchers alertname="A", rack!~"r1|r2") until 12:00 UTC`) {
		t.Errorf("describe = %q", got)
	}
	bad := sil("b", m("node", "=~", "("))
	if got := bad.describe(now); !strings.Contains(got, "cannot evaluate") {
		t.Errorf("describe of an uncompilable silence = %q", got)
	}
}
