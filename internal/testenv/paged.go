package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Paged is a webhook receiver standing in for the humans Alertmanager
// routes node-healer's own alerts to: it records every alert of every
// notification with its status and group.
type Paged struct {
	mu     sync.Mutex
	groups map[string]bool // node + " " + groupKey of every alert delivered
	alerts []PagedAlert
	srv    *httptest.Server
}

// PagedAlert is one alert of a delivered notification.
type PagedAlert struct {
	Status   string            `json:"status"` // firing | resolved
	Labels   map[string]string `json:"labels"`
	GroupKey string            `json:"-"`
}

// Find returns the labels of a delivered alert with this status, name and
// node (nil if none).
func (p *Paged) Find(status, name, node string) map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.alerts {
		if a.Status == status && a.Labels["alertname"] == name && a.Labels["node"] == node {
			return a.Labels
		}
	}
	return nil
}

// Groups counts the distinct notification groups node's alerts came in.
func (p *Paged) Groups(node string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k := range p.groups {
		if len(k) > len(node) && k[:len(node)+1] == node+" " {
			n++
		}
	}
	return n
}

// PagedAlertmanagerConfig routes source="node-healer" to the webhook at
// url (send_resolved, short timers) and everything else nowhere.
func PagedAlertmanagerConfig(url string) string {
	return fmt.Sprintf(`route:
  receiver: "null"
  group_by: [alertname, node]
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 1h
  routes:
    - matchers: ['source="node-healer"']
      receiver: humans
receivers:
  - name: "null"
  - name: humans
    webhook_configs: [{url: %q, send_resolved: true}]
`, url)
}

// NewPagedAlertmanager starts the humans' webhook and a real Alertmanager
// routing node-healer's alerts to it; both stop when the test ends.
func NewPagedAlertmanager(t testing.TB) (*Paged, *Alertmanager) {
	t.Helper()
	p := &Paged{groups: map[string]bool{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n struct {
			GroupKey string       `json:"groupKey"`
			Alerts   []PagedAlert `json:"alerts"`
		}
		b, _ := io.ReadAll(r.Body)
		if json.Unmarshal(b, &n) != nil {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, a := range n.Alerts {
			a.GroupKey = n.GroupKey
			p.groups[a.Labels["node"]+" "+n.GroupKey] = true
			p.alerts = append(p.alerts, a)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p, NewAlertmanager(t, PagedAlertmanagerConfig(p.srv.URL))
}
