package config

// Alertmanagers: where silences are read, configured the way Prometheus
// configures its Alertmanagers (alerting.alertmanagers), with the HTTP
// client settings of github.com/prometheus/common/config under one nested
// `http_config` key:
//
//	alertmanagers:
//	  - urls: [https://alertmanager-0:9093, https://alertmanager-1:9093]
//	    timeout: 5s
//	    http_config:
//	      basic_auth: {username: node-healer, password_file: am-password}
//	      tls_config: {ca_file: am-ca.pem}
//	  - static_configs: [{targets: ["am-a:9093", "am-b:9093"]}]
//	    scheme: https
//	    path_prefix: /alertmanager
//	    http_config: {authorization: {credentials_file: am-token}}
//
// The deprecated `alertmanager: {urls, bearer_token_file, timeout}` is
// still read for one release and mapped onto one entry of the new list
// (bearer_token_file becomes http_config.authorization.credentials_file).

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// DefaultAlertmanagerTimeout bounds one request to an Alertmanager.
const DefaultAlertmanagerTimeout = 5 * time.Second

// AlertmanagerConfig is one entry of `alertmanagers`: a set of
// Alertmanagers reached with the same HTTP client settings. Give either
// URLs or StaticConfigs (with Scheme and PathPrefix), not both.
type AlertmanagerConfig struct {
	// URLs are full base URLs, e.g. https://alertmanager-0:9093 or
	// http://monitoring/alertmanager (a path prefix is kept).
	URLs []string `yaml:"urls"`
	// StaticConfigs list host:port targets, as in Prometheus; each becomes
	// Scheme://target + PathPrefix.
	StaticConfigs []AlertmanagerStaticConfig `yaml:"static_configs"`
	// Scheme for StaticConfigs targets: http (default) or https.
	Scheme string `yaml:"scheme"`
	// PathPrefix for StaticConfigs targets, e.g. /alertmanager.
	PathPrefix string `yaml:"path_prefix"`
	// Timeout bounds each request (default 5s).
	Timeout model.Duration `yaml:"timeout"`
	// HTTPConfig: authorization, basic_auth, oauth2, tls_config, proxy_url…
	// Secret files are read at each request, so they can be rotated.
	HTTPConfig HTTPClientConfig `yaml:"http_config"`

	endpoints []string
	alias     bool // mapped from the deprecated `alertmanager` section
}

// AlertmanagerStaticConfig is a list of host:port targets.
type AlertmanagerStaticConfig struct {
	Targets []string `yaml:"targets"`
}

// HTTPClientConfig is prometheus/common's HTTP client configuration. It
// is decoded strictly like the rest of the file; its checks run in
// validation so that errors name the field (alertmanagers[0].http_config).
// An absent http_config gets prometheus/common's defaults (follow
// redirects, HTTP/2).
type HTTPClientConfig struct {
	commoncfg.HTTPClientConfig `yaml:",inline"`

	set bool
}

// UnmarshalYAML applies prometheus/common's defaults, then decodes without
// running its Validate (done later, with the field's name).
func (h *HTTPClientConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain commoncfg.HTTPClientConfig
	h.HTTPClientConfig = commoncfg.DefaultHTTPClientConfig
	h.set = true
	if err := unmarshal((*plain)(&h.HTTPClientConfig)); err != nil {
		if _, ok := err.(*yaml.TypeError); ok {
			return err // keeps the line numbers
		}
		return fmt.Errorf("http_config: %w", err)
	}
	return nil
}

// MarshalYAML prints the wrapped configuration (secrets stay hidden).
func (h HTTPClientConfig) MarshalYAML() (any, error) { return h.HTTPClientConfig, nil }

// Endpoints are the Alertmanager base URLs of this entry: URLs as given,
// or one per static target. Set once the configuration is validated.
func (a *AlertmanagerConfig) Endpoints() []string { return a.endpoints }

// Alertmanager is the deprecated single `alertmanager:` section, kept for
// one release: it is mapped onto one `alertmanagers` entry.
type Alertmanager struct {
	URLs            []string       `yaml:"urls"`
	BearerTokenFile string         `yaml:"bearer_token_file"`
	Timeout         model.Duration `yaml:"timeout"`
}

// Deprecations say which deprecated settings the file uses and how to
// migrate them; check-config and serve print them as warnings.
func (c *Config) Deprecations() []string { return c.deprecations }

// migrateAlertmanager maps the deprecated `alertmanager` section onto
// `alertmanagers`, refusing a file that sets both.
func (c *Config) migrateAlertmanager() error {
	old := c.Alertmanager
	if old == nil {
		return nil
	}
	if c.Alertmanagers != nil {
		return errors.New("alertmanager: deprecated, and cannot be combined with alertmanagers: move alertmanager.urls, bearer_token_file and timeout into an alertmanagers entry (see the migration note in the README)")
	}
	shown := make([]string, len(old.URLs))
	for i, u := range old.URLs {
		// As before: user:password@ in these URLs is still accepted.
		if err := checkBaseURL(u, true); err != nil {
			return fmt.Errorf("alertmanager.urls[%d]: %w", i, err)
		}
		pu, _ := url.Parse(strings.TrimSpace(u))
		shown[i] = pu.Redacted()
	}
	c.Alertmanager = nil
	if len(old.URLs) == 0 {
		if old.BearerTokenFile != "" {
			return errors.New("alertmanager.bearer_token_file: set without alertmanager.urls")
		}
		// Silences were not checked, and still are not.
		c.deprecations = append(c.deprecations, "alertmanager: deprecated, will be removed in the next release; it has no URL: delete it (silences are not checked without alertmanagers)")
		return nil
	}
	// One line (it goes into logs), valid YAML to paste.
	entry := []string{fmt.Sprintf("urls: [%s]", strings.Join(shown, ", "))}
	if old.Timeout != 0 {
		entry = append(entry, "timeout: "+old.Timeout.String())
	}
	if old.BearerTokenFile != "" {
		entry = append(entry, fmt.Sprintf("http_config: {authorization: {credentials_file: %q}}", old.BearerTokenFile))
	}
	c.deprecations = append(c.deprecations, "alertmanager: deprecated, will be removed in the next release; write instead: "+
		"alertmanagers: [{"+strings.Join(entry, ", ")+"}]")
	a := &AlertmanagerConfig{URLs: old.URLs, Timeout: old.Timeout, alias: true}
	a.HTTPConfig.HTTPClientConfig = commoncfg.DefaultHTTPClientConfig
	a.HTTPConfig.set = true
	if old.BearerTokenFile != "" {
		a.HTTPConfig.Authorization = &commoncfg.Authorization{Type: "Bearer", CredentialsFile: old.BearerTokenFile}
	}
	c.Alertmanagers = []*AlertmanagerConfig{a}
	return nil
}

func (c *Config) setAlertmanagerDefaults() {
	for _, a := range c.Alertmanagers {
		if a == nil {
			continue
		}
		if a.Timeout == 0 {
			a.Timeout = model.Duration(DefaultAlertmanagerTimeout)
		}
		if len(a.StaticConfigs) > 0 && a.Scheme == "" {
			a.Scheme = "http"
		}
		if !a.HTTPConfig.set {
			a.HTTPConfig.HTTPClientConfig = commoncfg.DefaultHTTPClientConfig
			a.HTTPConfig.set = true
		}
	}
}

// validateAlertmanagers checks every entry and computes its endpoints.
// Relative file paths in http_config are resolved against baseDir; no
// secret file is read here (prometheus/common reads them per request).
func (c *Config) validateAlertmanagers(baseDir string) error {
	for i, a := range c.Alertmanagers {
		field := fmt.Sprintf("alertmanagers[%d]", i)
		if a != nil && a.alias {
			field = "alertmanager"
		}
		if a == nil {
			return fmt.Errorf("%s: empty entry", field)
		}
		if err := a.validate(field, baseDir); err != nil {
			return err
		}
	}
	return nil
}

func (a *AlertmanagerConfig) validate(field, baseDir string) error {
	switch {
	case len(a.URLs) == 0 && len(a.StaticConfigs) == 0:
		return fmt.Errorf("%s: set urls or static_configs", field)
	case len(a.URLs) > 0 && len(a.StaticConfigs) > 0:
		return fmt.Errorf("%s: urls and static_configs are exclusive", field)
	}
	if time.Duration(a.Timeout) < 10*time.Millisecond {
		return fmt.Errorf("%s.timeout: must be at least 10ms, got %s", field, a.Timeout)
	}
	a.endpoints = nil
	if len(a.URLs) > 0 {
		if a.Scheme != "" || a.PathPrefix != "" {
			return fmt.Errorf("%s: scheme and path_prefix apply to static_configs only; with urls put them in each URL", field)
		}
		for j, u := range a.URLs {
			if err := checkBaseURL(u, a.alias); err != nil {
				return fmt.Errorf("%s.urls[%d]: %w", field, j, err)
			}
			a.endpoints = append(a.endpoints, strings.TrimSpace(u))
		}
	} else {
		if a.Scheme != "http" && a.Scheme != "https" {
			return fmt.Errorf("%s.scheme: want http or https, got %q", field, a.Scheme)
		}
		prefix := strings.Trim(a.PathPrefix, "/")
		if prefix != "" {
			prefix = "/" + prefix
		}
		for k, sc := range a.StaticConfigs {
			if len(sc.Targets) == 0 {
				return fmt.Errorf("%s.static_configs[%d].targets: at least one host:port is required", field, k)
			}
			for j, t := range sc.Targets {
				if _, _, err := net.SplitHostPort(t); err != nil || strings.Contains(t, "/") {
					return fmt.Errorf("%s.static_configs[%d].targets[%d]: %q is not host:port", field, k, j, t)
				}
				u := a.Scheme + "://" + t + prefix
				if err := checkBaseURL(u, false); err != nil {
					return fmt.Errorf("%s.static_configs[%d].targets[%d]: %w", field, k, j, err)
				}
				a.endpoints = append(a.endpoints, u)
			}
		}
	}
	a.HTTPConfig.SetDirectory(baseDir)
	if err := a.HTTPConfig.Validate(); err != nil {
		return fmt.Errorf("%s.http_config: %w", field, err)
	}
	return nil
}

// checkBaseURL accepts http(s)://host[:port][/prefix] without a query,
// fragment or (unless allowUser) credentials, which go in http_config.
func checkBaseURL(raw string, allowUser bool) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch {
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%q is not an http(s) URL", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: no query or fragment", u.Redacted())
	case u.User != nil && !allowUser:
		return fmt.Errorf("%q: credentials belong in http_config.basic_auth, not in the URL", u.Redacted())
	}
	return nil
}
