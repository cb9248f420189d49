package safety

import (
	"fmt"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// window decodes a maintenance window as the config file writes it.
func window(t *testing.T, y string) MaintenanceWindow {
	t.Helper()
	var w MaintenanceWindow
	if err := yaml.Unmarshal([]byte(y), &w); err != nil {
		t.Fatalf("%s: %v", y, err)
	}
	return w
}

func TestMaintenanceWindows(t *testing.T) {
	weekday := window(t, `{weekdays: ["monday:friday"], times: [{start_time: "09:00", end_time: "17:00"}], location: Europe/Berlin}`)
	// Saturday 22:00 to Sunday 04:00 UTC: a time range cannot wrap midnight.
	night := []MaintenanceWindow{
		window(t, `{weekdays: [saturday], times: [{start_time: "22:00", end_time: "24:00"}]}`),
		window(t, `{weekdays: [sunday], times: [{start_time: "00:00", end_time: "04:00"}]}`),
	}
	december := window(t, `{months: [december], days_of_month: ["24:26"], location: Europe/Berlin}`)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	cases := []struct {
		ws   []MaintenanceWindow
		at   time.Time
		open bool
		next time.Time
	}{
		// Thursday 2026-11-26 10:00 Berlin: open.
		{[]MaintenanceWindow{weekday}, time.Date(2026, 11, 26, 10, 0, 0, 0, berlin), true, time.Time{}},
		// 08:00 UTC is 09:00 Berlin (CET): open; 07:59 UTC is not, next 08:00 UTC.
		{[]MaintenanceWindow{weekday}, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC), true, time.Time{}},
		{[]MaintenanceWindow{weekday}, time.Date(2026, 11, 26, 7, 59, 30, 0, time.UTC), false, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)},
		// Saturday 10:00 Berlin: closed until Monday 09:00.
		{[]MaintenanceWindow{weekday}, time.Date(2026, 11, 28, 10, 0, 0, 0, berlin), false, time.Date(2026, 11, 30, 9, 0, 0, 0, berlin)},
		// Across midnight: Saturday 23:00 and Sunday 03:00 open, Sunday 05:00 closed.
		{night, time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), true, time.Time{}},
		{night, time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC), true, time.Time{}},
		{night, time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC), false, time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)},
		// Friday 03:00 is not in the night window (that starts Saturday 22:00).
		{night, time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), false, time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC)},
		// No location: UTC, whatever t's zone (Saturday 23:30 Berlin is 22:30 UTC).
		{night, time.Date(2026, 11, 28, 23, 30, 0, 0, berlin), true, time.Time{}},
		// Date fields: a month away.
		{[]MaintenanceWindow{december}, time.Date(2026, 11, 26, 10, 0, 0, 0, berlin), false, time.Date(2026, 12, 24, 0, 0, 0, 0, berlin)},
		// Never again: look again in a day.
		{[]MaintenanceWindow{window(t, `{years: ["2020"]}`)}, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), false, time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)},
	}
	for i, tc := range cases {
		open, next := Open(tc.ws, tc.at)
		if open != tc.open || !next.Equal(tc.next) {
			t.Errorf("case %d (%s): open %v next %s; want %v %s", i, tc.at, open, next, tc.open, tc.next)
		}
	}
}

// TestMaintenanceWindowsDST: windows are wall-clock times on the days the
// clocks change, not time elapsed since midnight.
func TestMaintenanceWindowsDST(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	berlin, _ := time.LoadLocation("Europe/Berlin")
	early := window(t, `{times: [{start_time: "04:00", end_time: "05:00"}], location: America/New_York}`)
	skipped := window(t, `{times: [{start_time: "02:30", end_time: "03:30"}], location: Europe/Berlin}`)
	cases := []struct {
		w    MaintenanceWindow
		at   time.Time
		open bool
		next time.Time
	}{
		// 2026-03-08, New York springs forward 02:00 -> 03:00: 04:00 local
		// is only three hours after midnight.
		{early, time.Date(2026, 3, 8, 4, 30, 0, 0, ny), true, time.Time{}},
		{early, time.Date(2026, 3, 8, 5, 30, 0, 0, ny), false, time.Date(2026, 3, 9, 4, 0, 0, 0, ny)},
		{early, time.Date(2026, 3, 8, 0, 0, 0, 0, ny), false, time.Date(2026, 3, 8, 4, 0, 0, 0, ny)},
		// 2026-11-01, New York falls back 02:00 -> 01:00: 04:00 local is
		// five hours after midnight.
		{early, time.Date(2026, 11, 1, 3, 30, 0, 0, ny), false, time.Date(2026, 11, 1, 4, 0, 0, 0, ny)},
		{early, time.Date(2026, 11, 1, 4, 30, 0, 0, ny), true, time.Time{}},
		// 2026-03-29, Berlin skips 02:00-03:00: the window's 02:30 does not
		// happen; the rest of it, 03:00-03:30 CEST, does.
		{skipped, time.Date(2026, 3, 29, 0, 0, 0, 0, berlin), false, time.Date(2026, 3, 29, 3, 0, 0, 0, berlin)},
		{skipped, time.Date(2026, 3, 29, 3, 15, 0, 0, berlin), true, time.Time{}},
		{skipped, time.Date(2026, 3, 29, 3, 30, 0, 0, berlin), false, time.Date(2026, 3, 30, 2, 30, 0, 0, berlin)},
	}
	for i, tc := range cases {
		open, next := Open([]MaintenanceWindow{tc.w}, tc.at)
		if open != tc.open || !next.Equal(tc.next) {
			t.Errorf("case %d (%s): open %v next %s; want %v %s", i, tc.at, open, next.In(tc.at.Location()), tc.open, tc.next)
		}
	}
}

func TestBreakerThreshold(t *testing.T) {
	b := &Breaker{g: &Gate{L: Limits{BreakerPercent: 20, BreakerMinNodes: 3}}}
	for _, tc := range []struct {
		unhealthy, total int
		over             bool
	}{{2, 10, false}, {3, 10, true}, {20, 100, false}, {21, 100, true}, {2, 2, false}, {3, 3, true}} {
		if got := b.over(tc.unhealthy, tc.total); got != tc.over {
			t.Errorf("%d of %d: over=%v want %v", tc.unhealthy, tc.total, got, tc.over)
		}
	}
	n := &Breaker{g: &Gate{L: Limits{BreakerNodes: 5, BreakerMinNodes: 1}}}
	if n.over(5, 1000) || !n.over(6, 1000) {
		t.Error("count threshold")
	}
}

func TestQuorum(t *testing.T) {
	cp := func(name string, ready bool) NodeInfo { return NodeInfo{Name: name, Ready: ready, ControlPlane: true} }
	run := &runbooks.Run{Node: "cp1"}
	for _, tc := range []struct {
		nodes []NodeInfo
		busy  []string // control-plane nodes other runs were admitted for
		allow bool
	}{
		{[]NodeInfo{cp("cp1", true), cp("cp2", true), cp("cp3", true)}, nil, true},   // 2 of 3 left: quorum
		{[]NodeInfo{cp("cp1", true), cp("cp2", false), cp("cp3", true)}, nil, false}, // 1 of 3 left
		{[]NodeInfo{cp("cp1", true)}, nil, false},                                    // single control plane
		{[]NodeInfo{cp("cp1", false), cp("cp2", true), cp("cp3", true), cp("cp4", true), cp("cp5", true)}, nil, true},
		{[]NodeInfo{cp("cp1", true), cp("cp2", false), cp("cp3", false), cp("cp4", true), cp("cp5", true)}, nil, false},
		// A control-plane run already admitted counts as a member down,
		// even while its node still reports Ready.
		{[]NodeInfo{cp("cp1", true), cp("cp2", true), cp("cp3", true)}, []string{"cp2"}, false},
		{[]NodeInfo{cp("cp1", true), cp("cp2", true), cp("cp3", true), cp("cp4", true), cp("cp5", true)}, []string{"cp2"}, true},
		{[]NodeInfo{cp("cp1", true), cp("cp2", true), cp("cp3", false), cp("cp4", true), cp("cp5", true)}, []string{"cp2"}, false},
	} {
		busy := map[string]bool{}
		for _, b := range tc.busy {
			busy[b] = true
		}
		if d := quorumOf(run, tc.nodes, busy); d.Allow != tc.allow {
			t.Errorf("%v busy %v: allow %v (%s)", tc.nodes, tc.busy, d.Allow, d.Reason)
		}
	}
}

func TestControlPlaneCap(t *testing.T) {
	cps := func(n int) []NodeInfo {
		out := make([]NodeInfo, n)
		for i := range out {
			out[i] = NodeInfo{Name: fmt.Sprint("cp", i), ControlPlane: true, Ready: true}
		}
		return out
	}
	for _, tc := range []struct{ cfg, nodes, want int }{
		{1, 3, 1}, {3, 3, 1}, // 3 members tolerate one down
		{3, 5, 2}, {1, 5, 1}, // 5 tolerate two, never more than configured
		{2, 7, 2}, {5, 7, 3},
		{1, 1, 1}, // the quorum check refuses a lone control plane anyway
	} {
		g := &Gate{L: Limits{MaxControlPlaneRuns: tc.cfg}}
		if got := g.controlPlaneCap(cps(tc.nodes)); got != tc.want {
			t.Errorf("cap %d with %d control-plane nodes: got %d, want %d", tc.cfg, tc.nodes, got, tc.want)
		}
	}
}
