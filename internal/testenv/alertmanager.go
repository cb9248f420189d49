package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"golang.org/x/crypto/bcrypt"
)

// DefaultAlertmanagerConfig routes every alert to a receiver that sends
// nothing: enough for silence tests.
const DefaultAlertmanagerConfig = `route:
  receiver: "null"
receivers:
  - name: "null"
`

// Alertmanager is a real alertmanager process (clustering off) on a free
// loopback port, with its config and storage in a private folder.
type Alertmanager struct {
	// URL is the base URL, http://127.0.0.1:PORT (https:// behind TLS).
	URL string

	bin, dir string
	port     int
	http     *http.Client
	web      bool // --web.config.file written

	mu sync.Mutex
	p  *proc
}

// AlertmanagerOptions configure StartAlertmanagerWith.
type AlertmanagerOptions struct {
	// Config is alertmanager.yml (DefaultAlertmanagerConfig if empty).
	Config string
	// Web, when set, puts the Alertmanager behind TLS and/or basic auth.
	Web *AlertmanagerWeb
}

// AlertmanagerWeb is Alertmanager's own --web.config.file
// (exporter-toolkit): TLS with a certificate for 127.0.0.1 and bcrypt
// basic auth on every endpoint, /-/ready and the API included.
type AlertmanagerWeb struct {
	// CA's server certificate (127.0.0.1, localhost) is served; nil:
	// plain HTTP.
	CA *TestCA
	// Users maps usernames to passwords (hashed with bcrypt into
	// basic_auth_users). Empty: no authentication. testenv itself (ready
	// check, AddSilence…) logs in as the first user in name order.
	Users map[string]string
}

// StartAlertmanager writes configYAML (DefaultAlertmanagerConfig if empty)
// into dir, starts alertmanager with its storage there and waits until
// /-/ready answers. The binary comes from ToolPath("alertmanager").
func StartAlertmanager(ctx context.Context, dir, configYAML string) (*Alertmanager, error) {
	return StartAlertmanagerWith(ctx, dir, AlertmanagerOptions{Config: configYAML})
}

// StartAlertmanagerWith is StartAlertmanager with options (TLS, basic auth).
func StartAlertmanagerWith(ctx context.Context, dir string, o AlertmanagerOptions) (*Alertmanager, error) {
	bin, err := ToolPath("alertmanager")
	if err != nil {
		return nil, err
	}
	if o.Config == "" {
		o.Config = DefaultAlertmanagerConfig
	}
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(o.Config), 0o644); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	am := &Alertmanager{
		URL:  "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		bin:  bin,
		dir:  dir,
		port: port,
		http: &http.Client{Timeout: 10 * time.Second},
	}
	if o.Web != nil {
		if err := am.writeWebConfig(*o.Web); err != nil {
			return nil, err
		}
	}
	if err := am.start(ctx); err != nil {
		return nil, err
	}
	return am, nil
}

// writeWebConfig writes web.yml and sets up testenv's own client for it.
func (am *Alertmanager) writeWebConfig(w AlertmanagerWeb) error {
	type tlsServer struct {
		CertFile string `json:"cert_file"`
		KeyFile  string `json:"key_file"`
	}
	var web struct {
		TLS   *tlsServer        `json:"tls_server_config,omitempty"`
		Users map[string]string `json:"basic_auth_users,omitempty"`
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if w.CA != nil {
		web.TLS = &tlsServer{CertFile: w.CA.CertFile, KeyFile: w.CA.KeyFile}
		pemBytes, err := os.ReadFile(w.CA.CAFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("%s: no PEM certificate", w.CA.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		am.URL = "https://" + strings.TrimPrefix(am.URL, "http://")
	}
	var rt http.RoundTripper = tr
	if len(w.Users) > 0 {
		web.Users = map[string]string{}
		for u, pw := range w.Users {
			h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
			if err != nil {
				return err
			}
			web.Users[u] = string(h)
		}
		names := slices.Sorted(maps.Keys(w.Users))
		rt = basicAuthRT{user: names[0], password: w.Users[names[0]], next: tr}
	}
	am.http = &http.Client{Timeout: 10 * time.Second, Transport: rt}
	// JSON is YAML: exporter-toolkit reads it as is.
	b, err := json.MarshalIndent(web, "", "  ")
	if err != nil {
		return err
	}
	am.web = true
	return os.WriteFile(filepath.Join(am.dir, "web.yml"), b, 0o600)
}

// basicAuthRT adds HTTP basic auth to every request.
type basicAuthRT struct {
	user, password string
	next           http.RoundTripper
}

func (b basicAuthRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return b.next.RoundTrip(r)
}

func (am *Alertmanager) start(ctx context.Context) error {
	args := []string{
		"--config.file=" + filepath.Join(am.dir, "alertmanager.yml"),
		"--storage.path=" + filepath.Join(am.dir, "data"),
		"--web.listen-address=" + net.JoinHostPort("127.0.0.1", strconv.Itoa(am.port)),
		"--cluster.listen-address=", // empty: no gossip, no second port
		"--log.level=info",
	}
	if am.web {
		args = append(args, "--web.config.file="+filepath.Join(am.dir, "web.yml"))
	}
	p, err := startProc("alertmanager", am.bin, args, filepath.Join(am.dir, "alertmanager.log"))
	if err != nil {
		return err
	}
	if err := p.waitUntil(ctx, 30*time.Second, am.ready); err != nil {
		p.stop(5 * time.Second)
		return err
	}
	am.mu.Lock()
	am.p = p
	am.mu.Unlock()
	return nil
}

func (am *Alertmanager) ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, am.URL+"/-/ready", nil)
	if err != nil {
		return err
	}
	resp, err := am.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /-/ready: %s", resp.Status)
	}
	return nil
}

// Stop terminates the process (SIGTERM, so it writes its silence snapshot;
// killed after 10 s) and returns once it has exited and the port is closed.
// Stopping a stopped Alertmanager does nothing.
func (am *Alertmanager) Stop() {
	am.mu.Lock()
	p := am.p
	am.p = nil
	am.mu.Unlock()
	p.stop(10 * time.Second)
}

// Restart stops the process if it runs and starts it again on the same
// port with the same config and storage, so silences survive.
func (am *Alertmanager) Restart() error {
	am.Stop()
	return am.start(context.Background())
}

// apiMatcher is a matcher in the Alertmanager API v2 JSON.
type apiMatcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex"`
	IsEqual bool   `json:"isEqual"`
}

// AddSilence creates a silence through the API v2, starting now and lasting
// duration. matchers use Alertmanager syntax, one per element, e.g.
// `node="n1"` or `alertname=~"Node.*"`. It returns the silence ID.
func (am *Alertmanager) AddSilence(ctx context.Context, matchers []string, duration time.Duration, comment string) (string, error) {
	if len(matchers) == 0 {
		return "", errors.New("AddSilence: no matchers")
	}
	ms := make([]apiMatcher, 0, len(matchers))
	for _, s := range matchers {
		m, err := labels.ParseMatcher(s)
		if err != nil {
			return "", fmt.Errorf("AddSilence: matcher %q: %w", s, err)
		}
		ms = append(ms, apiMatcher{
			Name:    m.Name,
			Value:   m.Value,
			IsRegex: m.Type == labels.MatchRegexp || m.Type == labels.MatchNotRegexp,
			IsEqual: m.Type == labels.MatchEqual || m.Type == labels.MatchRegexp,
		})
	}
	now := time.Now().UTC()
	body, err := json.Marshal(map[string]any{
		"matchers":  ms,
		"startsAt":  now.Format(time.RFC3339Nano),
		"endsAt":    now.Add(duration).Format(time.RFC3339Nano),
		"createdBy": "testenv",
		"comment":   comment,
	})
	if err != nil {
		return "", err
	}
	var out struct {
		SilenceID string `json:"silenceID"`
	}
	if err := am.do(ctx, http.MethodPost, "/api/v2/silences", body, &out); err != nil {
		return "", fmt.Errorf("AddSilence: %w", err)
	}
	if out.SilenceID == "" {
		return "", errors.New("AddSilence: no silenceID in the answer")
	}
	return out.SilenceID, nil
}

// ExpireSilence expires the silence with this ID now.
func (am *Alertmanager) ExpireSilence(ctx context.Context, id string) error {
	if err := am.do(ctx, http.MethodDelete, "/api/v2/silence/"+url.PathEscape(id), nil, nil); err != nil {
		return fmt.Errorf("ExpireSilence %s: %w", id, err)
	}
	return nil
}

// do sends one API request; a non-2xx answer is an error carrying the body.
func (am *Alertmanager) do(ctx context.Context, method, path string, body []byte, out any) error {
	return doJSON(ctx, am.http, method, am.URL, path, body, out)
}

// LogTail returns the last n lines of the alertmanager log.
func (am *Alertmanager) LogTail(n int) string {
	return tailFile(filepath.Join(am.dir, "alertmanager.log"), n)
}
