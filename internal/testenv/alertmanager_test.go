package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"strings"
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

// TestAlertmanagerWeb: TLS from a TestCA and basic auth through
// Alertmanager's --web.config.file; testenv's own calls log in.
func TestAlertmanagerWeb(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts alertmanager")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca, err := NewTestCA(t.TempDir(), "am")
	if err != nil {
		t.Fatal(err)
	}
	am := NewAlertmanagerWith(t, AlertmanagerOptions{Web: &AlertmanagerWeb{CA: ca, Users: map[string]string{"b": "pw-b", "a": "pw-a"}}})
	if !strings.HasPrefix(am.URL, "https://127.0.0.1:") {
		t.Fatalf("URL %s", am.URL)
	}
	if _, err := am.AddSilence(ctx, []string{`node="n1"`}, time.Hour, "web"); err != nil {
		t.Fatal(err)
	}
	// Plain HTTP is refused, and so is TLS without credentials.
	if resp, err := http.Get(strings.Replace(am.URL, "https://", "http://", 1) + "/-/ready"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200")
		}
	}
	pool := x509.NewCertPool()
	pemBytes, err := os.ReadFile(ca.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("CA: %v", err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, tc := range []struct {
		user, pw string
		want     int
	}{{"", "", 401}, {"a", "wrong", 401}, {"b", "pw-b", 200}, {"a", "pw-a", 200}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, am.URL+"/api/v2/silences", nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pw)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s/%s: %s, want %d", tc.user, tc.pw, resp.Status, tc.want)
		}
	}
}
