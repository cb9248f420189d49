package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	promconfig "github.com/prometheus/common/config"
)

// validate checks the redis section: exactly one topology, each complete,
// and TLS settings that agree with the URL.
func (r *Redis) validate() error {
	const one = "set one of redis.url, redis.sentinel, redis.cluster"
	switch {
	case r.URL != "" && r.Sentinel != nil:
		return fmt.Errorf("redis.sentinel: cannot be combined with redis.url; %s", one)
	case r.URL != "" && r.Cluster != nil:
		return fmt.Errorf("redis.cluster: cannot be combined with redis.url; %s", one)
	case r.Sentinel != nil && r.Cluster != nil:
		return fmt.Errorf("redis.cluster: cannot be combined with redis.sentinel; %s", one)
	}
	if r.URL != "" {
		u, err := url.Parse(r.URL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return fmt.Errorf("redis.url: %q is not a redis:// or rediss:// URL with a host", r.URL)
		}
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				return errors.New("redis.url: do not put a password in the URL; use redis.password_file")
			}
		}
		if r.TLS != nil && u.Scheme != "rediss" {
			return errors.New("redis.tls: redis.url is redis:// (plain text); use rediss:// to connect with TLS")
		}
	}
	if s := r.Sentinel; s != nil {
		if s.MasterName == "" {
			return errors.New("redis.sentinel.master_name: required (the name in `sentinel monitor NAME …`, e.g. mymaster)")
		}
		if err := checkAddrs("redis.sentinel.addrs", s.Addrs); err != nil {
			return err
		}
		if r.PasswordFile != "" {
			return errors.New("redis.password_file: with redis.sentinel, set redis.sentinel.password_file (the primary's password) instead")
		}
	}
	if c := r.Cluster; c != nil {
		if err := checkAddrs("redis.cluster.addrs", c.Addrs); err != nil {
			return err
		}
	}
	if r.MinReplicasAcked < 0 || r.MinReplicasAcked > 16 {
		return fmt.Errorf("redis.min_replicas_acked: must be between 0 and 16, got %d", r.MinReplicasAcked)
	}
	if r.MinReplicasAcked > 0 && r.Cluster != nil {
		return errors.New("redis.min_replicas_acked: not supported with redis.cluster yet (WAIT has no key to route by); use 0, or Sentinel")
	}
	if rt := time.Duration(r.ReplicationTimeout); rt < 10*time.Millisecond || rt > 2*time.Second {
		return fmt.Errorf("redis.replication_timeout: must be between 10ms and 2s (under the client's 3s read timeout), got %s", r.ReplicationTimeout)
	}
	if t := r.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("redis.tls: cert_file and key_file are both required for a client certificate")
	}
	return nil
}

func checkAddrs(field string, addrs []string) error {
	if len(addrs) == 0 {
		return fmt.Errorf("%s: at least one host:port is required", field)
	}
	for i, a := range addrs {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			return fmt.Errorf("%s[%d]: %q is not host:port", field, i, a)
		}
	}
	return nil
}

// resolve makes the TLS file paths absolute, checks each is readable
// (naming the field) and that together they make a TLS configuration.
func (t *RedisTLS) resolve(baseDir string) error {
	if t == nil {
		return nil
	}
	for _, f := range []struct {
		field string
		path  *string
	}{{"redis.tls.ca_file", &t.CAFile}, {"redis.tls.cert_file", &t.CertFile}, {"redis.tls.key_file", &t.KeyFile}} {
		if *f.path == "" {
			continue
		}
		if !filepath.IsAbs(*f.path) {
			*f.path = filepath.Join(baseDir, *f.path)
		}
		fh, err := os.Open(*f.path)
		if err != nil {
			return fmt.Errorf("%s: %w", f.field, err)
		}
		fh.Close()
	}
	tc := t.Common()
	if _, err := promconfig.NewTLSConfig(&tc); err != nil {
		return fmt.Errorf("redis.tls: %w", err)
	}
	return nil
}

// Common is the same settings as prometheus/common's TLSConfig, which
// builds the *tls.Config (PEM parsing, client certificate reloading).
func (t RedisTLS) Common() promconfig.TLSConfig {
	return promconfig.TLSConfig{
		CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify,
		MinVersion: promconfig.TLSVersion(tls.VersionTLS12),
	}
}
