package handlers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"
)

// TestPayloadMatchesAlertmanager: what Alertmanager's own message type
// marshals (as its webhook notifier does, with encoding/json), our lean
// decoder reads field for field.
func TestPayloadMatchesAlertmanager(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 123456789, time.UTC)
	var alerts template.Alerts
	for i := range 5 {
		a := template.Alert{
			Status:       []string{"firing", "resolved"}[i%2],
			Labels:       template.KV{"alertname": "NodeKernelDeadlock", "node": fmt.Sprintf("n%d", i), "ünïcode": "é\"\\\n<>&"},
			Annotations:  template.KV{"summary": "kernel deadlock", "runbook_url": "https://example.org/x?a=1&b=2"},
			StartsAt:     start.Add(time.Duration(i) * time.Second),
			GeneratorURL: "http://prometheus:9090/graph?g0.expr=up",
			Fingerprint:  fmt.Sprintf("%016x", i),
		}
		if a.Status == "resolved" {
			a.EndsAt = start.Add(time.Minute).In(time.FixedZone("CET", 3600))
		}
		alerts = append(alerts, a)
	}
	msg := &webhook.Message{
		Data: &template.Data{Receiver: "node-healer", Status: "firing", Alerts: alerts,
			GroupLabels: template.KV{"alertname": "NodeKernelDeadlock"}, CommonLabels: template.KV{"alertname": "NodeKernelDeadlock"},
			CommonAnnotations: template.KV{}, ExternalURL: "http://alertmanager:9093"},
		Version: "4", GroupKey: `{}:{alertname="NodeKernelDeadlock"}`, TruncatedAlerts: 3,
	}
	body, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodePayload(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != "4" || len(got.Alerts) != len(alerts) {
		t.Fatalf("version %q, %d alerts; want \"4\", %d", got.Version, len(got.Alerts), len(alerts))
	}
	for i, want := range alerts {
		g := got.Alerts[i]
		if g.Status != want.Status || g.Fingerprint != want.Fingerprint || !g.StartsAt.Equal(want.StartsAt) || !g.EndsAt.Equal(want.EndsAt) {
			t.Errorf("alert %d: got %+v, want %+v", i, g, want)
		}
		if len(g.Labels) != len(want.Labels) {
			t.Errorf("alert %d: labels %v, want %v", i, g.Labels, want.Labels)
		}
		for k, v := range want.Labels {
			if g.Labels[k] != v {
				t.Errorf("alert %d: label %q = %q, want %q", i, k, g.Labels[k], v)
			}
		}
	}
}

// TestPayloadLeniency: the decoder takes what encoding/json took.
func TestPayloadLeniency(t *testing.T) {
	for name, body := range map[string]string{
		"repeated member, last wins": `{"version":"3","version":"4","alerts":[{"status":"firing","fingerprint":"a"}]}`,
		"member names in other case": `{"Version":"4","ALERTS":[{"Status":"firing","Fingerprint":"a"}]}`,
		"invalid UTF-8 in a label":   "{\"version\":\"4\",\"alerts\":[{\"status\":\"firing\",\"fingerprint\":\"a\",\"labels\":{\"x\":\"\xff\"}}]}",
		"unknown members":            `{"version":"4","future":{"a":[1,2]},"alerts":[{"status":"firing","fingerprint":"a","silencedBy":[]}]}`,
	} {
		p, err := decodePayload([]byte(body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Version != "4" || len(p.Alerts) != 1 || p.Alerts[0].Status != "firing" || p.Alerts[0].Fingerprint != "a" {
			t.Errorf("%s: decoded %+v", name, p)
		}
	}
	for _, body := range []string{`{"version":"4","alerts":[`, `hello`, `{"version":4}`, `{"alerts":[{"startsAt":"yesterday"}]}`} {
		if _, err := decodePayload([]byte(body)); err == nil {
			t.Errorf("%s: decoded without error", body)
		}
	}
}

// BenchmarkDecode100Alerts: Alertmanager's 100-alert payload decoded
// into Alertmanager's own type with encoding/json (before) and into ours
// (after); "lean-half-resolved": bench/scale's load payload, 50 of its
// alerts resolved.
//
//	go test -run '^$' -bench Decode100Alerts ./internal/handlers/
func BenchmarkDecode100Alerts(b *testing.B) {
	body := []byte(benchPayload(1, 100))
	b.Run("encoding-json-webhook.Message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m webhook.Message
			if err := json.Unmarshal(body, &m); err != nil || len(m.Alerts) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("lean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := decodePayload(body)
			if err != nil || len(p.Alerts) != 100 {
				b.Fatal(err)
			}
		}
	})
	resent := []byte(resentPayload()) // half of them resolved
	b.Run("lean-half-resolved", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := decodePayload(resent)
			if err != nil || len(p.Alerts) != 100 {
				b.Fatal(err)
			}
		}
	})
}

func TestReadBody(t *testing.T) {
	for _, c := range []struct {
		body   string
		length int64
		ok     bool
	}{
		{"hello", 5, true}, {"hello", -1, true}, {"hello", 0, true}, {"hello", 9, false}, {"hello", 3, true},
	} {
		got, err := readBody(strings.NewReader(c.body), c.length, 1<<20)
		if c.ok && (err != nil || string(got) != c.body) {
			t.Errorf("body %q, length %d: %q, %v", c.body, c.length, got, err)
		}
		if !c.ok && err == nil {
			t.Errorf("body %q, length %d: no error for a short body", c.body, c.length)
		}
	}
}
