package safety

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/testenv"
)

// postAlert sends one alert to a real Alertmanager (POST /api/v2/alerts)
// that ends at endsAt.
func postAlert(t *testing.T, amURL string, lbls map[string]string, endsAt time.Time) {
	t.Helper()
	body, _ := json.Marshal([]map[string]any{{"labels": lbls, "startsAt": time.Now().Add(-time.Minute), "endsAt": endsAt}})
	resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
	}
}

func matcherSets(t *testing.T, sets ...[]string) []labels.Matchers {
	t.Helper()
	var out []labels.Matchers
	for _, set := range sets {
		var ms labels.Matchers
		for _, s := range set {
			m, err := labels.ParseMatcher(s)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		out = append(out, ms)
	}
	return out
}

// TestAlertGateRealAlertmanager: a firing alert matching every matcher of
// a set holds (kind gate_alert, the alert named); one matching only part
// of a set does not; a silenced one does not; the run's own alert does
// not; resolved → allowed; Alertmanager stopped → gate_unreachable.
func TestAlertGateRealAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("needs alertmanager")
	}
	am := testenv.NewAlertmanager(t, "")
	gate, err := NewAlertGate(AlertGateConfig{Name: "block_if_alerts",
		Sets:          matcherSets(t, []string{`alertname="CephHealthWarn"`, `cluster="prod"`}, []string{`alertname=~"Etcd.*"`}),
		Alertmanagers: []AlertmanagerSet{{URLs: []string{am.URL}}}, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	run := &runbooks.Run{ID: "r", Node: "n1", Fingerprint: "0000000000000000"}
	check := func() runbooks.Decision {
		d, err := gate.Check(ctx, run, "drain", nil)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := check(); !d.Allow {
		t.Fatalf("no alerts: %+v", d)
	}
	// Part of the first set only: not enough.
	postAlert(t, am.URL, map[string]string{"alertname": "CephHealthWarn", "cluster": "staging"}, time.Now().Add(time.Hour))
	time.Sleep(300 * time.Millisecond)
	if d := check(); !d.Allow {
		t.Fatalf("an alert matching part of a set held: %+v", d)
	}
	end := time.Now().Add(time.Hour)
	postAlert(t, am.URL, map[string]string{"alertname": "CephHealthWarn", "cluster": "prod"}, end)
	d := waitDecision(t, "held by CephHealthWarn", check, func(d runbooks.Decision) bool { return !d.Allow })
	if d.Kind != KindGateAlert || !strings.HasPrefix(d.Reason, `alert CephHealthWarn {alertname="CephHealthWarn", cluster="prod"}`) ||
		!strings.Contains(d.Reason, `matches block_if_alerts[0] {alertname="CephHealthWarn",cluster="prod"}`) {
		t.Fatalf("hold %+v", d)
	}
	// The run's own alert does not hold it.
	run.Fingerprint = fingerprintOf(t, am, map[string]string{"alertname": "CephHealthWarn", "cluster": "prod"})
	if d := check(); !d.Allow {
		t.Fatalf("the run's own alert held it: %+v", d)
	}
	run.Fingerprint = ""
	// A silenced alert does not hold: a silence is how to override.
	sil, err := am.AddSilence(ctx, []string{`alertname="CephHealthWarn"`}, time.Hour, "known, proceed")
	if err != nil {
		t.Fatal(err)
	}
	waitDecision(t, "the silenced alert lets runs go", check, func(d runbooks.Decision) bool { return d.Allow })
	if err := am.ExpireSilence(ctx, sil); err != nil {
		t.Fatal(err)
	}
	waitDecision(t, "held again once the silence expired", check, func(d runbooks.Decision) bool { return d.Kind == KindGateAlert })
	// Resolved: allowed.
	postAlert(t, am.URL, map[string]string{"alertname": "CephHealthWarn", "cluster": "prod"}, time.Now().Add(-time.Second))
	waitDecision(t, "allowed once the alert resolved", check, func(d runbooks.Decision) bool { return d.Allow })
	// The second set, by regex.
	postAlert(t, am.URL, map[string]string{"alertname": "EtcdMembersDown"}, time.Now().Add(time.Hour))
	d = waitDecision(t, "held by EtcdMembersDown", check, func(d runbooks.Decision) bool { return !d.Allow })
	if d.Kind != KindGateAlert || !strings.Contains(d.Reason, "alert EtcdMembersDown") || !strings.Contains(d.Reason, "block_if_alerts[1]") {
		t.Fatalf("hold %+v", d)
	}
	am.Stop()
	d = check()
	if d.Allow || d.Kind != KindGateUnreachable || !strings.Contains(d.Reason, "Alertmanager could not be asked") {
		t.Fatalf("Alertmanager stopped: %+v", d)
	}
}

// fingerprintOf reads the fingerprint Alertmanager gave the alert with lbls.
func fingerprintOf(t *testing.T, am *testenv.Alertmanager, lbls map[string]string) string {
	t.Helper()
	resp, err := http.Get(am.URL + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []apiAlert
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if len(a.Labels) == len(lbls) && string(a.Labels["cluster"]) == lbls["cluster"] && string(a.Labels["alertname"]) == lbls["alertname"] {
			return a.Fingerprint
		}
	}
	t.Fatalf("no alert %v", lbls)
	return ""
}

// TestAlertGateNeedsAlertmanagers: built without Alertmanagers, it says so.
func TestAlertGateNeedsAlertmanagers(t *testing.T) {
	_, err := NewAlertGate(AlertGateConfig{Name: "gates.block_if_alerts", Sets: matcherSets(t, []string{`a="b"`})})
	if err == nil || !strings.Contains(err.Error(), "gates.block_if_alerts: needs alertmanagers") {
		t.Fatalf("err %v", err)
	}
}
