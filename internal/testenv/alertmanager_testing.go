package testenv

import (
	"context"
	"testing"
)

// NewAlertmanager starts an Alertmanager for one test (see
// StartAlertmanager; configYAML may be empty) and stops it when the test
// ends, logging the tail of its log if the test failed.
func NewAlertmanager(t testing.TB, configYAML string) *Alertmanager {
	t.Helper()
	return NewAlertmanagerWith(t, AlertmanagerOptions{Config: configYAML})
}

// NewAlertmanagerWith is NewAlertmanager with options (TLS, basic auth;
// see StartAlertmanagerWith).
func NewAlertmanagerWith(t testing.TB, o AlertmanagerOptions) *Alertmanager {
	t.Helper()
	am, err := StartAlertmanagerWith(context.Background(), t.TempDir(), o)
	if err != nil {
		t.Fatalf("testenv: start alertmanager: %v", err)
	}
	t.Cleanup(func() {
		am.Stop()
		if t.Failed() {
			t.Logf("--- alertmanager log ---\n%s", am.LogTail(40))
		}
	})
	return am
}
