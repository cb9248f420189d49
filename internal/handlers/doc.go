// Package handlers is node-healer's HTTP surface (echo v4): the
// Alertmanager webhook, health and readiness, metrics and the runs API.
//
// The webhook accepts fast and acts durably: it authenticates, validates,
// routes and deduplicates, writes each actionable alert to the queue and
// answers. It never runs a runbook itself. Alertmanager retries 5xx only,
// so "could not persist" is 503 and every bad request is a final 4xx.
//
// Options.UI mounts the operator's web page (internal/ui) on the same
// server; its heal form takes the manual-run path of POST /api/v1/runs.
package handlers
