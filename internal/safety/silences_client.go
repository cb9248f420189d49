package safety

// Reading silences from Alertmanager's API v2.
//
// Plain net/http and a five-field JSON struct rather than the generated
// client (github.com/prometheus/alertmanager/api/v2/client): that client
// pulls go-openapi runtime, strfmt, validate, errors, loads, spec and
// analysis into go.mod for one GET, and its `filter` parameter would not
// help anyway: Alertmanager's silence filter selects silences that contain
// the given matchers, not silences that match a label set. So the whole
// list is fetched (one request per Alertmanager per cache TTL, shared by
// every check) and matched here with Alertmanager's own pkg/labels.
//
// The HTTP client (auth, TLS, proxy) is prometheus/common's, built from
// the same http_config Prometheus uses for its Alertmanagers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"

	"github.com/node-healer/node-healer/internal/config"
)

// maxSilencesBody bounds one /api/v2/silences answer.
const maxSilencesBody = 64 << 20

// apiSilence is the part of a GettableSilence that matters here.
type apiSilence struct {
	ID     string `json:"id"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	Matchers  []apiMatcher `json:"matchers"`
	EndsAt    time.Time    `json:"endsAt"`
	CreatedBy string       `json:"createdBy"`
	Comment   string       `json:"comment"`
}

type apiMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual *bool  `json:"isEqual"`
}

// Request results, the `result` label of node_healer_alertmanager_requests_total.
const (
	amResultSuccess = "success"
	amResultError   = "error"
)

// AlertmanagerSet is a set of Alertmanagers reached with the same HTTP
// client settings.
type AlertmanagerSet struct {
	// URLs, e.g. https://alertmanager-0:9093 (a path prefix is kept).
	URLs []string
	// HTTPConfig: authorization, basic_auth, oauth2, tls_config, proxy…,
	// built by prometheus/common (config.NewClientFromConfig). Secret
	// files are read at each request, so rotated credentials work; the CA
	// file is re-read when it changes. The zero value: no auth, system
	// roots, redirects not followed.
	HTTPConfig commoncfg.HTTPClientConfig
	// Timeout bounds each request (default: SilencesConfig.Timeout).
	Timeout time.Duration
}

// AlertmanagerSets maps the configuration's alertmanagers entries (already
// validated: endpoints resolved, relative paths joined) to sets.
func AlertmanagerSets(ams []*config.AlertmanagerConfig) []AlertmanagerSet {
	sets := make([]AlertmanagerSet, 0, len(ams))
	for _, a := range ams {
		sets = append(sets, AlertmanagerSet{URLs: a.Endpoints(), HTTPConfig: a.HTTPConfig.HTTPClientConfig, Timeout: time.Duration(a.Timeout)})
	}
	return sets
}

// amClientName names the HTTP client (prometheus/common's connection
// tracking label).
const amClientName = "node-healer-alertmanager"

// amClient counts the requests of every endpoint.
type amClient struct {
	ok, failed prometheus.Counter
}

func newAMClient(cfg SilencesConfig) (*amClient, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "node_healer_alertmanager_requests_total",
		Help: "Requests to Alertmanager for silences, by result (success, error).",
	}, []string{"result"})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(vec); err != nil {
			are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
			if !ok {
				return nil, fmt.Errorf("silences: register metrics: %w", err)
			}
			prev, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("silences: register metrics: %w", err)
			}
			vec = prev
		}
	}
	return &amClient{ok: vec.WithLabelValues(amResultSuccess), failed: vec.WithLabelValues(amResultError)}, nil
}

// fetch GETs e's /api/v2/silences and returns the active silences.
func (c *amClient) fetch(ctx context.Context, e *amEndpoint) ([]amSilence, error) {
	sils, err := e.get(ctx)
	if err != nil {
		c.failed.Inc()
		return nil, err
	}
	c.ok.Inc()
	return sils, nil
}

func (e *amEndpoint) get(ctx context.Context) ([]amSilence, error) {
	var all []apiSilence
	if err := e.getJSON(ctx, "/api/v2/silences", maxSilencesBody, &all); err != nil {
		return nil, err
	}
	var active []amSilence
	for _, a := range all {
		if a.Status.State == "active" {
			active = append(active, compileSilence(a))
		}
	}
	return active, nil
}

// getJSON GETs path (with its query) from e within e's timeout and decodes
// at most limit bytes of a 200 answer into out; any other answer is an
// error carrying the status and the start of the body.
func (e *amEndpoint) getJSON(ctx context.Context, path string, limit int64, out any) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	name := path
	if i := strings.IndexByte(name, '?'); i >= 0 {
		name = name[:i]
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", name, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: decode: %w", name, err)
	}
	return nil
}

// newAMEndpoints builds one endpoint per distinct URL of cfg.URLs and
// cfg.Alertmanagers, with one HTTP client per set.
func newAMEndpoints(cfg SilencesConfig) ([]*amEndpoint, error) {
	sets := cfg.Alertmanagers
	if len(cfg.URLs) > 0 {
		sets = append([]AlertmanagerSet{{URLs: cfg.URLs, HTTPConfig: commoncfg.DefaultHTTPClientConfig}}, sets...)
	}
	var eps []*amEndpoint
	seen := map[string]bool{}
	for _, set := range sets {
		if len(set.URLs) == 0 {
			continue
		}
		hc := set.HTTPConfig
		if err := hc.Validate(); err != nil {
			return nil, fmt.Errorf("silences: Alertmanagers %s: %w", strings.Join(set.URLs, ","), err)
		}
		client, err := commoncfg.NewClientFromConfig(hc, amClientName)
		if err != nil {
			return nil, fmt.Errorf("silences: Alertmanagers %s: HTTP client: %w", strings.Join(set.URLs, ","), err)
		}
		timeout := set.Timeout
		if timeout <= 0 {
			timeout = cfg.Timeout
		}
		for _, raw := range set.URLs {
			e, err := newAMEndpoint(raw)
			if err != nil {
				return nil, err
			}
			if seen[e.base] {
				continue // the first set that names it wins
			}
			seen[e.base] = true
			e.http, e.timeout = client, timeout
			eps = append(eps, e)
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("silences: no Alertmanager URL")
	}
	return eps, nil
}

// amEndpoint is one Alertmanager and its cached answer.
type amEndpoint struct {
	base     string        // URL without a trailing slash
	redacted string        // for logs and errors: no password
	slot     chan struct{} // one fetch at a time; others wait and reuse it
	http     *http.Client  // shared by the endpoints of one AlertmanagerSet
	timeout  time.Duration

	mu      sync.Mutex
	fetched time.Time // zero: never
	sils    []amSilence
	err     error
	down    bool // last fetch failed (logged on change)
}

func newAMEndpoint(raw string) (*amEndpoint, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("silences: Alertmanager URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("silences: Alertmanager URL %q: want http(s)://host[:port][/prefix]", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("silences: Alertmanager URL %q: no query or fragment", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return &amEndpoint{base: u.String(), redacted: u.Redacted(), slot: make(chan struct{}, 1)}, nil
}

// cached returns the cached answer if it is younger than ttl.
func (e *amEndpoint) cached(now time.Time, ttl time.Duration) ([]amSilence, error, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fetched.IsZero() || now.Sub(e.fetched) >= ttl {
		return nil, nil, false
	}
	return e.sils, e.err, true
}

// silencesOf returns e's active silences, from the cache or a fresh request.
func (s *Silences) silencesOf(ctx context.Context, e *amEndpoint) ([]amSilence, error) {
	if sils, err, ok := e.cached(s.now(), s.ttl); ok {
		return sils, err
	}
	select {
	case e.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-e.slot }()
	// Another caller may have fetched while this one waited.
	if sils, err, ok := e.cached(s.now(), s.ttl); ok {
		return sils, err
	}
	sils, err := s.client.fetch(ctx, e)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err() // the caller gave up: says nothing about Alertmanager
	}
	if err != nil {
		err = fmt.Errorf("alertmanager %s: %w", e.redacted, err)
	}
	e.mu.Lock()
	e.fetched, e.sils, e.err = s.now(), sils, err
	wasDown := e.down
	e.down = err != nil
	e.mu.Unlock()
	switch {
	case err != nil && !wasDown:
		s.log.Warn("alertmanager unreachable for silences", "url", e.redacted, "err", err)
	case err == nil && wasDown:
		s.log.Info("alertmanager reachable again for silences", "url", e.redacted)
	}
	return sils, err
}

// active returns the active silences of every Alertmanager that answered.
// It fails with ErrSilencesUnavailable only when none did.
func (s *Silences) active(ctx context.Context) ([]amSilence, error) {
	if len(s.endpoints) == 1 {
		sils, err := s.silencesOf(ctx, s.endpoints[0])
		return sils, s.unavailable(ctx, []error{err})
	}
	type answer struct {
		sils []amSilence
		err  error
	}
	answers := make([]answer, len(s.endpoints))
	var wg sync.WaitGroup
	for i, e := range s.endpoints {
		wg.Go(func() {
			sils, err := s.silencesOf(ctx, e)
			answers[i] = answer{sils, err}
		})
	}
	wg.Wait()
	var (
		all      []amSilence
		errs     []error
		answered bool
	)
	for _, a := range answers {
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		answered = true
		all = append(all, a.sils...)
	}
	if answered {
		return all, nil
	}
	return nil, s.unavailable(ctx, errs)
}

// unavailable wraps the errors of an all-failed query; nil if errs are nil.
func (s *Silences) unavailable(ctx context.Context, errs []error) error {
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrSilencesUnavailable, ctx.Err())
	}
	return fmt.Errorf("%w: %w", ErrSilencesUnavailable, err)
}
