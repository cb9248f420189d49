// Package ui is node-healer's operator page: server-rendered HTML
// (html/template, assets embedded with embed) that the receiver serves at
// / on the listener of its API, behind the same web configuration (TLS,
// client certificates, basic auth).
//
// Pages (readable without JavaScript, and on a phone):
//
//	GET /              overview: pause, breaker, reboot budget, active,
//	                   held, deferred and escalated runs, recent runs
//	GET /runs          every stored run, filterable by node and status
//	GET /runs/ID       one run: timeline, alert, evidence, the node's Events
//	GET /nodes/NAME    one node: its state, silences, its runs
//
// Actions are POST forms (pause, resume, manual heal, clear an
// escalation). Each needs an authenticated user (Options.Identity: the
// web configuration's basic auth user or client certificate) whom
// Options.MayAct lets act (node-healer's ui.operators), a valid
// CSRF token (a random value in a SameSite=Strict cookie that the form
// must repeat) and a same-origin request (net/http's
// CrossOriginProtection); each is audited (a log line with audit=true,
// and a Kubernetes Event where a node is concerned). The package holds
// no state and imports no SDK: Options brings the data and the actions.
package ui
