package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// amRejections: one fixture per alertmanagers rule, with the message it
// must give (the field it names).
var amRejections = map[string]string{
	"bad.both.yml":              "alertmanager: deprecated, and cannot be combined with alertmanagers",
	"bad.http-config-auth.yml":  "alertmanagers[1].http_config: at most one of basic_auth, oauth2 & authorization must be configured",
	"bad.http-config-field.yml": "field pasword_file not found",
	"bad.http-config-tls.yml":   "http_config: exactly one of key or key_file must be configured when a client certificate is configured",
	"bad.no-urls.yml":           "alertmanagers[0]: set urls or static_configs",
	"bad.urls-and-static.yml":   "alertmanagers[0]: urls and static_configs are exclusive",
	"bad.url.yml":               `alertmanagers[0].urls[1]: "alertmanager-1:9093" is not an http(s) URL`,
	"bad.url-password.yml":      "alertmanagers[0].urls[0]: \"https://nh:xxxxx@alertmanager-0:9093\": credentials belong in http_config.basic_auth",
	"bad.target.yml":            `alertmanagers[0].static_configs[0].targets[1]: "http://am-b:9093" is not host:port`,
	"bad.scheme.yml":            `alertmanagers[0].scheme: want http or https, got "ftp"`,
	"bad.prefix-with-urls.yml":  "alertmanagers[0]: scheme and path_prefix apply to static_configs only",
	"bad.deprecated-url.yml":    `alertmanager.urls[0]: "alertmanager-0:9093" is not an http(s) URL`,
}

func TestAlertmanagerRejections(t *testing.T) {
	checkRejections(t, "testdata/alertmanager/bad.*.yml", amRejections)
}

func TestAlertmanagersURLs(t *testing.T) {
	// No secret file named here exists: prometheus/common reads them per
	// request, so loading (and check-config) does not need them.
	c, err := LoadFile("testdata/alertmanager/good.urls.yml", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Alertmanagers) != 1 || len(c.Deprecations()) != 0 || c.Alertmanager != nil {
		t.Fatalf("alertmanagers %+v, deprecations %q", c.Alertmanagers, c.Deprecations())
	}
	a := c.Alertmanagers[0]
	if want := []string{"https://alertmanager-0:9093", "https://alertmanager-1:9093/"}; !slices.Equal(a.Endpoints(), want) {
		t.Errorf("endpoints %q, want %q", a.Endpoints(), want)
	}
	if time.Duration(a.Timeout) != 3*time.Second {
		t.Errorf("timeout %s", a.Timeout)
	}
	h := a.HTTPConfig
	dir, _ := filepath.Abs("testdata/alertmanager")
	if got, want := h.BasicAuth.PasswordFile, filepath.Join("testdata/alertmanager", "secrets/am-password"); got != want {
		t.Errorf("password_file %q, want %q (relative to the config file); abs dir %s", got, want, dir)
	}
	if got, want := h.TLSConfig.CAFile, filepath.Join("testdata/alertmanager", "am-ca.pem"); got != want {
		t.Errorf("ca_file %q, want %q", got, want)
	}
	if h.TLSConfig.ServerName != "alertmanager" || h.ProxyURL.URL == nil || h.ProxyURL.Host != "proxy:3128" {
		t.Errorf("tls/proxy not decoded: %+v %v", h.TLSConfig, h.ProxyURL)
	}
	if !h.FollowRedirects || !h.EnableHTTP2 {
		t.Errorf("prometheus/common defaults not applied: %+v", h.HTTPClientConfig)
	}
}

func TestAlertmanagersStaticConfigs(t *testing.T) {
	c, err := LoadFile("testdata/alertmanager/good.static.yml", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Alertmanagers) != 2 {
		t.Fatalf("alertmanagers %+v", c.Alertmanagers)
	}
	a, b := c.Alertmanagers[0], c.Alertmanagers[1]
	want := []string{"https://am-a:9093/alertmanager", "https://am-b:9093/alertmanager", "https://10.0.0.7:9093/alertmanager"}
	if !slices.Equal(a.Endpoints(), want) {
		t.Errorf("endpoints %q, want %q", a.Endpoints(), want)
	}
	if au := a.HTTPConfig.Authorization; au == nil || au.Type != "Bearer" || au.CredentialsFile != "/etc/node-healer/am-token" {
		t.Errorf("authorization %+v", au)
	}
	if time.Duration(a.Timeout) != DefaultAlertmanagerTimeout {
		t.Errorf("timeout default %s", a.Timeout)
	}
	// No http_config: prometheus/common's defaults, no auth.
	if !slices.Equal(b.Endpoints(), []string{"http://am-plain:9093"}) || !b.HTTPConfig.FollowRedirects || b.HTTPConfig.Authorization != nil {
		t.Errorf("second entry %q %+v", b.Endpoints(), b.HTTPConfig.HTTPClientConfig)
	}
}

func TestAlertmanagerDeprecatedAlias(t *testing.T) {
	c, err := LoadFile("testdata/alertmanager/good.deprecated.yml", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if c.Alertmanager != nil || len(c.Alertmanagers) != 1 {
		t.Fatalf("not mapped: %+v %+v", c.Alertmanager, c.Alertmanagers)
	}
	a := c.Alertmanagers[0]
	if want := []string{"http://alertmanager-0:9093", "http://alertmanager-1:9093"}; !slices.Equal(a.Endpoints(), want) {
		t.Errorf("endpoints %q", a.Endpoints())
	}
	if time.Duration(a.Timeout) != 7*time.Second {
		t.Errorf("timeout %s", a.Timeout)
	}
	au := a.HTTPConfig.Authorization
	if au == nil || au.Type != "Bearer" || au.CredentialsFile != filepath.Join("testdata/alertmanager", "am-token") {
		t.Errorf("bearer_token_file not mapped: %+v", au)
	}
	d := c.Deprecations()
	if len(d) != 1 {
		t.Fatalf("deprecations %q", d)
	}
	// The warning shows the replacement, and the replacement parses to the
	// same thing.
	for _, s := range []string{"alertmanager: deprecated", "alertmanagers: [{", `credentials_file: "am-token"`, "timeout: 7s"} {
		if !strings.Contains(d[0], s) {
			t.Errorf("deprecation %q lacks %q", d[0], s)
		}
	}
	_, replacement, _ := strings.Cut(d[0], "write instead: ")
	data, err := os.ReadFile("testdata/alertmanager/good.deprecated.yml")
	if err != nil {
		t.Fatal(err)
	}
	base, _, _ := strings.Cut(string(data), "alertmanager:")
	c2, err := Parse([]byte(base+replacement+"\n"), "testdata/alertmanager", runbooks)
	if err != nil {
		t.Fatalf("suggested replacement does not parse: %v\n%s", err, replacement)
	}
	if len(c2.Deprecations()) != 0 || !slices.Equal(c2.Alertmanagers[0].Endpoints(), a.Endpoints()) ||
		c2.Alertmanagers[0].Timeout != a.Timeout || *c2.Alertmanagers[0].HTTPConfig.Authorization != *au {
		t.Errorf("replacement differs: %+v", c2.Alertmanagers[0])
	}

	// `alertmanager: {urls: []}` (silences off) still parses, still warned.
	c, err = LoadFile("testdata/alertmanager/good.deprecated-empty.yml", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Alertmanagers) != 0 || len(c.Deprecations()) != 1 || !strings.Contains(c.Deprecations()[0], "delete it") {
		t.Errorf("empty alias: %+v, %q", c.Alertmanagers, c.Deprecations())
	}

	// The old form took credentials in the URL: still does, never shown.
	c, err = Parse([]byte(base+"alertmanager: {urls: ['https://nh:hunter2@am:9093']}\n"), ".", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Deprecations(); len(d) != 1 || strings.Contains(d[0], "hunter2") || !strings.Contains(d[0], "https://nh:xxxxx@am:9093") {
		t.Errorf("deprecation %q", d)
	}
}

func TestAlertmanagerSecretsNotPrinted(t *testing.T) {
	data := `
webhook: {auth: {allow_unauthenticated: true}}
routes: [{name: r, matchers: ['a="b"'], runbook: cordon}]
alertmanagers:
  - urls: [http://am:9093]
    http_config: {basic_auth: {username: nh, password: hunter2}}
`
	c, err := Parse([]byte(data), ".", runbooks)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Alertmanagers[0].HTTPConfig.BasicAuth.Password) != "hunter2" {
		t.Fatal("inline password not decoded")
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "username: nh") {
		t.Fatalf("marshalled config:\n%s", out)
	}
}
