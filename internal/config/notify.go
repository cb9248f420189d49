package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/prometheus/common/model"
)

// Notify configures node-healer's own alerts, sent to the Alertmanagers
// of `alertmanagers` (see internal/notify). Without alertmanagers nothing
// is sent.
type Notify struct {
	// Disabled turns the alerts off even with alertmanagers configured.
	Disabled bool `yaml:"disabled"`
	// HeldAfter: a run held or deferred this long raises NodeHealerRunHeld
	// (default 10m).
	HeldAfter model.Duration `yaml:"held_after"`
	// FailedFor: how long NodeHealerRunFailed stays after a failed run
	// (default 1h).
	FailedFor model.Duration `yaml:"failed_for"`
	// Remediating sends NodeHealerRemediating (severity info) while a
	// destructive runbook runs on a node.
	Remediating bool `yaml:"remediating"`
	// Interval between rounds (default 1m, 1s–10m); an alert ends three
	// intervals after the last round that saw it, unless resolved earlier.
	Interval model.Duration `yaml:"interval"`
	// ExternalURL is how people reach the receiver: alerts link to
	// EXTERNAL_URL/api/v1/runs/ID (generatorURL).
	ExternalURL string `yaml:"external_url"`
	// RunbookURL is the page each alert's runbook_url points into
	// (default: the project's README, section "Alerts node-healer sends").
	RunbookURL string `yaml:"runbook_url"`
}

// DefaultNotifyRunbookURL documents node-healer's own alerts.
const DefaultNotifyRunbookURL = "https://github.com/node-healer/node-healer/blob/main/README.md"

func (n *Notify) setDefaults() {
	if n.HeldAfter == 0 {
		n.HeldAfter = model.Duration(10 * time.Minute)
	}
	if n.FailedFor == 0 {
		n.FailedFor = model.Duration(time.Hour)
	}
	if n.Interval == 0 {
		n.Interval = model.Duration(time.Minute)
	}
	if n.RunbookURL == "" {
		n.RunbookURL = DefaultNotifyRunbookURL
	}
}

func (n *Notify) validate() error {
	if i := time.Duration(n.Interval); i < time.Second || i > 10*time.Minute {
		return fmt.Errorf("notify.interval: %s is outside 1s–10m", i)
	}
	if n.HeldAfter < 0 || n.FailedFor < 0 {
		return fmt.Errorf("notify.held_after and notify.failed_for must be positive")
	}
	for field, raw := range map[string]string{"notify.external_url": n.ExternalURL, "notify.runbook_url": n.RunbookURL} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s: %q is not an http(s) URL", field, raw)
		}
	}
	return nil
}
