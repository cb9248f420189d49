package bmc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"
)

// Defaults for Options.
const (
	DefaultTimeout = 10 * time.Second
	DefaultOffWait = 2 * time.Minute
	DefaultPoll    = 2 * time.Second
)

// Options tune a Client (and every client of a Fleet).
type Options struct {
	// Timeout bounds every BMC operation (connect + read, or one reset
	// request); default DefaultTimeout.
	Timeout time.Duration
	// OffWait bounds the wait for Off between the two steps of a Hard reset
	// done as ForceOff then On; default DefaultOffWait.
	OffWait time.Duration
	// Poll is the PowerState polling interval of waits; default DefaultPoll.
	Poll time.Duration
	// Metrics may be nil.
	Metrics *Metrics
	// Logger may be nil (discard).
	Logger *slog.Logger
	// Journal backs ResetOnce; nil means a process-local MemJournal.
	Journal Journal
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.OffWait <= 0 {
		o.OffWait = DefaultOffWait
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Journal == nil {
		o.Journal = &MemJournal{}
	}
	return o
}

// Client talks Redfish to one node's BMC. It is safe for concurrent use.
type Client struct {
	t     Target
	o     Options
	httpc *http.Client

	mu      sync.Mutex
	api     *gofish.APIClient // nil until connected
	sysPath string            // resolved system path
}

// New builds a client; it does not contact the BMC.
func New(t Target, o Options) (*Client, error) {
	if err := checkEndpoint(t.Endpoint, false); err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in per BMC
	if t.CAFile != "" {
		pool, err := loadCA(t.CAFile)
		if err != nil {
			return nil, err
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.Proxy = nil // BMC networks are not reached through the cluster's HTTP proxy
	return &Client{t: t, o: o.withDefaults(), httpc: &http.Client{Transport: tr}}, nil
}

// Target returns the client's connection settings.
func (c *Client) Target() Target { return c.t }

// Close ends the Redfish session, if any.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api != nil {
		if c.t.Session {
			ctx, cancel := context.WithTimeout(context.Background(), c.o.Timeout)
			c.api.WithContext(ctx).Logout()
			cancel()
		}
		c.httpc.CloseIdleConnections()
		c.api = nil
	}
}

// connect returns a gofish client bound to ctx, connecting (and resolving
// the system) on first use. Call with c.mu held.
func (c *Client) connect(ctx context.Context) (*gofish.APIClient, error) {
	if c.api == nil {
		pw := c.t.Password
		if pw == "" {
			var err error
			if pw, err = ReadSecret(c.t.PasswordFile); err != nil {
				return nil, err
			}
		}
		api, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
			Endpoint:          c.t.Endpoint,
			Username:          c.t.Username,
			Password:          pw.Reveal(),
			HTTPClient:        c.httpc,
			NoModifyTransport: true,
			BasicAuth:         !c.t.Session,
			ReuseConnections:  true,
		})
		if err != nil {
			return nil, err
		}
		c.api = api
	}
	api := c.api.WithContext(ctx)
	if c.sysPath == "" {
		p, err := c.resolveSystem(api)
		if err != nil {
			return nil, err
		}
		c.sysPath = p
	}
	return api, nil
}

func (c *Client) resolveSystem(api *gofish.APIClient) (string, error) {
	switch {
	case strings.HasPrefix(c.t.System, "/"):
		return strings.TrimSuffix(c.t.System, "/"), nil
	case c.t.System != "":
		return "/redfish/v1/Systems/" + url.PathEscape(c.t.System), nil
	}
	systems, err := api.Service.Systems()
	if err != nil {
		return "", fmt.Errorf("list systems: %w", err)
	}
	if len(systems) != 1 {
		ids := make([]string, 0, len(systems))
		for _, s := range systems {
			ids = append(ids, s.ID)
		}
		return "", fmt.Errorf("BMC has %d systems [%s]: set system for this node", len(systems), strings.Join(ids, ", "))
	}
	return systems[0].ODataID, nil
}

// system reads the ComputerSystem under a fresh timeout. On an
// authentication failure with sessions, it logs in again once.
func (c *Client) system(ctx context.Context) (*schemas.ComputerSystem, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		api, err := c.connect(ctx)
		if err != nil {
			return nil, err
		}
		sys, err := schemas.GetComputerSystem(api, c.sysPath)
		if err != nil && attempt == 0 && c.t.Session && httpStatus(err) == http.StatusUnauthorized {
			c.api = nil // session expired: log in again (reads only)
			continue
		}
		return sys, err
	}
}

// PowerState reads the system's PowerState.
func (c *Client) PowerState(ctx context.Context) (State, error) {
	sys, err := c.system(ctx)
	c.o.Metrics.request(OpPowerState, err)
	if err != nil {
		return StateUnknown, c.wrap("read power state", err)
	}
	return State(sys.PowerState), nil
}

// AllowedResets returns the ResetTypes the system allows: its
// ResetType@Redfish.AllowableValues, else the values of its reset
// ActionInfo, else the target's configured ResetTypes (none: empty).
func (c *Client) AllowedResets(ctx context.Context) ([]string, error) {
	allowed, _, err := c.allowed(ctx)
	c.o.Metrics.request(OpAllowedResets, err)
	if err != nil {
		return nil, c.wrap("read allowed resets", err)
	}
	return allowed, nil
}

// allowed reads the system with its allowed types and power state; the
// ActionInfo, if needed, is read under the same timeout.
func (c *Client) allowed(ctx context.Context) ([]string, *schemas.ComputerSystem, error) {
	sys, err := c.system(ctx)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	c.mu.Lock()
	if c.api == nil {
		c.mu.Unlock()
		return nil, nil, errors.New("connection closed")
	}
	sys.SetClient(c.api.WithContext(ctx))
	c.mu.Unlock()
	types, err := sys.GetSupportedResetTypes()
	if err != nil {
		return nil, nil, fmt.Errorf("reset ActionInfo: %w", err)
	}
	out := make([]string, 0, len(types))
	for _, t := range types {
		out = append(out, string(t))
	}
	if len(out) == 0 {
		out = append(out, c.t.ResetTypes...)
	}
	return out, sys, nil
}

// wrap adds the operation and node to a BMC error, marks it ErrBMC, and
// shortens Redfish error bodies to their message.
func (c *Client) wrap(op string, err error) error {
	return fmt.Errorf("%w: node %s: %s: %w", ErrBMC, c.t.Node, op, describe(err))
}

// describe renders an error without the raw response body.
func describe(err error) error {
	var re *schemas.Error
	if !errors.As(err, &re) {
		return err
	}
	msg := re.Message
	if len(re.ExtendedInfos) > 0 && re.ExtendedInfos[0].Message != "" {
		msg = re.ExtendedInfos[0].Message
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return &httpError{status: re.HTTPReturnedStatusCode, msg: msg, err: err}
}

type httpError struct {
	status int
	msg    string
	err    error
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.msg) }
func (e *httpError) Unwrap() error { return e.err }

// httpStatus returns the HTTP status of a Redfish error answer, else 0.
func httpStatus(err error) int {
	var re *schemas.Error
	if errors.As(err, &re) {
		return re.HTTPReturnedStatusCode
	}
	return 0
}

// maybeApplied reports whether a failed reset request may have been acted
// on: only a 4xx answer, or a connection that was never made, proves it
// was not.
func maybeApplied(err error) bool {
	if s := httpStatus(err); s >= 400 && s < 500 {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return true
}
