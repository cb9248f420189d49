package safety

import (
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
)

// MaintenanceWindow is an Alertmanager time interval (the entries of
// Alertmanager's time_intervals: times, weekdays, days_of_month, months,
// years, location) during which destructive steps may run. Times are wall
// clock in the window's location, UTC when it has none; a time range
// cannot wrap midnight (write two windows, or end at "24:00").
type MaintenanceWindow = timeinterval.TimeInterval

// horizon bounds the search for the next opening: a window that does not
// open within it (e.g. years in the past) reports no next time.
const horizon = 2 * 366 * 24 * time.Hour

// Open reports whether t is inside any window, and otherwise when the
// next one opens (to the minute). If none opens within two years, next is
// a day after t, so that the caller looks again then.
func Open(ws []MaintenanceWindow, t time.Time) (bool, time.Time) {
	for _, w := range ws {
		if contains(w, t) {
			return true, time.Time{}
		}
	}
	var next time.Time
	for _, w := range ws {
		if n, ok := nextOpen(w, t, t.Add(horizon)); ok && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	if next.IsZero() {
		return false, t.Add(24 * time.Hour)
	}
	return false, next
}

// contains is w.ContainsTime with Alertmanager's documented default
// location, UTC, instead of t's own.
func contains(w MaintenanceWindow, t time.Time) bool {
	if w.Location == nil {
		t = t.UTC()
	}
	return w.ContainsTime(t)
}

// nextOpen finds the first minute after t, before limit, inside w. It
// walks w's local days, skipping days the window's date fields rule out,
// and steps minute by minute through the others: a window opens on a
// minute boundary, and stepping real minutes sees every wall-clock minute
// a daylight-saving change leaves (a 02:30 start on a day that skips
// 02:00–03:00 opens at 03:00).
func nextOpen(w MaintenanceWindow, t, limit time.Time) (time.Time, bool) {
	loc := time.UTC
	if w.Location != nil {
		loc = w.Location.Location
	}
	day := w
	day.Times = nil // the date fields only
	cur := t.Truncate(time.Minute).Add(time.Minute)
	for cur.Before(limit) {
		l := cur.In(loc)
		end := time.Date(l.Year(), l.Month(), l.Day()+1, 0, 0, 0, 0, loc)
		if !end.After(cur) { // a zone whose clocks go back at midnight
			end = cur.Add(time.Hour)
		}
		if day.ContainsTime(time.Date(l.Year(), l.Month(), l.Day(), 12, 0, 0, 0, loc)) {
			for m := cur; m.Before(end); m = m.Add(time.Minute) {
				if contains(w, m) {
					return m, true
				}
			}
		}
		cur = end
	}
	return time.Time{}, false
}
