package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/node-healer/node-healer/internal/config"
	"github.com/node-healer/node-healer/internal/kube"
	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/runstore"
	"github.com/node-healer/node-healer/internal/safety"
	"github.com/node-healer/node-healer/internal/ui"
)

// uiEnv is what the operator page is built from in serve.
type uiEnv struct {
	cfg      *config.Config
	live     *liveConfig // ui.operators, reloadable
	o        serveOptions
	rdb      redis.UniversalClient
	gate     *safety.Gate
	store    *runstore.Store
	client   kubernetes.Interface
	cache    *kube.NodeCache
	nodes    *kube.Nodes
	runbooks []string
}

// uiOptions wires internal/ui to Redis, the gate and the cluster. The
// heal form is the API's manual-run path (set by handlers).
func uiOptions(e uiEnv) *ui.Options {
	o := &ui.Options{
		Status: func(ctx context.Context, runs safety.RunLister) (*safety.Status, error) {
			return e.gate.Status(ctx, runs)
		},
		Runs:  e.store,
		Nodes: &uiNodes{cache: e.cache, client: e.client, exclude: e.cfg.Safety.ExcludeLabel},
		Actions: &uiActions{rdb: e.rdb, prefix: e.cfg.Redis.KeyPrefix, nodes: e.nodes, client: e.client,
			dryRun: e.o.DryRun, nodeWindow: time.Duration(e.cfg.Safety.NodeRuns.Window)},
		Runbooks:        e.runbooks,
		AlertmanagerURL: e.o.UIAlertmanagerURL,
		Identity:        webIdentity(e.o.WebConfigFile),
		MayAct:          e.live.MayAct,
		Refresh:         e.o.uiRefresh,
	}
	if o.AlertmanagerURL == "" {
		for _, a := range e.cfg.Alertmanagers {
			if eps := a.Endpoints(); len(eps) > 0 {
				o.AlertmanagerURL = withoutUserinfo(eps[0])
				break
			}
		}
	}
	if nr := e.cfg.Safety.NodeRuns; nr.Max > 0 && nr.Window > 0 {
		o.RunCap = func(ctx context.Context, node string) (ui.RunCap, error) {
			n, err := safety.NodeRuns(ctx, e.rdb, e.cfg.Redis.KeyPrefix, node, time.Duration(nr.Window))
			return ui.RunCap{Runs: n, Max: nr.Max, Window: nr.Window.String()}, err
		}
	}
	if s := e.gate.Silences; s != nil {
		o.Silences = func(ctx context.Context, node string) (safety.Hold, error) { return s.Check(ctx, nil, node) }
	}
	return o
}

// checkUIAlertmanagerURL: --ui.alertmanager-url is an http(s) URL with a
// host and no credentials (it is shown in links).
func checkUIAlertmanagerURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("--ui.alertmanager-url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return fmt.Errorf("--ui.alertmanager-url %q: want http(s)://host[:port][/path]", s)
	case u.User != nil:
		return fmt.Errorf("--ui.alertmanager-url: no credentials in the URL (it is shown to everyone in links)")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("--ui.alertmanager-url %q: no query or fragment (the page adds Alertmanager's own)", s)
	}
	return nil
}

// withoutUserinfo drops credentials from a URL shown in links.
func withoutUserinfo(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.User = nil
	return u.String()
}

// webIdentity names the person behind a request from what the web
// configuration file verified: the basic auth user when it has
// basic_auth_users (exporter-toolkit refused everyone else), or the
// verified client certificate's common name when it requires one.
// Otherwise nobody is authenticated and the page is read-only. The file
// is read per request, as exporter-toolkit does, so a change applies at
// once.
func webIdentity(path string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) {
		if path == "" {
			return "", errors.New("no --web.config.file: set basic_auth_users or require client certificates to enable actions")
		}
		c, err := readWebConfig(path)
		if err != nil {
			return "", err
		}
		if len(c.Users) > 0 {
			if u, _, ok := r.BasicAuth(); ok && u != "" {
				return u, nil
			}
			return "", errors.New("no basic auth user")
		}
		if c.TLSConfig.ClientAuth == "RequireAndVerifyClientCert" && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != "" {
				return "cert:" + cn, nil
			}
		}
		return "", errors.New("--web.config.file has neither basic_auth_users nor verified client certificates (RequireAndVerifyClientCert): actions need one of them")
	}
}

// uiNodes reads nodes from the informer cache and Events from the API
// (events.k8s.io/v1 in "default", where Events on Nodes live).
type uiNodes struct {
	cache   *kube.NodeCache
	client  kubernetes.Interface
	exclude string
}

func (n *uiNodes) list() ([]*corev1.Node, error) {
	if !n.cache.Synced() {
		return nil, kube.ErrNotSynced
	}
	return n.cache.List()
}

func (n *uiNodes) Node(_ context.Context, name string) (*ui.NodeState, error) {
	nodes, err := n.list()
	if err != nil {
		return nil, err
	}
	for _, nd := range nodes {
		if nd.Name == name {
			return n.state(nd), nil
		}
	}
	return nil, ui.ErrNodeNotFound
}

func (n *uiNodes) Escalated(context.Context) ([]*ui.NodeState, error) {
	nodes, err := n.list()
	if err != nil {
		return nil, err
	}
	var out []*ui.NodeState
	for _, nd := range nodes {
		if nd.Labels[runbooks.LabelNeedsAttention] != "" {
			out = append(out, n.state(nd))
		}
	}
	return out, nil
}

func (n *uiNodes) state(nd *corev1.Node) *ui.NodeState {
	a := nd.Annotations
	s := &ui.NodeState{Name: nd.Name, Unschedulable: nd.Spec.Unschedulable, CordonedByRun: a[runbooks.AnnotationCordonedBy],
		WasUnschedulable: a[runbooks.AnnotationWasUnschedulable] == "true",
		NeedsAttention:   nd.Labels[runbooks.LabelNeedsAttention] != "", Attention: a[runbooks.AnnotationNeedsAttention],
		EscalatedByRun: a[runbooks.AnnotationEscalatedBy], LastRemediation: a[runbooks.AnnotationLastRemediation],
		Excluded: n.exclude != "" && nd.Labels[n.exclude] == "true", Created: nd.CreationTimestamp.Time}
	for _, c := range nd.Status.Conditions {
		s.Conditions = append(s.Conditions, ui.Condition{Type: string(c.Type), Status: string(c.Status), Reason: c.Reason, Message: c.Message,
			Heartbeat: c.LastHeartbeatTime.Time, Transition: c.LastTransitionTime.Time})
		if c.Type == corev1.NodeReady {
			s.Ready, s.ReadySince = string(c.Status), c.LastTransitionTime.Time
		}
	}
	return s
}

// eventsLimit bounds the Events read for one page.
const eventsLimit = 200

func (n *uiNodes) Events(ctx context.Context, name string) ([]ui.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sel := fields.Set{"regarding.kind": "Node", "regarding.name": name}.AsSelector().String()
	l, err := n.client.EventsV1().Events(metav1.NamespaceDefault).List(ctx, metav1.ListOptions{FieldSelector: sel, Limit: eventsLimit})
	if err != nil {
		return nil, err
	}
	out := make([]ui.Event, 0, len(l.Items))
	for _, e := range l.Items {
		ev := ui.Event{Time: e.EventTime.Time, Type: e.Type, Reason: e.Reason, Note: e.Note, Reporter: e.ReportingInstance, Count: 1}
		if ev.Reporter == "" {
			ev.Reporter = e.ReportingController
		}
		if e.Series != nil {
			ev.Count, ev.Time = e.Series.Count, e.Series.LastObservedTime.Time
		}
		if ev.Time.IsZero() {
			ev.Time = e.DeprecatedLastTimestamp.Time
		}
		if ev.Time.IsZero() {
			ev.Time = e.CreationTimestamp.Time
		}
		out = append(out, ev)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// resetRunCountOnClear resets a node's per-node run count when its
// needs-attention label is removed by anyone (kubectl, the operator
// page): a human cleared the escalation, so the node gets the cap's runs
// again. Every replica sees the removal; the first one's reset forgets the
// runs, the others find none. A dry-run receiver changes nothing.
func resetRunCountOnClear(ctx context.Context, nodes *kube.NodeCache, rdb redis.UniversalClient, cfg *config.Config, dryRun bool, log *slog.Logger) error {
	window := time.Duration(cfg.Safety.NodeRuns.Window)
	if dryRun || cfg.Safety.NodeRuns.Max <= 0 || window <= 0 {
		return nil
	}
	err := nodes.OnLabelRemoved(runbooks.LabelNeedsAttention, func(node string) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n, err := safety.ResetNodeRuns(rctx, rdb, cfg.Redis.KeyPrefix, node, window)
		switch {
		case err != nil:
			log.Warn("escalation cleared (needs-attention label removed), but the per-node run count could not be reset: the node escalates again on its next alert until the window passes",
				"node", node, "window", model.Duration(window), "err", err)
		case n > 0:
			log.Info("escalation cleared (needs-attention label removed): per-node run count reset", "node", node, "forgotten_runs", n, "window", model.Duration(window))
		}
	})
	if err != nil {
		return fmt.Errorf("watch for cleared escalations: %w", err)
	}
	return nil
}

// uiActions are the page's mutations: the global pause (as `receiver
// pause`) and clearing a node's escalation (as `kubectl label node N
// node-healer.io/needs-attention-`, plus the annotations, an Event, and
// the node's per-node run count, reset here so the Event can say how many
// runs were forgotten; resetRunCountOnClear does it for kubectl).
type uiActions struct {
	rdb    redis.UniversalClient
	prefix string
	nodes  *kube.Nodes
	client kubernetes.Interface
	dryRun bool
	// nodeWindow is safety.node_runs.window: clearing an escalation
	// forgets the node's runs counted within it.
	nodeWindow time.Duration
}

func (a *uiActions) Pause(ctx context.Context, by, reason string) error {
	return safety.Pause(ctx, a.rdb, a.prefix, by, reason)
}

func (a *uiActions) Resume(ctx context.Context, _ string) error {
	return safety.Resume(ctx, a.rdb, a.prefix)
}

func (a *uiActions) ClearEscalation(ctx context.Context, node, by, reason string) error {
	n, err := a.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return ui.ErrNodeNotFound
		}
		return fmt.Errorf("read node %s: %w", node, err)
	}
	if n.Labels[runbooks.LabelNeedsAttention] == "" && n.Annotations[runbooks.AnnotationNeedsAttention] == "" {
		return &ui.Error{Code: http.StatusConflict, Msg: "node " + node + " is not marked for attention (already cleared?)"}
	}
	if a.dryRun {
		return &ui.Error{Code: http.StatusConflict, Msg: "this receiver runs with --dry-run: it changes no node"}
	}
	run := n.Annotations[runbooks.AnnotationEscalatedBy]
	// The run count first: if Redis is down nothing changed and the human
	// can try again; a count reset on a node still marked changes nothing
	// that matters.
	forgot := 0
	if a.nodeWindow > 0 {
		if forgot, err = safety.ResetNodeRuns(ctx, a.rdb, a.prefix, node, a.nodeWindow); err != nil {
			return fmt.Errorf("reset the per-node run count of %s in Redis (nothing was changed; try again): %w", node, err)
		}
	}
	err = a.nodes.Annotate(ctx, node,
		map[string]*string{runbooks.AnnotationNeedsAttention: nil, runbooks.AnnotationEscalatedBy: nil},
		map[string]*string{runbooks.LabelNeedsAttention: nil})
	if err != nil {
		return fmt.Errorf("clear the marks on node %s: %w", node, err)
	}
	msg := "escalation cleared by " + by
	if run != "" {
		msg += " (run " + run + ")"
	}
	msg += ": " + strings.TrimSpace(reason)
	if forgot > 0 {
		msg += fmt.Sprintf(" (per-node run count reset: %d run(s) within %s forgotten)", forgot, model.Duration(a.nodeWindow))
	}
	_ = a.nodes.Event(ctx, node, "Normal", "NodeHealerEscalationCleared", msg)
	return nil
}
