package testenv

import (
	"context"
	"time"
)

// AMAlert is an alert as Alertmanager's GET /api/v2/alerts returns it.
type AMAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"` // active, suppressed, unprocessed
	} `json:"status"`
	GeneratorURL string `json:"generatorURL"`
}

// Alerts lists the alerts Alertmanager holds and has not resolved.
func (am *Alertmanager) Alerts(ctx context.Context) ([]AMAlert, error) {
	var out []AMAlert
	err := am.do(ctx, "GET", "/api/v2/alerts", nil, &out)
	return out, err
}
