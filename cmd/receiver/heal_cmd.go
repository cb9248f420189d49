package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/node-healer/node-healer/internal/handlers"
)

// healOptions: receiver heal NODE, a manual run through a running
// receiver's POST /api/v1/runs (its gates, its queue).
type healOptions struct {
	Node      string
	Runbook   string
	Reason    string
	DryRun    bool
	Params    map[string]string
	URL       string
	TokenFile string
	// Token is $NODE_HEALER_TOKEN (main reads it); --token-file wins.
	Token              string
	CAFile             string
	InsecureSkipVerify bool
	Timeout            time.Duration
}

// healCommand declares `receiver heal` and its flags.
func healCommand(app *kingpin.Application, o *healOptions) *kingpin.CmdClause {
	o.Params = map[string]string{}
	c := app.Command("heal", "Ask a running receiver to run a runbook on a node (POST /api/v1/runs): the run goes through every safety check, like an alert's.")
	c.Arg("node", "Node name.").Required().StringVar(&o.Node)
	c.Flag("runbook", "Runbook to run (reboot, cordon, drain, …; see the README's runbook catalogue).").Required().StringVar(&o.Runbook)
	c.Flag("reason", "Why (kept in the run, logged).").Required().StringVar(&o.Reason)
	c.Flag("dry-run", "Record what the runbook would do; change nothing.").BoolVar(&o.DryRun)
	c.Flag("param", "Runbook parameter name=value (repeatable), as a route's params.").StringMapVar(&o.Params)
	c.Flag("url", "Base URL of a receiver.").Envar("NODE_HEALER_URL").Default("http://localhost:9095").StringVar(&o.URL)
	c.Flag("token-file", "File holding the webhook's bearer token (default: $NODE_HEALER_TOKEN).").StringVar(&o.TokenFile)
	c.Flag("ca-file", "CA that verifies the receiver's certificate (https).").StringVar(&o.CAFile)
	c.Flag("insecure-skip-verify", "Do not verify the receiver's certificate (tests only).").BoolVar(&o.InsecureSkipVerify)
	c.Flag("timeout", "How long to wait for the receiver's answer.").Default("30s").DurationVar(&o.Timeout)
	return c
}

func runHeal(ctx context.Context, o healOptions, out io.Writer) error {
	token := o.Token
	if o.TokenFile != "" {
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	client, err := healClient(o)
	if err != nil {
		return err
	}
	body, err := json.Marshal(handlers.ManualRequest{Node: o.Node, Runbook: o.Runbook, Reason: o.Reason,
		Params: o.Params, DryRun: o.DryRun, RequestedBy: requester()})
	if err != nil {
		return err
	}
	base := strings.TrimRight(o.URL, "/")
	shown := base // what messages print: no basic-auth password
	if u, err := url.Parse(base); err == nil {
		shown = u.Redacted()
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/runs", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the receiver at %s: %w", shown, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (the webhook's bearer token: --token-file or $NODE_HEALER_TOKEN)"
		}
		return fmt.Errorf("the receiver refused the run (%s): %s", resp.Status, msg)
	}
	var r handlers.ManualReply
	if err := json.Unmarshal(b, &r); err != nil || r.Run == "" {
		return fmt.Errorf("unexpected answer from %s (%s): %s", shown, resp.Status, b)
	}
	what := fmt.Sprintf("%s on node %s", r.Runbook, r.Node)
	if r.DryRun {
		what += " (dry run)"
	}
	if r.Duplicate {
		fmt.Fprintf(out, "run %s: an identical request already asked for %s; it is %s\n", r.Run, what, r.Status)
	} else {
		fmt.Fprintf(out, "run %s: %s queued; it starts once every safety check admits it\n", r.Run, what)
	}
	if r.Detail != "" {
		fmt.Fprintf(out, "note: %s\n", r.Detail)
	}
	fmt.Fprintf(out, "follow it: receiver runs show %s   (or GET %s/api/v1/runs/%s)\n", r.Run, shown, r.Run)
	return nil
}

// healClient is plain net/http with the TLS settings asked for. Basic
// auth (a web configuration's basic_auth_users) rides in the URL:
// https://user:password@host:9095.
func healClient(o healOptions) (*http.Client, error) {
	tc := &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // only when asked for
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("--ca-file: no PEM certificate in " + o.CAFile)
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{Transport: tr}, nil
}

// requester names who runs the command, for the run record (the server
// prefers an authenticated basic-auth user).
func requester() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}
