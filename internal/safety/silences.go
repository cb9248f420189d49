package safety

// Alertmanager silences as the pause button.
//
// An active silence holds a run when its matchers, with Alertmanager's own
// semantics (=, !=, =~, !~; regexes anchored), all match one of:
//
//  1. the alert's labels: whatever Alertmanager would silence, node-healer
//     does not act on;
//  2. the label set {node="<node>"}: `amtool silence add node=n1 -c "hardware
//     swap"` pauses every run on n1, whatever alert started it;
//  3. the label set {node_healer="paused"}: `amtool silence add
//     node_healer=paused -c "change freeze"` pauses every run on every node.
//     No real alert carries that label, so such a silence mutes nothing in
//     Alertmanager itself: it is a pure switch.
//
// Alertmanager refuses a silence whose matchers all match the empty string,
// so a silence can only match sets 2 or 3 through a matcher on `node` or
// `node_healer` that selects a value: a silence on `severity!="critical",
// env="prod"` does not pause everything by accident.
//
// Only silences in state "active" count; pending and expired ones do not.
//
// HA: every configured Alertmanager is asked and the union of their active
// silences is used, so a silence still gossiping to one member counts as
// soon as any member has it. Members that fail are logged (on the change)
// and skipped; only when none answers does Check fail. A silence that only
// a failed member knows is missed until it answers again: list every
// member of the cluster.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrSilencesUnavailable means no configured Alertmanager answered, so it
// is unknown whether a silence holds the run. Callers hold (fail closed).
var ErrSilencesUnavailable = errors.New("alertmanager silences unavailable")

// Synthetic label sets matched against silences (see the file comment).
const (
	SilenceNodeLabel  = "node"        // {node="<node>"} pauses one node
	SilencePauseLabel = "node_healer" // {node_healer="paused"} pauses all
	SilencePauseValue = "paused"
)

// Defaults for SilencesConfig.
const (
	DefaultSilencesTimeout  = 5 * time.Second
	DefaultSilencesCacheTTL = 2 * time.Second
)

// Hold is the answer of Silences.Check.
type Hold struct {
	Held bool
	// Reason names the silence, e.g. `silence 5b1f… by alice: hardware
	// swap (matchers node="n1") until 15:04 UTC`. Stable while the
	// silences do not change.
	Reason string
	// Until is when the matching silence that ends last ends (zero when
	// not held, or held because Alertmanager could not be asked).
	Until time.Time
}

// SilencesConfig configures a Silences checker. At least one URL, in
// URLs or Alertmanagers, is required.
//
// Give every member of an HA cluster: all are asked, a silence in any of
// them counts, and the check fails only if none answers.
type SilencesConfig struct {
	// URLs of Alertmanagers reached with prometheus/common's default HTTP
	// client settings (no auth, system roots), e.g. http://alertmanager:9093
	// (a path prefix such as /alertmanager is kept).
	URLs []string
	// Alertmanagers: more URLs, each set with its own HTTP client settings
	// (see AlertmanagerSet).
	Alertmanagers []AlertmanagerSet
	// Timeout bounds each request to URLs, and to sets without their own
	// (default 5 s).
	Timeout time.Duration
	// CacheTTL is how long one Alertmanager's answer (or failure) is
	// reused (default 2 s; negative: no cache). A new silence takes effect
	// at most this late.
	CacheTTL time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Registerer receives node_healer_alertmanager_requests_total (nil:
	// not registered).
	Registerer prometheus.Registerer
}

// Silences answers "does an Alertmanager silence hold this run?". It is
// safe for concurrent use.
type Silences struct {
	endpoints []*amEndpoint
	client    *amClient
	ttl       time.Duration
	log       *slog.Logger
	now       func() time.Time
}

// NewSilences checks cfg (URLs, HTTP client settings; secret files are
// read per request) and returns a checker. It does not contact
// Alertmanager.
func NewSilences(cfg SilencesConfig) (*Silences, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultSilencesTimeout
	}
	switch {
	case cfg.CacheTTL == 0:
		cfg.CacheTTL = DefaultSilencesCacheTTL
	case cfg.CacheTTL < 0:
		cfg.CacheTTL = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client, err := newAMClient(cfg)
	if err != nil {
		return nil, err
	}
	s := &Silences{client: client, ttl: cfg.CacheTTL, log: cfg.Logger, now: time.Now}
	if s.endpoints, err = newAMEndpoints(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Check reports whether an active silence holds a run for an alert with
// alertLabels on node (either may be empty). An error means no
// Alertmanager answered (or ctx ended first): it wraps
// ErrSilencesUnavailable, and the Hold is Held too, so a caller that only
// looks at the Hold still fails closed.
func (s *Silences) Check(ctx context.Context, alertLabels map[string]string, node string) (Hold, error) {
	sils, err := s.active(ctx)
	if err != nil {
		return Hold{Held: true, Reason: "cannot read Alertmanager silences: " + err.Error()}, err
	}
	return evaluateSilences(sils, alertLabels, node, s.now()), nil
}

// evaluateSilences is Check without the network: which of sils hold.
func evaluateSilences(sils []amSilence, alertLabels map[string]string, node string, now time.Time) Hold {
	var (
		last  *amSilence
		count int
		seen  = map[string]bool{}
	)
	for i := range sils {
		sil := &sils[i]
		if seen[sil.id] || !silenceHolds(sil, alertLabels, node) {
			continue
		}
		seen[sil.id] = true
		count++
		if last == nil || sil.endsAt.After(last.endsAt) || (sil.endsAt.Equal(last.endsAt) && sil.id < last.id) {
			last = sil
		}
	}
	if last == nil {
		return Hold{}
	}
	reason := last.describe(now)
	if count > 1 {
		reason += fmt.Sprintf(" (and %d more)", count-1)
	}
	return Hold{Held: true, Reason: reason, Until: last.endsAt}
}

// amSilence is an active silence, its matchers compiled.
type amSilence struct {
	id, createdBy, comment string
	endsAt                 time.Time
	matchers               labels.Matchers
	// bad is set when a matcher cannot be compiled here (Alertmanager
	// accepted it, so this should not happen): such a silence holds
	// everything rather than nothing (fail closed).
	bad error
}

// silenceHolds is the matching rule: all matchers match the alert's
// labels, or {node: node}, or {node_healer: paused}.
func silenceHolds(sil *amSilence, alertLabels map[string]string, node string) bool {
	if sil.bad != nil {
		return true
	}
	if len(sil.matchers) == 0 {
		return false // not a valid silence; Alertmanager would match nothing
	}
	if matchAll(sil.matchers, func(name string) string { return alertLabels[name] }) {
		return true
	}
	if node != "" && matchAll(sil.matchers, func(name string) string {
		if name == SilenceNodeLabel {
			return node
		}
		return ""
	}) {
		return true
	}
	return matchAll(sil.matchers, func(name string) string {
		if name == SilencePauseLabel {
			return SilencePauseValue
		}
		return ""
	})
}

// matchAll is labels.Matchers.Matches over a lookup: an absent label is "".
func matchAll(ms labels.Matchers, get func(string) string) bool {
	for _, m := range ms {
		if !m.Matches(get(m.Name)) {
			return false
		}
	}
	return true
}

// compileSilence turns an API silence into an amSilence.
func compileSilence(a apiSilence) amSilence {
	sil := amSilence{id: a.ID, createdBy: a.CreatedBy, comment: a.Comment, endsAt: a.EndsAt}
	for _, am := range a.Matchers {
		isEqual := am.IsEqual == nil || *am.IsEqual // absent before Alertmanager 0.22: equality
		t := labels.MatchEqual
		switch {
		case am.IsRegex && isEqual:
			t = labels.MatchRegexp
		case am.IsRegex:
			t = labels.MatchNotRegexp
		case !isEqual:
			t = labels.MatchNotEqual
		}
		m, err := labels.NewMatcher(t, am.Name, am.Value)
		if err != nil {
			sil.bad = fmt.Errorf("matcher %s%s%q: %w", am.Name, t, am.Value, err)
			continue
		}
		sil.matchers = append(sil.matchers, m)
	}
	return sil
}

// describe is the Hold.Reason for this silence.
func (sil *amSilence) describe(now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "silence %s", sil.id)
	if sil.createdBy != "" {
		fmt.Fprintf(&b, " by %s", sil.createdBy)
	}
	if c := strings.Join(strings.Fields(sil.comment), " "); c != "" {
		fmt.Fprintf(&b, ": %s", truncate(c, 200))
	}
	ms := make([]string, len(sil.matchers))
	for i, m := range sil.matchers {
		ms[i] = m.String()
	}
	slices.Sort(ms)
	fmt.Fprintf(&b, " (matchers %s)", strings.Join(ms, ", "))
	if sil.bad != nil {
		fmt.Fprintf(&b, " holds everything: node-healer cannot evaluate its %v", sil.bad)
	}
	if !sil.endsAt.IsZero() {
		end := sil.endsAt.UTC()
		layout := "15:04 UTC"
		if end.Sub(now) >= 24*time.Hour || end.Sub(now) < 0 {
			layout = "2006-01-02 15:04 UTC"
		}
		fmt.Fprintf(&b, " until %s", end.Format(layout))
	}
	return b.String()
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
