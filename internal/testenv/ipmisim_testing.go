package testenv

import (
	"path/filepath"
	"testing"
)

// StartIPMISimT starts an IPMISim for t in its own folder under t's temp
// dir; it is stopped at cleanup, and its events are logged if t failed.
func StartIPMISimT(t testing.TB, o IPMISimOptions) *IPMISim {
	t.Helper()
	s, err := StartIPMISim(filepath.Join(t.TempDir(), "ipmi-"+o.Name), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ipmi_sim %s events: %q", o.Name, s.Events())
		}
		s.Stop()
	})
	return s
}
