package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Alert is one alert of an Alertmanager webhook (version 4) payload.
type Alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Fingerprint string            `json:"fingerprint"`
}

// NodeAlert is a firing alert on node that node-healer's reboot route
// matches (node_healer="true", remediation="reboot"), with a fingerprint
// unique to (name, node) as Alertmanager's would be.
func NodeAlert(name, node string, startsAt time.Time) Alert {
	return Alert{
		Status: "firing",
		Labels: map[string]string{"alertname": name, "node": node, "node_healer": "true",
			"remediation": "reboot", "severity": "critical"},
		Annotations: map[string]string{"summary": name + " on " + node},
		StartsAt:    startsAt,
		Fingerprint: fmt.Sprintf("%016x", fnv64(name+"/"+node)),
	}
}

// Resolved is the alert as Alertmanager sends it once resolved.
func (a Alert) Resolved(at time.Time) Alert {
	a.Status, a.EndsAt = "resolved", at
	return a
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// Payload is an Alertmanager webhook body, as notify/webhook sends it.
func Payload(alerts []Alert) []byte {
	status := "resolved"
	for _, a := range alerts {
		if a.Status == "firing" {
			status = "firing"
		}
	}
	msg := map[string]any{
		"version": "4", "groupKey": `{}/{node_healer="true"}:{alertname="scale"}`, "truncatedAlerts": 0,
		"status": status, "receiver": "node-healer",
		"groupLabels": map[string]string{}, "commonLabels": map[string]string{}, "commonAnnotations": map[string]string{},
		"externalURL": "http://alertmanager.example:9093", "alerts": alerts,
	}
	b, _ := json.Marshal(msg)
	return b
}

// Batches splits alerts into payloads of at most n (Alertmanager's
// max_alerts).
func Batches(alerts []Alert, n int) [][]byte {
	var out [][]byte
	for i := 0; i < len(alerts); i += n {
		out = append(out, Payload(alerts[i:min(i+n, len(alerts))]))
	}
	return out
}

// Sender posts payloads to the replicas' webhooks (round robin, as a
// Service would spread Alertmanager's connections) and records latencies.
type Sender struct {
	URLs  []string
	Token string

	client *http.Client
	mu     sync.Mutex
	next   int
	byURL  map[string][]time.Duration // latencies per webhook
	codes  map[int]int
}

func NewSender(urls []string, token string) *Sender {
	return &Sender{URLs: urls, Token: token, codes: map[int]int{}, byURL: map[string][]time.Duration{},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// Post sends one payload and records its latency and status code.
func (s *Sender) Post(ctx context.Context, body []byte) (int, error) {
	s.mu.Lock()
	url := s.URLs[s.next%len(s.URLs)]
	s.next++
	s.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/webhook", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.Token)
	t0 := time.Now()
	resp, err := s.client.Do(req)
	code := 0
	if err == nil {
		code = resp.StatusCode
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	d := time.Since(t0)
	s.mu.Lock()
	s.byURL[url] = append(s.byURL[url], d)
	s.codes[code]++
	s.mu.Unlock()
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("webhook answered %d", code)
	}
	return code, err
}

// Spread posts the payloads spread evenly within window — payload i of n
// at i×window/n, so all n start inside it (3 payloads in a second: at 0,
// 333 and 667 ms), as bench/admission sends its storm — each in its own
// goroutine, as Alertmanager's notification pipelines are, and returns
// when all are answered. The first error is returned.
func (s *Sender) Spread(ctx context.Context, bodies [][]byte, window time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(bodies))
	start := time.Now()
	for i, b := range bodies {
		at := start.Add(window * time.Duration(i) / time.Duration(len(bodies)))
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() { _, errs[i] = s.Post(ctx, b) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Stats are the latencies recorded so far, sorted, and the status codes.
func (s *Sender) Stats() ([]time.Duration, map[int]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lat []time.Duration
	for _, l := range s.byURL {
		lat = append(lat, l...)
	}
	slices.Sort(lat)
	codes := map[int]int{}
	for k, v := range s.codes {
		codes[k] = v
	}
	return lat, codes
}

// PerURL are the latencies recorded so far for each webhook, sorted, in
// the order of URLs.
func (s *Sender) PerURL() [][]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]time.Duration, len(s.URLs))
	for i, u := range s.URLs {
		out[i] = slices.Clone(s.byURL[u])
		slices.Sort(out[i])
	}
	return out
}

// Reset forgets the recorded latencies and codes.
func (s *Sender) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes, s.byURL = map[int]int{}, map[string][]time.Duration{}
}
