package safety

import (
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

func TestMaintenanceWindows(t *testing.T) {
	weekday, err := ParseWindow([]string{"mon", "tue", "wed", "thu", "fri"}, "09:00", "17:00", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	night, err := ParseWindow([]string{"sat"}, "22:00", "04:00", "")
	if err != nil {
		t.Fatal(err)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	cases := []struct {
		w    MaintenanceWindow
		at   time.Time
		open bool
		next time.Time
	}{
		// Thursday 2026-11-26 10:00 Berlin: open.
		{weekday, time.Date(2026, 11, 26, 10, 0, 0, 0, berlin), true, time.Time{}},
		// 08:00 UTC is 09:00 Berlin (CET): open; 07:59 UTC is not, next 08:00 UTC.
		{weekday, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC), true, time.Time{}},
		{weekday, time.Date(2026, 11, 26, 7, 59, 0, 0, time.UTC), false, time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)},
		// Saturday 10:00 Berlin: closed until Monday 09:00.
		{weekday, time.Date(2026, 11, 28, 10, 0, 0, 0, berlin), false, time.Date(2026, 11, 30, 9, 0, 0, 0, berlin)},
		// Wrapping midnight: Saturday 23:00 and Sunday 03:00 open, Sunday 05:00 closed.
		{night, time.Date(2026, 11, 28, 23, 0, 0, 0, time.UTC), true, time.Time{}},
		{night, time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC), true, time.Time{}},
		{night, time.Date(2026, 11, 29, 5, 0, 0, 0, time.UTC), false, time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)},
		// Friday 03:00 is not in Saturday's night window (that starts Saturday 22:00).
		{night, time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), false, time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC)},
	}
	for i, tc := range cases {
		open, next := Open([]MaintenanceWindow{tc.w}, tc.at)
		if open != tc.open || !next.Equal(tc.next) {
			t.Errorf("case %d (%s): open %v next %s; want %v %s", i, tc.at, open, next, tc.open, tc.next)
		}
	}
	for _, bad := range [][4]string{{"funday", "09:00", "17:00", ""}, {"", "9am", "17:00", ""}, {"", "09:00", "09:00", ""}, {"", "09:00", "17:00", "Mars/Olympus"}} {
		var days []string
		if bad[0] != "" {
			days = []string{bad[0]}
		}
		if _, err := ParseWindow(days, bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("accepted %v", bad)
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
	g := &Gate{}
	cp := func(name string, ready bool) NodeInfo { return NodeInfo{Name: name, Ready: ready, ControlPlane: true} }
	run := &runbooks.Run{Node: "cp1"}
	for _, tc := range []struct {
		nodes []NodeInfo
		allow bool
	}{
		{[]NodeInfo{cp("cp1", true), cp("cp2", true), cp("cp3", true)}, true},   // 2 of 3 left: quorum
		{[]NodeInfo{cp("cp1", true), cp("cp2", false), cp("cp3", true)}, false}, // 1 of 3 left
		{[]NodeInfo{cp("cp1", true)}, false},                                    // single control plane
		{[]NodeInfo{cp("cp1", false), cp("cp2", true), cp("cp3", true), cp("cp4", true), cp("cp5", true)}, true},
		{[]NodeInfo{cp("cp1", true), cp("cp2", false), cp("cp3", false), cp("cp4", true), cp("cp5", true)}, false},
	} {
		if d := g.quorum(run, tc.nodes); d.Allow != tc.allow {
			t.Errorf("%v: allow %v (%s)", tc.nodes, d.Allow, d.Reason)
		}
	}
}
