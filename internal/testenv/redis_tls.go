package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCA is a throw-away certificate authority with one server
// certificate for 127.0.0.1 and localhost, as PEM files in a directory.
type TestCA struct {
	CAFile, CertFile, KeyFile string
}

// NewTestCA writes ca.pem, server.pem and server-key.pem under dir/name.
func NewTestCA(dir, name string) (*TestCA, error) {
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node-healer test CA " + name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	ca := &TestCA{CAFile: filepath.Join(d, "ca.pem"), CertFile: filepath.Join(d, "server.pem"), KeyFile: filepath.Join(d, "server-key.pem")}
	for path, block := range map[string]*pem.Block{
		ca.CAFile:   {Type: "CERTIFICATE", Bytes: caDER},
		ca.CertFile: {Type: "CERTIFICATE", Bytes: der},
		ca.KeyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
	}
	return ca, nil
}

// RedisTLS is a redis-server that only speaks TLS, with a certificate
// from a TestCA; clients need no certificate of their own.
type RedisTLS struct {
	Addr string
	CA   *TestCA
	p    *proc
}

// StartRedisTLS starts redis-server with --port 0 and --tls-port on a free
// loopback port (Debian's redis-server is built with TLS).
func StartRedisTLS(dir string, ca *TestCA) (*RedisTLS, error) {
	bin, err := RedisServerPath()
	if err != nil {
		return nil, err
	}
	p, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &RedisTLS{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), CA: ca}
	r.p, err = startProc("redis-server (tls)", bin, []string{"--port", "0", "--tls-port", strconv.Itoa(p),
		"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
		"--tls-cert-file", ca.CertFile, "--tls-key-file", ca.KeyFile, "--tls-ca-cert-file", ca.CAFile,
		"--tls-auth-clients", "no"}, filepath.Join(dir, fmt.Sprintf("redis-tls-%d.log", p)))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(ca.CAFile)
	if err != nil {
		r.Stop()
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if err := r.p.waitOwn(&redis.Options{Addr: r.Addr, TLSConfig: tlsConf}, 10*time.Second); err != nil {
		r.Stop()
		return nil, r.p.fail(err)
	}
	return r, nil
}

// URL is the rediss:// URL for database db.
func (r *RedisTLS) URL(db int) string { return fmt.Sprintf("rediss://%s/%d", r.Addr, db) }

// Stop kills the server.
func (r *RedisTLS) Stop() { r.p.stop(0) }
