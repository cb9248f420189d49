// Package handlers is node-healer's HTTP surface (echo v4): the
// Alertmanager webhook, health and readiness, metrics and the runs API.
//
// The webhook accepts fast and acts durably: it authenticates, validates,
// routes and deduplicates, writes each actionable alert to the queue and
// answers. It never runs a runbook itself. Alertmanager retries 5xx only,
// so "could not persist" is 503 and every bad request is a final 4xx.
package handlers
