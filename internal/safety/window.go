package safety

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// MaintenanceWindow is a weekly window in a time zone when destructive
// steps may run. End before Start wraps past midnight.
type MaintenanceWindow struct {
	Days  []time.Weekday // empty: every day
	Start time.Duration  // since midnight
	End   time.Duration
	Loc   *time.Location
}

// ParseWindow builds a window from config strings: days like "mon",
// times "22:00", a time zone name ("" = UTC).
func ParseWindow(days []string, start, end, tz string) (MaintenanceWindow, error) {
	w := MaintenanceWindow{Loc: time.UTC}
	if tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return w, fmt.Errorf("time_zone %q: %w", tz, err)
		}
		w.Loc = loc
	}
	names := []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
	for _, d := range days {
		i := slices.Index(names, strings.ToLower(d)[:min(3, len(d))])
		if i < 0 {
			return w, fmt.Errorf("day %q: want mon, tue, … sun", d)
		}
		w.Days = append(w.Days, time.Weekday(i))
	}
	var err error
	if w.Start, err = clock(start); err != nil {
		return w, fmt.Errorf("start: %w", err)
	}
	if w.End, err = clock(end); err != nil {
		return w, fmt.Errorf("end: %w", err)
	}
	if w.Start == w.End {
		return w, fmt.Errorf("start and end are both %s", start)
	}
	return w, nil
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// contains reports whether t is inside the window.
func (w MaintenanceWindow) contains(t time.Time) bool {
	t = t.In(w.Loc)
	midnight := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, w.Loc)
	tod := t.Sub(midnight)
	day := t.Weekday()
	dayOK := func(d time.Weekday) bool { return len(w.Days) == 0 || slices.Contains(w.Days, d) }
	if w.Start < w.End {
		return dayOK(day) && tod >= w.Start && tod < w.End
	}
	// Wraps midnight: the evening part belongs to today, the morning part
	// to the window that started yesterday.
	return (dayOK(day) && tod >= w.Start) || (dayOK((day+6)%7) && tod < w.End)
}

// Open reports whether t is inside any window, and otherwise when the
// next one opens (searched minute by minute over a week).
func Open(ws []MaintenanceWindow, t time.Time) (bool, time.Time) {
	for _, w := range ws {
		if w.contains(t) {
			return true, time.Time{}
		}
	}
	next := t.Truncate(time.Minute)
	for i := 0; i < 8*24*60; i++ {
		next = next.Add(time.Minute)
		for _, w := range ws {
			if w.contains(next) {
				return false, next
			}
		}
	}
	return false, t.Add(24 * time.Hour)
}
