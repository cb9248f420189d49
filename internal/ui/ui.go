package ui

import (
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/node-healer/node-healer/internal/runbooks"
	"github.com/node-healer/node-healer/internal/safety"
)

//go:embed templates/*.html static/*
var files embed.FS

// Runs reads stored runs (the run store).
type Runs interface {
	Load(ctx context.Context, id string) (*runbooks.Run, error)
	// List returns up to limit runs, newest first.
	List(ctx context.Context, limit int) ([]*runbooks.Run, error)
}

// Nodes reads the cluster's side of a node.
type Nodes interface {
	// Node returns a node's state; ErrNodeNotFound when there is none.
	Node(ctx context.Context, name string) (*NodeState, error)
	// Escalated lists the nodes marked for a human (needs-attention).
	Escalated(ctx context.Context) ([]*NodeState, error)
	// Events lists the Events regarding a node, oldest first.
	Events(ctx context.Context, name string) ([]Event, error)
}

// ErrNodeNotFound: no node by that name.
var ErrNodeNotFound = errors.New("node not found")

// RunCap is a node's standing against the per-node cap: Runs within
// Window, of Max; at Max the next alert escalates to a human.
type RunCap struct {
	Runs, Max int
	Window    string // as configured, e.g. "1d"
}

// NodeState is what the node page shows of a Node.
type NodeState struct {
	Name          string
	Unschedulable bool
	// CordonedByRun is the run whose cordon this is (annotation
	// node-healer.io/cordoned-by-run); empty: node-healer did not cordon it.
	CordonedByRun    string
	WasUnschedulable bool
	// NeedsAttention: the node-healer.io/needs-attention label is set;
	// Attention is the annotation's reason and EscalatedByRun the run.
	NeedsAttention  bool
	Attention       string
	EscalatedByRun  string
	LastRemediation string
	Excluded        bool // the opt-out label
	Ready           string
	ReadySince      time.Time
	Conditions      []Condition
	Created         time.Time
}

// Condition is one node condition.
type Condition struct {
	Type, Status, Reason, Message string
	Heartbeat, Transition         time.Time
}

// Event is one Kubernetes Event regarding a node.
type Event struct {
	Time     time.Time
	Type     string
	Reason   string
	Note     string
	Reporter string
	Count    int32
}

// Actions change node-healer's or a node's state. The page audits each
// call (a log line); ClearEscalation also writes an Event on the node.
type Actions interface {
	Pause(ctx context.Context, by, reason string) error
	Resume(ctx context.Context, by string) error
	// ClearEscalation removes node-healer's needs-attention marks from the
	// node once a human dealt with it.
	ClearEscalation(ctx context.Context, node, by, reason string) error
}

// HealRequest is a manual heal asked for on the page.
type HealRequest struct {
	Node, Runbook, Reason, By string
	DryRun                    bool
}

// HealReply is what became of it.
type HealReply struct {
	Run       string
	Duplicate bool   // an identical run already existed
	Status    string // the existing run's status, when Duplicate
	Detail    string
}

// Error is a refusal with an HTTP status and a message for the person.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Options wires the pages.
type Options struct {
	// Status reads the safety state; the held, deferred and escalated runs
	// are those of runs (the page lists the runs once for both).
	Status func(ctx context.Context, runs safety.RunLister) (*safety.Status, error)
	Runs   Runs
	// Nodes (nil: node state, escalated nodes and Events are not shown).
	Nodes Nodes
	// Silences answers which Alertmanager silences hold a node (nil: no
	// Alertmanager configured).
	Silences func(ctx context.Context, node string) (safety.Hold, error)
	// RunCap reads how many runs of a node count toward the per-node cap
	// (safety.node_runs); nil: not shown.
	RunCap func(ctx context.Context, node string) (RunCap, error)
	// Actions (nil: read-only pages).
	Actions Actions
	// Heal starts a manual run through the same path as POST /api/v1/runs
	// (nil: no heal form).
	Heal func(ctx context.Context, r HealRequest) (HealReply, error)
	// Runbooks offered in the heal form.
	Runbooks []string
	// AlertmanagerURL is where people open Alertmanager's UI (links to an
	// alert and to a prefilled new silence); empty: no links.
	AlertmanagerURL string
	// Identity names the person behind a request, or says why actions are
	// refused (no authentication configured).
	Identity func(r *http.Request) (string, error)
	// MayAct says whether an authenticated user may act, and if not why
	// (node-healer's ui.operators); nil: every authenticated user may.
	MayAct func(user string) (bool, string)
	// Refresh is the overview's auto-refresh period (default 10s).
	Refresh time.Duration
	// ListLimit bounds how many runs are read for a page (default 1000).
	ListLimit int
	Log       *slog.Logger
	Now       func() time.Time
}

// UI serves the pages.
type UI struct {
	o    Options
	tmpl *templates
	cop  *http.CrossOriginProtection
}

// New checks o and parses the templates.
func New(o Options) (*UI, error) {
	if o.Status == nil || o.Runs == nil {
		return nil, errors.New("ui: Status and Runs are required")
	}
	if o.Refresh <= 0 {
		o.Refresh = 10 * time.Second
	}
	if o.ListLimit <= 0 {
		o.ListLimit = 1000
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Identity == nil {
		o.Identity = func(*http.Request) (string, error) {
			return "", errors.New("no authentication configured")
		}
	}
	if o.MayAct == nil {
		o.MayAct = func(string) (bool, string) { return true, "" }
	}
	t, err := parseTemplates(o.AlertmanagerURL)
	if err != nil {
		return nil, err
	}
	return &UI{o: o, tmpl: t, cop: http.NewCrossOriginProtection()}, nil
}

// Mount adds the pages, assets and actions to e.
func (u *UI) Mount(e *echo.Echo) {
	static, _ := fs.Sub(files, "static")
	assets := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	e.GET("/static/*", echo.WrapHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // files only, no listing
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		assets.ServeHTTP(w, r)
	})))
	e.GET("/", u.overview)
	e.GET("/runs", u.runList)
	e.GET("/runs/:id", u.run)
	e.GET("/nodes/:name", u.node)
	e.POST("/actions/pause", u.action(u.pause))
	e.POST("/actions/resume", u.action(u.resume))
	e.POST("/actions/heal", u.action(u.heal))
	e.POST("/actions/clear-escalation", u.action(u.clearEscalation))
}
