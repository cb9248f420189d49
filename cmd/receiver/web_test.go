package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/node-healer/node-healer/internal/testenv"
)

// webUser and webPassword are the web configuration's basic auth user;
// webPasswordHash is bcrypt("s3cret-pass", cost 4: fast tests).
const (
	webUser         = "alertmanager"
	webPassword     = "s3cret-pass"
	webPasswordHash = "$2a$04$FElQif/IFesl0kGcU9NfT.y4/btCMX22kkhKof/HPkRnkuRj5jgVu"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 (usable as its
// own CA) and its key as name.crt and name.key in dir.
func selfSigned(t *testing.T, dir, name string) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	// Replace in place by rename, as a Secret volume update does.
	for file, data := range map[string][]byte{name + ".key": keyPEM, name + ".crt": certPEM} {
		tmp := filepath.Join(dir, "."+file+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, file)); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pair
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// newTLSClient trusts roots, presents cert when given, and opens a new
// connection (a new handshake) for every request.
func newTLSClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
}

type webReq struct {
	method, path, body string
	user, pass         string // basic auth when user is set
	bearer             string
}

// do sends r and returns the status, the body and the server certificate's
// common name.
func (r webReq) do(t *testing.T, c *http.Client, base string) (int, string, string, error) {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	req, err := http.NewRequest(r.method, base+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	if r.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	cn := ""
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		cn = resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	return resp.StatusCode, string(b), cn, nil
}

// TestWebConfig: a receiver behind a web configuration file with TLS and
// basic auth. Every endpoint needs the basic auth user; /webhook needs
// the bearer token on top; the file is re-read per request and per
// handshake, so a rewritten file (users removed, client certificates
// required) and replaced certificates apply without a restart.
func TestWebConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("needs redis-server, kube-apiserver and kwok (integration)")
	}
	dir := t.TempDir()
	serverA, _ := selfSigned(t, dir, "server")
	_, clientPair := selfSigned(t, dir, "client")
	roots := x509.NewCertPool()
	roots.AddCert(serverA)
	webConfig := filepath.Join(dir, "web.yml")
	writeFile(t, webConfig, fmt.Sprintf("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  %s: %s\n", webUser, webPasswordHash))

	client := newTLSClient(roots, nil)
	rec, _ := startReceiverSetup(t, fmt.Sprintf("redis: {url: %q}", testenv.NewRedis(t).URL(0)), "", defaultRoutes, "web", receiverSetup{
		Options: func(o *serveOptions) { o.WebConfigFile = webConfig },
		Scheme:  "https", Client: client,
		Request: func(r *http.Request) { r.SetBasicAuth(webUser, webPassword) },
	})
	createNodes(t, "web-n1")
	alert := amPayload("NodeRehearsal", "web-n1", "fp-web-1")

	check := func(what string, c *http.Client, r webReq, want int) string {
		t.Helper()
		code, body, cn, err := r.do(t, c, rec.URL)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if code != want {
			t.Errorf("%s: %d %s, want %d", what, code, body, want)
		}
		return cn
	}
	good := webReq{user: webUser, pass: webPassword}
	for _, path := range []string{"/api/v1/runs", "/metrics", "/api/v1/status", "/-/healthy", "/-/ready"} {
		r := good
		r.path = path
		check(path+" good credentials", client, r, 200)
		r.pass = "wrong"
		check(path+" bad password", client, r, 401)
		check(path+" no credentials", client, webReq{path: path}, 401)
	}
	if cn := check("server certificate", client, webReq{path: "/api/v1/runs", user: webUser, pass: webPassword}, 200); cn != "server" {
		t.Errorf("server certificate %q, want server", cn)
	}

	// Not TLS, or TLS without trusting the server: no answer from node-healer.
	if code, body, _, err := (webReq{path: "/api/v1/runs", user: webUser, pass: webPassword}).do(t, http.DefaultClient, strings.Replace(rec.URL, "https://", "http://", 1)); err == nil && code != 400 {
		t.Errorf("plain HTTP to the TLS listener: %d %s, want 400 or an error", code, body)
	}
	if _, _, _, err := good.do(t, newTLSClient(x509.NewCertPool(), nil), rec.URL+"/api/v1/runs"); err == nil {
		t.Error("a client that does not trust the certificate connected")
	}

	// /webhook: the web configuration's user, and the bearer token on top.
	wh := webReq{method: http.MethodPost, path: "/webhook", body: alert}
	r := wh
	r.user, r.pass = webUser, webPassword
	check("webhook with basic auth but no bearer token", client, r, 401)
	r = wh
	r.bearer = token
	check("webhook with the bearer token but no basic auth", client, r, 401)

	// The web configuration is re-read per request: without
	// basic_auth_users, reads are open (TLS only) and the webhook needs the
	// bearer token alone.
	writeFile(t, webConfig, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
	check("runs without basic_auth_users", client, webReq{path: "/api/v1/runs"}, 200)
	check("webhook without the bearer token", client, wh, 401)
	check("webhook with the bearer token", client, r, 200)

	// Certificate reload: replace the files; the next handshake serves the
	// new certificate.
	serverB, _ := selfSigned(t, dir, "server")
	roots.AddCert(serverB)
	client = newTLSClient(roots, nil)
	if serverB.SerialNumber.Cmp(serverA.SerialNumber) == 0 {
		t.Fatal("same serial")
	}
	code, body, _, err := webReq{path: "/api/v1/runs"}.do(t, client, rec.URL)
	if err != nil || code != 200 {
		t.Fatalf("after the certificate change: %d %s %v", code, body, err)
	}
	req, _ := http.NewRequest(http.MethodGet, rec.URL+"/-/healthy", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(serverB.SerialNumber) != 0 {
		t.Errorf("server certificate serial %v after the replacement, want the new one %v (old %v)", got, serverB.SerialNumber, serverA.SerialNumber)
	}

	// Client certificates, required by the rewritten file.
	writeFile(t, webConfig, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client.crt\n")
	if _, _, _, err := (webReq{path: "/api/v1/runs"}).do(t, client, rec.URL); err == nil {
		t.Error("a client without a certificate connected although client certificates are required")
	}
	withCert := newTLSClient(roots, &clientPair)
	check("runs with a client certificate", withCert, webReq{path: "/api/v1/runs"}, 200)
	check("webhook with a client certificate but no bearer token", withCert, wh, 401)
}

// TestWebConfigExample: examples/web-config.yml is a valid web
// configuration once its files exist.
func TestWebConfigExample(t *testing.T) {
	dir := t.TempDir()
	selfSigned(t, dir, "tls")
	selfSigned(t, dir, "ca")
	b, err := os.ReadFile("../../examples/web-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("/etc/node-healer/tls/tls.key", filepath.Join(dir, "tls.key"),
		"/etc/node-healer/tls/tls.crt", filepath.Join(dir, "tls.crt"), "/etc/node-healer/tls/ca.crt", filepath.Join(dir, "ca.crt")).Replace(string(b))
	if !strings.Contains(s, dir) {
		t.Fatal("example paths not found")
	}
	f := filepath.Join(dir, "web.yml")
	writeFile(t, f, s)
	if err := web.Validate(f); err != nil {
		t.Fatal(err)
	}
}
