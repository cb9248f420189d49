package testenv

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts alertmanager")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	am := NewAlertmanager(t, "")

	id, err := am.AddSilence(ctx, []string{`node="n1"`, `alertname=~"Node.*"`}, time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := silenceState(t, am, id); got != "active" {
		t.Fatalf("state after AddSilence = %q, want active", got)
	}

	// Silences survive a restart on the same port.
	if err := am.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := silenceState(t, am, id); got != "active" {
		t.Fatalf("state after Restart = %q, want active", got)
	}

	if err := am.ExpireSilence(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := silenceState(t, am, id); got != "expired" {
		t.Fatalf("state after ExpireSilence = %q, want expired", got)
	}

	if _, err := am.AddSilence(ctx, []string{`node=`}, time.Hour, "bad"); err == nil {
		t.Fatal("AddSilence with a matcher that matches everything: want an error from Alertmanager")
	}

	am.Stop()
	am.Stop() // idempotent
	if _, err := http.Get(am.URL + "/-/ready"); err == nil {
		t.Fatal("Alertmanager still answers after Stop")
	}
}

func silenceState(t *testing.T, am *Alertmanager, id string) string {
	t.Helper()
	resp, err := http.Get(am.URL + "/api/v2/silence/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Status struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Status.State
}
