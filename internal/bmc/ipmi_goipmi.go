package bmc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// goipmiSession adapts a connected github.com/bougou/go-ipmi client.
type goipmiSession struct{ c *client.Client }

// datagramTimeout bounds the wait for one answer; a whole operation is
// bounded by Options.Timeout through its context.
const datagramTimeout = 2 * time.Second

func dialGoIPMI(ctx context.Context, t Target, pw Secret, retries int, timeout time.Duration) (ipmiSession, error) {
	c, err := client.NewClient(t.Host, t.Port, t.Username, pw.Reveal())
	if err != nil {
		return nil, err
	}
	c.WithInterface(client.InterfaceLanplus).WithRetry(retries).WithTimeout(min(timeout, datagramTimeout))
	priv := types.PrivilegeLevelOperator
	if t.Privilege == "administrator" {
		priv = types.PrivilegeLevelAdministrator
	}
	c.WithMaxPrivilegeLevel(priv)
	if t.CipherSuite != 0 {
		c.WithCipherSuiteID(types.CipherSuiteID(t.CipherSuite))
	} else {
		c.WithCipherSuiteID(types.CipherSuiteID17, types.CipherSuiteID3)
	}
	if err := c.Connect(ctx); err != nil {
		closeQuietly(c, 200*time.Millisecond)
		return nil, err
	}
	return goipmiSession{c}, nil
}

func closeQuietly(c *client.Client, wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_ = c.Close(ctx)
}

func (s goipmiSession) PowerOn(ctx context.Context) (bool, error) {
	r, err := s.c.GetChassisStatus(ctx)
	if err != nil {
		return false, err
	}
	return r.PowerIsOn, nil
}

func (s goipmiSession) Control(ctx context.Context, ctl chassis.ChassisControl) error {
	_, err := s.c.ChassisControl(ctx, ctl)
	return err
}

func (s goipmiSession) Close(context.Context) { closeQuietly(s.c, time.Second) }

// ipmiMaybeApplied: only an answer with a completion code proves the
// control was not carried out; a lost answer may hide one that was.
func ipmiMaybeApplied(err error) bool {
	var re *types.ResponseError
	return !errors.As(err, &re)
}

// refusedByBMC: the BMC answered the control with a completion code.
func refusedByBMC(err error) bool {
	var re *types.ResponseError
	return errors.As(err, &re)
}

// describeIPMI shortens go-ipmi's errors (a failed handshake lists every
// cipher suite tried, over several lines) and says what they mean.
func describeIPMI(err error) error {
	var re *types.ResponseError
	if errors.As(err, &re) {
		return fmt.Errorf("BMC answered completion code %#02x: %w", uint8(re.CompletionCode()), err)
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	switch {
	case isTimeout(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer from the BMC (unreachable, or not an IPMI BMC): %w: %w", ErrUnreachable, err)
	case strings.Contains(msg, "rakp"), strings.Contains(msg, "RAKP"):
		return fmt.Errorf("RMCP+ authentication failed (wrong username or password, or the user may not open a session at this privilege): %w: %s", ErrAuth, clip(msg))
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("BMC unreachable (port closed): %w: %s", ErrUnreachable, clip(msg))
	}
	return errors.New(clip(msg))
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
