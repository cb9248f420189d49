package pipeline

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// Event is one milestone of a heal, as Follow sees it.
type Event struct {
	At     time.Time
	Since  time.Duration // since the kernel log line
	Source string        // npd | prometheus | alertmanager | node-healer | bmc
	Title  string        // detected, cordon, drain, soft reboot, …
	Detail string
}

// Trace is what Follow saw: when each stage of the pipeline first showed
// the fault, and the run.
type Trace struct {
	Node, Alert  string
	Injected     time.Time // the kernel log line was written
	NPD          time.Time // node-problem-detector's gauge went to 1
	Prometheus   time.Time // the alert was firing in Prometheus
	Alertmanager time.Time // the alert was active in Alertmanager
	Run          *runbooks.Run
	Events       []Event
}

// FollowOptions configures Follow.
type FollowOptions struct {
	Node  string
	Alert string    // e.g. NodeKernelDeadlock
	Since time.Time // when the fault was injected
	// Emit, if set, is called for each event as it is seen.
	Emit func(Event)
	// Poll is the polling period (default 100ms).
	Poll time.Duration
}

// Follow polls node-problem-detector, Prometheus, Alertmanager, the BMC
// and node-healer's runs API until the node's run is final (or ctx ends,
// returning what was seen with ctx's error).
func (p *Pipeline) Follow(ctx context.Context, o FollowOptions) (*Trace, error) {
	if o.Poll == 0 {
		o.Poll = 100 * time.Millisecond
	}
	t := &Trace{Node: o.Node, Alert: o.Alert, Injected: o.Since}
	emit := func(at time.Time, source, title, detail string) {
		e := Event{At: at, Since: at.Sub(o.Since), Source: source, Title: title, Detail: detail}
		t.Events = append(t.Events, e)
		if o.Emit != nil {
			o.Emit(e)
		}
	}
	seenSteps := 0
	seenPower := 0
	for {
		now := time.Now()
		if npd := p.NPD[o.Node]; t.NPD.IsZero() && npd != nil {
			if v, err := npd.Gauge(ctx, conditionOf(o.Alert)); err == nil && v > 0 {
				t.NPD = now
				emit(now, "npd", "condition", fmt.Sprintf("node-problem-detector: %s=1 on %s", conditionOf(o.Alert), o.Node))
			}
		}
		if t.Prometheus.IsZero() {
			if s, err := p.PrometheusState(ctx, o.Alert, o.Node); err == nil && s == "firing" {
				t.Prometheus = now
				emit(now, "prometheus", "alert firing", "Prometheus: "+o.Alert+" firing (rules/node-healer.rules.yml)")
			}
		}
		if t.Alertmanager.IsZero() {
			if s, err := p.AlertmanagerState(ctx, o.Alert, o.Node); err == nil && s != "" {
				t.Alertmanager = now
				emit(now, "alertmanager", "detected", "Alertmanager: "+o.Alert+" "+s+"; webhook to node-healer after group_wait")
			}
		}
		if t.Run == nil {
			if runs, err := p.NodeRuns(ctx, o.Node, o.Since); err == nil {
				for _, r := range runs {
					if r.Labels["alertname"] == o.Alert {
						t.Run = r
						emit(r.Created, "node-healer", "run accepted", fmt.Sprintf("webhook → run %s (route %s, runbook %s)", r.ID, r.Route, r.Runbook))
						break
					}
				}
			}
		} else if r, err := p.Run(ctx, t.Run.ID); err == nil {
			t.Run = r
		}
		if t.Run != nil {
			for ; seenSteps < len(t.Run.Timeline); seenSteps++ {
				e := t.Run.Timeline[seenSteps]
				if e.Outcome == runbooks.OutcomeStarted {
					break
				}
				emit(e.End, "node-healer", StepTitle(e), string(e.Outcome)+": "+e.Detail)
			}
		}
		if p.bmc != nil {
			evs := p.PowerEvents()
			for ; seenPower < len(evs); seenPower++ {
				if e := evs[seenPower]; e.Node == o.Node && !e.At.Before(o.Since) {
					emit(e.At, "bmc", "power "+e.State, "BMC: "+o.Node+" power "+e.State)
				}
			}
		}
		if t.Run != nil && t.Run.Status.Final() {
			// Catch the last timeline entries (a final status is written
			// with them).
			for ; seenSteps < len(t.Run.Timeline); seenSteps++ {
				e := t.Run.Timeline[seenSteps]
				emit(e.End, "node-healer", StepTitle(e), string(e.Outcome)+": "+e.Detail)
			}
			emit(t.Run.Updated, "node-healer", "run "+string(t.Run.Status), t.Run.Error)
			return t, nil
		}
		select {
		case <-ctx.Done():
			return t, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// conditionOf maps an alert to the NPD condition type behind it.
func conditionOf(alert string) string {
	switch alert {
	case "NodeReadonlyFilesystem":
		return "ReadonlyFilesystem"
	default:
		return "KernelDeadlock"
	}
}

// StepTitle names a timeline entry the way an operator reads it.
func StepTitle(e runbooks.Entry) string {
	switch e.Step {
	case "soft-reboot":
		return "soft reboot"
	case "wait-reboot":
		if strings.Contains(e.Detail, "reboot failed") {
			return "reboot failed"
		}
		return "node went down"
	case "power-cycle":
		if e.Outcome == runbooks.OutcomeSkipped {
			return "no power-cycle"
		}
		return "hard power-cycle"
	case "wait-ready":
		return "node online"
	case "verify-health":
		return "health checks"
	}
	return e.Step
}

// Step returns the last completed timeline entry of a step (nil if none).
func (t *Trace) Step(name string) *runbooks.Entry {
	if t.Run == nil {
		return nil
	}
	for i := len(t.Run.Timeline) - 1; i >= 0; i-- {
		if e := t.Run.Timeline[i]; e.Step == name && e.Outcome != runbooks.OutcomeStarted {
			return &e
		}
	}
	return nil
}

var evictedRE = regexp.MustCompile(`evicted (\d+) pods`)

// Summary is a heal's figures, each measured from the kernel log line.
type Summary struct {
	Status        string
	NPD           time.Duration // node-problem-detector set the condition
	Prometheus    time.Duration // alert firing in Prometheus (scrape + rule evaluation + for)
	Alertmanager  time.Duration // alert active in Alertmanager: the detection time
	Accepted      time.Duration // node-healer received the webhook (group_wait)
	Cordon        time.Duration // node cordoned
	Uncordon      time.Duration // node uncordoned: the recovery time
	Evicted       int           // pods evicted by the drain
	PowerCycled   bool
	StepsComplete int
}

// Summary computes the figures; zero durations mean "not seen".
func (t *Trace) Summary() Summary {
	d := func(at time.Time) time.Duration {
		if at.IsZero() {
			return 0
		}
		return at.Sub(t.Injected)
	}
	s := Summary{NPD: d(t.NPD), Prometheus: d(t.Prometheus), Alertmanager: d(t.Alertmanager)}
	if t.Run == nil {
		return s
	}
	s.Status = string(t.Run.Status)
	s.Accepted = d(t.Run.Created)
	if e := t.Step("cordon"); e != nil {
		s.Cordon = d(e.End)
	}
	if e := t.Step("uncordon"); e != nil && e.Outcome == runbooks.OutcomeDone {
		s.Uncordon = d(e.End)
	}
	if e := t.Step("drain"); e != nil {
		if m := evictedRE.FindStringSubmatch(e.Detail); m != nil {
			s.Evicted, _ = strconv.Atoi(m[1])
		}
	}
	if e := t.Step("power-cycle"); e != nil && e.Outcome == runbooks.OutcomeDone {
		s.PowerCycled = true
	}
	for _, e := range t.Run.Timeline {
		if e.Outcome != runbooks.OutcomeStarted {
			s.StepsComplete++
		}
	}
	return s
}
