package kube

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
)

// ReportingController names node-healer in the Events it writes
// (events.k8s.io/v1 reportingController).
const ReportingController = "node-healer.io/receiver"

// noteLimit is the API server's limit on an events.k8s.io note (bytes).
const noteLimit = 1024

// EventOptions configures an Events recorder.
type EventOptions struct {
	// Instance names this replica (reportingInstance). Default: the
	// library's "<controller>-<hostname>".
	Instance string
	// NodeUID returns a Node's UID from a cache ("" when it does not know
	// the node); see Events.Event for what happens without one.
	NodeUID func(name string) types.UID
	// Registerer, when set, gets node_healer_events_dropped_total and
	// node_healer_event_write_errors_total.
	Registerer prometheus.Registerer
	// Log gets every failed Event write (client-go also logs them via klog).
	Log *slog.Logger
}

// Events records Kubernetes Events on Nodes through client-go's
// events.k8s.io/v1 machinery (k8s.io/client-go/tools/events): Event
// returns at once, a broadcaster writes in the background, retrying while
// the API server is unreachable, and repeats of one event become one
// Event object with a series count instead of one object each.
//
// Aggregation: the library treats events with the same type, reason,
// action, regarding object and reporter as the same event. Its key has no
// note, so Event puts a hash of the note into the action (see actionOf):
// a repeated (reason, note) on a node is counted on one object — a
// "series" — while events whose notes differ (another run, another hold
// kind) stay separate objects. The library writes the first occurrence
// (create) and the second (patch: series.count 2) at once; later repeats
// are counted in memory and written when the series has been quiet for 6
// minutes, and every 30 minutes while it goes on. A count not written yet
// is lost when the process exits.
type Events struct {
	broadcaster events.EventBroadcaster
	recorder    events.EventRecorder
	sink        *eventSink
	nodeUID     func(string) types.UID
	cancel      context.CancelFunc
	stopWatch   func()

	mu       sync.RWMutex // Event holds it for reading, Stop for writing
	stopped  bool
	accepted atomic.Int64 // handed to the recorder
	seen     atomic.Int64 // reached the broadcaster's watchers

	dropped *prometheus.CounterVec
}

// Reasons of node_healer_events_dropped_total.
const (
	DropRejected = "rejected" // the API server refused it (RBAC, validation): not retried
	DropStopped  = "stopped"  // recorded after Stop
	DropInvalid  = "invalid"  // not a Normal or Warning event, or no reason
)

// NewEvents starts recording Events to the API server with client. Call
// Stop before the process exits.
func NewEvents(client kubernetes.Interface, o EventOptions) *Events {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Events{
		nodeUID: o.NodeUID,
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_events_dropped_total",
			Help: "Kubernetes Events not recorded, by reason: rejected by the API server, recorded after shutdown, invalid."},
			[]string{"reason"}),
	}
	e.sink = &eventSink{
		sink:     &events.EventSinkImpl{Interface: client.EventsV1()},
		instance: o.Instance,
		log:      log,
		dropped:  e.dropped,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "node_healer_event_write_errors_total",
			Help: "Failed Kubernetes Event writes, by verb (create, patch); transport errors are retried by client-go (12 tries, 10s apart)."},
			[]string{"verb"}),
	}
	for _, r := range []string{DropRejected, DropStopped, DropInvalid} {
		e.dropped.WithLabelValues(r)
	}
	for _, v := range []string{"create", "patch"} {
		e.sink.errors.WithLabelValues(v)
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(e.dropped, e.sink.errors)
	}
	e.broadcaster = events.NewBroadcaster(e.sink)
	// Our own watcher only counts what reached the broadcaster, so that
	// Stop knows when every accepted event has been handed on.
	if stop, err := e.broadcaster.StartEventWatcher(func(runtime.Object) { e.seen.Add(1) }); err == nil {
		e.stopWatch = stop
	}
	// Not the caller's context: on shutdown, writes in flight may finish
	// (Stop) after the caller's context is cancelled.
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	if err := e.broadcaster.StartRecordingToSinkWithContext(ctx); err != nil {
		// Only if the broadcaster were already shut down.
		log.Error("Kubernetes Events will not be written", "err", err)
	}
	e.recorder = e.broadcaster.NewRecorder(scheme.Scheme, ReportingController)
	return e
}

// Event records an Event regarding the Node. It does not wait for the
// API server: the error reports only an event that cannot be recorded at
// all (after Stop, or not Normal/Warning); write failures are logged and
// counted (node_healer_event_write_errors_total, and
// node_healer_events_dropped_total{reason="rejected"} when not retried).
//
// The regarding reference carries the Node's real UID when NodeUID knows
// it — kubectl describe node lists the Events whose involvedObject.uid is
// the node's UID — and the node's name as UID otherwise, the kubelet's
// convention, which kubectl describe node shows when the node has no
// Events with its real UID. kubectl events --for node/NAME matches on
// kind, apiVersion and name only.
func (e *Events) Event(_ context.Context, node, eventType, reason, message string) error {
	if (eventType != corev1.EventTypeNormal && eventType != corev1.EventTypeWarning) || reason == "" {
		e.dropped.WithLabelValues(DropInvalid).Inc()
		return fmt.Errorf("event %q on node %s: type %q must be Normal or Warning, with a reason", reason, node, eventType)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.stopped {
		e.dropped.WithLabelValues(DropStopped).Inc()
		return fmt.Errorf("event %s on node %s: %w", reason, node, errEventsStopped)
	}
	note := truncateNote(message)
	e.accepted.Add(1)
	// The note is a format string for the recorder: pass it as an argument.
	e.recorder.Eventf(e.regarding(node), nil, eventType, reason, actionOf(reason, note), "%s", note)
	return nil
}

var errEventsStopped = errors.New("event recorder stopped")

// regarding is the Node as the Event's regarding object: name and UID
// only (a resourceVersion would make every node update a new series).
func (e *Events) regarding(node string) *corev1.Node {
	uid := types.UID(node)
	if e.nodeUID != nil {
		if u := e.nodeUID(node); u != "" {
			uid = u
		}
	}
	n := &corev1.Node{}
	n.Name, n.UID = node, uid
	return n
}

// actionOf is the Event's action: the reason's verb (NodeHealerCordon →
// Cordon) and a short hash of the note, so that the library aggregates
// only events with the same note (its key has the action, not the note).
func actionOf(reason, note string) string {
	verb := strings.TrimPrefix(reason, "NodeHealer")
	if verb == "" {
		verb = reason
	}
	if len(verb) > 100 {
		verb = verb[:100]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(note))
	return fmt.Sprintf("%s-%08x", verb, h.Sum32())
}

// truncateNote cuts a note to the API server's limit, on a rune boundary.
func truncateNote(s string) string {
	if len(s) <= noteLimit {
		return s
	}
	const more = "…"
	cut := noteLimit - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// Stop stops recording: Events after it are refused. It waits up to
// timeout for the events accepted so far to be written (first writes and
// their retries in flight), then stops the library's background writers.
// Series counts the library has not written yet are not written (it has
// no flush).
func (e *Events) Stop(timeout time.Duration) {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		return
	}
	e.stopped = true
	e.mu.Unlock()
	deadline := time.Now().Add(timeout)
	// Every accepted event has reached the broadcaster (the recorder hands
	// them over in goroutines)…
	for e.seen.Load() < e.accepted.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// …is passed on to the sink (Shutdown distributes what is queued)…
	e.broadcaster.Shutdown()
	// …and no write has been in flight for a moment.
	quiet := time.Time{}
	for time.Now().Before(deadline) {
		if e.sink.inflight.Load() > 0 {
			quiet = time.Time{}
		} else if quiet.IsZero() {
			quiet = time.Now()
		} else if time.Since(quiet) > 100*time.Millisecond {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.cancel()
	if e.stopWatch != nil {
		e.stopWatch()
	}
}

// eventSink is client-go's events.k8s.io sink with this replica's name as
// reportingInstance, and failures logged and counted.
type eventSink struct {
	sink     events.EventSink
	instance string
	log      *slog.Logger
	dropped  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	inflight atomic.Int64
	creates  atomic.Int64 // API writes, for tests
	patches  atomic.Int64
}

func (s *eventSink) Create(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.creates.Add(1)
	if s.instance != "" {
		ev = ev.DeepCopy()
		ev.ReportingInstance = s.instance
	}
	out, err := s.sink.Create(ctx, ev)
	// AlreadyExists: a first write and its series' write raced; the
	// library retries or drops the duplicate itself.
	if err != nil && !apierrors.IsAlreadyExists(err) {
		s.failed("create", ev, err)
	}
	return out, err
}

func (s *eventSink) Update(ctx context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	out, err := s.sink.Update(ctx, ev)
	if err != nil {
		s.failed("update", ev, err)
	}
	return out, err
}

func (s *eventSink) Patch(ctx context.Context, ev *eventsv1.Event, data []byte) (*eventsv1.Event, error) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	s.patches.Add(1)
	out, err := s.sink.Patch(ctx, ev, data)
	// NotFound: the library creates the Event instead.
	if err != nil && !apierrors.IsNotFound(err) {
		s.failed("patch", ev, err)
	}
	return out, err
}

func (s *eventSink) failed(verb string, ev *eventsv1.Event, err error) {
	s.errors.WithLabelValues(verb).Inc()
	var status apierrors.APIStatus
	final := errors.As(err, &status)
	if final {
		// client-go does not retry a refusal by the API server.
		s.dropped.WithLabelValues(DropRejected).Inc()
	}
	s.log.Warn("could not write a Kubernetes Event", "verb", verb, "node", ev.Regarding.Name, "reason", ev.Reason,
		"retried", !final, "err", err)
}

// NodeUID is a cached node's UID ("" when the cache does not have it), for
// EventOptions.NodeUID.
func (c *NodeCache) NodeUID(name string) types.UID {
	if c == nil {
		return ""
	}
	n, err := c.lister.Get(name)
	if err != nil {
		return ""
	}
	return n.UID
}
