package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
	"gopkg.in/yaml.v3"
)

// windowFields are the keys of an Alertmanager time interval.
var windowFields = []string{"times", "weekdays", "days_of_month", "months", "years", "location"}

// decodeWindow decodes one maintenance window: an Alertmanager time
// interval, the same YAML as an entry of Alertmanager's time_intervals, e.g.
//
//	{times: [{start_time: "22:00", end_time: "24:00"}], weekdays: [saturday], location: Europe/Berlin}
//
// Strictly: unknown keys, unknown names and empty windows are errors, each
// naming the entry that is wrong.
func decodeWindow(n *yaml.Node) (timeinterval.TimeInterval, error) {
	var w timeinterval.TimeInterval
	if n.Kind != yaml.MappingNode {
		return w, fmt.Errorf("line %d: want an Alertmanager time interval (keys %s)", n.Line, strings.Join(windowFields, ", "))
	}
	if len(n.Content) == 0 {
		return w, errors.New("empty: a window without times, weekdays, days_of_month, months or years is always open; drop maintenance_windows instead")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if seen[k] {
			return w, fmt.Errorf("%s: given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "times":
			w.Times, err = decodeTimes(v)
		case "weekdays":
			w.Weekdays, err = decodeList[timeinterval.WeekdayRange](v)
		case "days_of_month":
			w.DaysOfMonth, err = decodeList[timeinterval.DayOfMonthRange](v)
		case "months":
			w.Months, err = decodeList[timeinterval.MonthRange](v)
		case "years":
			w.Years, err = decodeList[timeinterval.YearRange](v)
		case "location":
			w.Location = &timeinterval.Location{}
			if err = v.Decode(w.Location); err != nil {
				err = fmt.Errorf(": %w", err)
			}
		case "days", "start", "end", "time_zone":
			return w, fmt.Errorf("field %s: windows are Alertmanager time intervals now, e.g. {weekdays: [\"monday:friday\"], times: [{start_time: \"09:00\", end_time: \"17:00\"}], location: Europe/Berlin}", k)
		default:
			return w, fmt.Errorf("field %s not found (an Alertmanager time interval has %s)", k, strings.Join(windowFields, ", "))
		}
		if err != nil {
			return w, fmt.Errorf("%s%w", k, err)
		}
	}
	return w, nil
}

// decodeTimes decodes times: [{start_time, end_time}, …].
func decodeTimes(n *yaml.Node) ([]timeinterval.TimeRange, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf(": line %d: want a list of {start_time: \"HH:MM\", end_time: \"HH:MM\"}", n.Line)
	}
	out := make([]timeinterval.TimeRange, 0, len(n.Content))
	for i, e := range n.Content {
		if e.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(e.Content); j += 2 {
				if k := e.Content[j].Value; !slices.Contains([]string{"start_time", "end_time"}, k) {
					return nil, fmt.Errorf("[%d]: field %s not found (want start_time, end_time)", i, k)
				}
			}
		}
		var r timeinterval.TimeRange
		if err := e.Decode(&r); err != nil {
			return nil, fmt.Errorf("[%d]: %w%s", i, err, wrapHint(e))
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeList decodes a list of Alertmanager ranges ("monday:friday", "1:7", "-1").
func decodeList[T any](n *yaml.Node) ([]T, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf(": line %d: want a list", n.Line)
	}
	out := make([]T, 0, len(n.Content))
	for i, e := range n.Content {
		var r T
		if err := e.Decode(&r); err != nil {
			return nil, fmt.Errorf("[%d]: %q: %w", i, e.Value, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// wrapHint explains a range that ends before it starts: the old window
// syntax wrapped midnight, Alertmanager's does not.
func wrapHint(n *yaml.Node) string {
	var raw struct {
		Start string `yaml:"start_time"`
		End   string `yaml:"end_time"`
	}
	if n.Decode(&raw) != nil {
		return ""
	}
	s, err1 := time.Parse("15:04", raw.Start)
	e, err2 := time.Parse("15:04", raw.End)
	if err1 != nil || err2 != nil || !e.Before(s) {
		return ""
	}
	return " (a range cannot wrap midnight: split it into two windows, one ending at \"24:00\" and one starting at \"00:00\" on the next weekday)"
}
