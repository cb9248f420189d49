// Package redisconn builds node-healer's Redis client from the redis
// section of the configuration: a single server (redis.url), a primary
// found and followed through Redis Sentinel (redis.sentinel) or a Redis
// Cluster (redis.cluster), each optionally over TLS (redis.tls).
//
// Every consumer takes a redis.UniversalClient, so the topology is
// decided here and nowhere else. Secrets come from the config (read from
// files) and never appear in errors or logs.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/redis/go-redis/v9"

	"github.com/node-healer/node-healer/internal/config"
)

// Timeouts shared by every topology: a dead server is noticed within
// seconds, so a webhook answers 503 (Alertmanager retries) rather than
// hang, and a worker backs off.
const (
	DialTimeout  = 2 * time.Second
	ReadTimeout  = 3 * time.Second
	WriteTimeout = 3 * time.Second
	MaxRetries   = 2
)

// Options are the parts of the client that do not come from the file.
type Options struct {
	// URL, when set, replaces redis.url (the --redis.url flag). It cannot
	// replace a Sentinel or Cluster topology.
	URL string
	// Password is used when the config names no password file
	// ($NODE_HEALER_REDIS_PASSWORD).
	Password string
}

// New builds the client. It does not connect: go-redis dials lazily, so
// an unreachable Redis shows up in Ping (and /-/ready), not here.
func New(r config.Redis, o Options) (redis.UniversalClient, error) {
	tc, err := tlsConfig(r.TLS)
	if err != nil {
		return nil, err
	}
	password := string(r.Password())
	if password == "" {
		password = o.Password
	}
	switch {
	case o.URL != "" && (r.Sentinel != nil || r.Cluster != nil):
		return nil, errors.New("--redis.url cannot override redis.sentinel or redis.cluster; change the config file")
	case r.Sentinel != nil:
		s := r.Sentinel
		p := string(s.Password())
		if p == "" {
			p = o.Password
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: s.MasterName, SentinelAddrs: s.Addrs,
			SentinelPassword: string(s.SentinelPassword()),
			Username:         s.Username, Password: p,
			TLSConfig:   tc,
			DialTimeout: DialTimeout, ReadTimeout: ReadTimeout, WriteTimeout: WriteTimeout,
			MaxRetries: MaxRetries,
		}), nil
	case r.Cluster != nil:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: r.Cluster.Addrs, Password: password, TLSConfig: tc,
			DialTimeout: DialTimeout, ReadTimeout: ReadTimeout, WriteTimeout: WriteTimeout,
			MaxRetries: MaxRetries,
		}), nil
	}
	u := r.URL
	if o.URL != "" {
		u = o.URL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if tc != nil {
		if opt.TLSConfig == nil {
			return nil, errors.New("redis.tls: the URL is redis:// (plain text); use rediss:// to connect with TLS")
		}
		opt.TLSConfig = tc
	}
	if password != "" {
		opt.Password = password
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = DialTimeout, ReadTimeout, WriteTimeout
	opt.MaxRetries = MaxRetries
	return redis.NewClient(opt), nil
}

// tlsConfig builds the client TLS configuration with prometheus/common
// (CA and client certificate files, server name, verification).
func tlsConfig(t *config.RedisTLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	c := t.Common()
	tc, err := promconfig.NewTLSConfig(&c)
	if err != nil {
		return nil, fmt.Errorf("redis.tls: %w", err)
	}
	return tc, nil
}

// Ping checks the connection. A certificate that does not verify is
// reported as such, naming the settings to look at, because go-redis'
// own message is only the x509 error.
func Ping(ctx context.Context, c redis.UniversalClient) error {
	err := c.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	if IsTLSVerify(err) {
		return fmt.Errorf("redis TLS: the server's certificate does not verify (check redis.tls.ca_file and redis.tls.server_name): %w", err)
	}
	return err
}

// IsTLSVerify reports whether err is a failed certificate verification:
// a configuration error, not an outage, so retrying will not fix it.
func IsTLSVerify(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verify)
}
