package bmc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/bmcsim"
)

// The unmodified DMTF mockup: one system, no PowerCycle.
func TestMockup(t *testing.T) {
	e := start(t, bmcsim.Options{})
	reg := prometheus.NewRegistry()
	o := e.options()
	o.Metrics = bmc.NewMetrics(reg)
	c := e.client(t, "web483", "", o) // no system: the BMC's only one
	ctx := context.Background()

	st, err := c.PowerState(ctx)
	if err != nil || st != bmc.StateOn {
		t.Fatalf("PowerState = %q, %v; want On", st, err)
	}
	allowed, err := c.AllowedResets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton"}
	if !slices.Equal(allowed, want) {
		t.Fatalf("AllowedResets = %v, want %v", allowed, want)
	}

	sent, err := c.Reset(ctx, bmc.Hard)
	if err != nil || sent != "ForceRestart" {
		t.Fatalf("Reset(Hard) = %q, %v; want ForceRestart", sent, err)
	}
	if got := e.resetTypes(mockupID); !slices.Equal(got, []string{"ForceRestart"}) {
		t.Fatalf("simulator received %v", got)
	}
	if st, err := c.WaitPowerState(ctx, bmc.StateOn, 5*time.Second); err != nil {
		t.Fatalf("WaitPowerState(On) = %q, %v", st, err)
	}
	if got := e.powerEvents(); !slices.Equal(got, []string{mockupID + "=Off", mockupID + "=On"}) {
		t.Errorf("OnPower calls = %v", got)
	}
	if v := testutil.ToFloat64(o.Metrics.Resets.WithLabelValues(bmc.ProtocolRedfish, "ForceRestart")); v != 1 {
		t.Errorf("resets_total{ForceRestart} = %v", v)
	}
	if v := testutil.ToFloat64(o.Metrics.Requests.WithLabelValues(bmc.ProtocolRedfish, bmc.OpReset, bmc.ResultOK)); v != 1 {
		t.Errorf("requests_total{reset,ok} = %v", v)
	}
	if n := testutil.CollectAndCount(o.Metrics.Resets); n != len(bmc.ResetTypes)+len(bmc.IPMIControls) {
		t.Errorf("resets_total has %d series, want all %d at zero", n, len(bmc.ResetTypes))
	}
}

func TestPowerCycleAllowed(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1", AllowPowerCycle: true}}})
	c := e.client(t, "n1", "n1", e.options())
	sent, err := c.Reset(context.Background(), bmc.Hard)
	if err != nil || sent != "PowerCycle" {
		t.Fatalf("Reset(Hard) = %q, %v; want PowerCycle", sent, err)
	}
	if got := e.resetTypes("n1"); !slices.Equal(got, []string{"PowerCycle"}) {
		t.Fatalf("simulator received %v", got)
	}
}

// Allowed types advertised only through an ActionInfo resource.
func TestActionInfo(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1", ActionInfo: true, Deny: []string{"ForceRestart"}, AllowPowerCycle: true}}})
	c := e.client(t, "n1", "/redfish/v1/Systems/n1", e.options())
	allowed, err := c.AllowedResets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(allowed, "PowerCycle") || slices.Contains(allowed, "ForceRestart") {
		t.Fatalf("AllowedResets = %v", allowed)
	}
	sent, err := c.Reset(context.Background(), bmc.Hard)
	if err != nil || sent != "PowerCycle" {
		t.Fatalf("Reset(Hard) = %q, %v", sent, err)
	}
}

// A kind whose types the system does not allow is refused before any request.
func TestNotAllowedSendsNothing(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{
		{ID: "n1", Deny: []string{"GracefulRestart"}},
		{ID: "n2", Deny: []string{"PowerCycle", "ForceRestart", "On", "ForceOn", "PushPowerButton"}},
	}})
	ctx := context.Background()

	sent, err := e.client(t, "n1", "n1", e.options()).Reset(ctx, bmc.Soft)
	var na *bmc.NotAllowedError
	if !errors.Is(err, bmc.ErrNotAllowed) || !errors.As(err, &na) || sent != "" {
		t.Fatalf("Reset(Soft) = %q, %v; want ErrNotAllowed", sent, err)
	}
	for _, want := range []string{"GracefulRestart", "ForceRestart", "PushPowerButton"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if slices.Contains(na.Allowed, "GracefulRestart") {
		t.Errorf("NotAllowedError.Allowed = %v", na.Allowed)
	}

	// Hard with neither PowerCycle, ForceRestart nor a way back on: not even
	// the ForceOff is sent.
	if _, err := e.client(t, "n2", "n2", e.options()).Reset(ctx, bmc.Hard); !errors.Is(err, bmc.ErrNotAllowed) {
		t.Fatalf("Reset(Hard) = %v; want ErrNotAllowed", err)
	}
	for _, id := range []string{"n1", "n2"} {
		if got := e.sim.Resets(id); len(got) != 0 {
			t.Errorf("%s received %v; want no request", id, got)
		}
	}
}

// Neither PowerCycle nor ForceRestart: ForceOff, wait for Off, then On.
func TestHardFallback(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1", Deny: []string{"ForceRestart"}}}})
	c := e.client(t, "n1", "n1", e.options())
	sent, err := c.Reset(context.Background(), bmc.Hard)
	if err != nil || sent != "ForceOff+On" {
		t.Fatalf("Reset(Hard) = %q, %v; want ForceOff+On", sent, err)
	}
	if got := e.resetTypes("n1"); !slices.Equal(got, []string{"ForceOff", "On"}) {
		t.Fatalf("simulator received %v", got)
	}
	if st, err := c.WaitPowerState(context.Background(), bmc.StateOn, 5*time.Second); err != nil {
		t.Fatal(st, err)
	}
}

func TestOnOffIdempotent(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1", PowerState: "Off"}}})
	c := e.client(t, "n1", "n1", e.options())
	ctx := context.Background()
	if sent, err := c.Reset(ctx, bmc.Off); err != nil || sent != "" {
		t.Fatalf("Reset(Off) while Off = %q, %v; want nothing sent", sent, err)
	}
	if sent, err := c.Reset(ctx, bmc.On); err != nil || sent != "On" {
		t.Fatalf("Reset(On) = %q, %v", sent, err)
	}
	if sent, err := c.Reset(ctx, bmc.On); err != nil || sent != "" { // PoweringOn now
		t.Fatalf("Reset(On) while powering on = %q, %v; want nothing sent", sent, err)
	}
	if got := e.resetTypes("n1"); !slices.Equal(got, []string{"On"}) {
		t.Fatalf("simulator received %v", got)
	}
}

// The BMC applies the reset but answers 500: the client reports the
// uncertain outcome with the re-read power state and does not resend.
func TestReset500Applied(t *testing.T) {
	e := start(t, bmcsim.Options{BootTime: 5 * time.Second, Systems: []bmcsim.System{
		{ID: "n1", Faults: bmcsim.Faults{ResetStatus: 500, ApplyDespiteError: true}}}})
	c := e.client(t, "n1", "n1", e.options())
	ctx := context.Background()

	sent, err := c.ResetOnce(ctx, bmc.Hard, "run-1/power-cycle")
	var re *bmc.ResetError
	if !errors.As(err, &re) || !errors.Is(err, bmc.ErrBMC) {
		t.Fatalf("ResetOnce = %q, %v; want *ResetError", sent, err)
	}
	if sent != "ForceRestart" || !re.Maybe || re.After != bmc.StateOff {
		t.Fatalf("ResetError = %+v, sent %q; want ForceRestart, Maybe, After Off", re, sent)
	}
	if !strings.Contains(err.Error(), "500") {
		t.Errorf("error %q does not carry the status", err)
	}
	// A retry of the same decision (e.g. the step resumed) sends nothing.
	if _, err := c.ResetOnce(ctx, bmc.Hard, "run-1/power-cycle"); !errors.Is(err, bmc.ErrAlreadySent) {
		t.Fatalf("second ResetOnce = %v; want ErrAlreadySent", err)
	}
	if got := e.sim.Resets("n1"); len(got) != 1 || !got[0].Applied || got[0].Status != 500 {
		t.Fatalf("simulator received %+v; want exactly one applied reset", got)
	}
}

// A 500 that was not applied: Maybe (the client cannot know), power still On.
func TestReset500NotApplied(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1", Faults: bmcsim.Faults{ResetStatus: 503}}}})
	c := e.client(t, "n1", "n1", e.options())
	_, err := c.Reset(context.Background(), bmc.Soft)
	var re *bmc.ResetError
	if !errors.As(err, &re) || !re.Maybe || re.After != bmc.StateOn {
		t.Fatalf("Reset = %v; want *ResetError Maybe, After On", err)
	}
	if n := e.sim.Applied("n1"); n != 0 || len(e.sim.Resets("n1")) != 1 {
		t.Fatalf("simulator: %d applied of %v", n, e.sim.Resets("n1"))
	}
}

// The reset is applied but the answer hangs past the client's timeout.
func TestResetTimeoutApplied(t *testing.T) {
	e := start(t, bmcsim.Options{BootTime: 5 * time.Second, Systems: []bmcsim.System{
		{ID: "n1", Faults: bmcsim.Faults{ResetHang: 30 * time.Second}}}})
	o := e.options()
	o.Timeout = 300 * time.Millisecond
	reg := prometheus.NewRegistry()
	o.Metrics = bmc.NewMetrics(reg)
	c := e.client(t, "n1", "n1", o)
	ctx := context.Background()

	begin := time.Now()
	sent, err := c.ResetOnce(ctx, bmc.Hard, "d1")
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("ResetOnce took %s with a 300ms timeout", d)
	}
	var re *bmc.ResetError
	if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ResetOnce = %q, %v; want *ResetError wrapping a deadline (simulator saw %+v)", sent, err, e.sim.Resets("n1"))
	}
	if !re.Maybe || re.After != bmc.StateOff {
		t.Fatalf("ResetError = %+v; want Maybe, After Off (the reset was applied)", re)
	}
	if _, err := c.ResetOnce(ctx, bmc.Hard, "d1"); !errors.Is(err, bmc.ErrAlreadySent) {
		t.Fatalf("second ResetOnce = %v; want ErrAlreadySent", err)
	}
	if n := len(e.sim.Resets("n1")); n != 1 || e.sim.Applied("n1") != 1 {
		t.Fatalf("simulator received %d resets (%d applied); want exactly 1", n, e.sim.Applied("n1"))
	}
	if v := testutil.ToFloat64(o.Metrics.Requests.WithLabelValues(bmc.ProtocolRedfish, bmc.OpReset, bmc.ResultTimeout)); v != 1 {
		t.Errorf("requests_total{reset,timeout} = %v", v)
	}
}

// A 4xx is a definite refusal.
func TestResetRefused(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1", Faults: bmcsim.Faults{Refuse: []string{"ForceRestart"}}}}})
	_, err := e.client(t, "n1", "n1", e.options()).Reset(context.Background(), bmc.Hard)
	var re *bmc.ResetError
	if !errors.As(err, &re) || re.Maybe || re.After != bmc.StateOn {
		t.Fatalf("Reset = %v; want *ResetError, not Maybe, After On", err)
	}
}

// A hung OS ignores GracefulRestart: PowerState stays On, which the caller
// detects before escalating to Hard.
func TestGracefulIgnored(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1", Faults: bmcsim.Faults{IgnoreGraceful: true}}}})
	c := e.client(t, "n1", "n1", e.options())
	ctx := context.Background()
	if sent, err := c.ResetOnce(ctx, bmc.Soft, "r/soft"); err != nil || sent != "GracefulRestart" {
		t.Fatalf("Reset(Soft) = %q, %v", sent, err)
	}
	st, err := c.WaitPowerState(ctx, bmc.StateOff, 400*time.Millisecond)
	if !errors.Is(err, bmc.ErrTimeout) || st != bmc.StateOn {
		t.Fatalf("WaitPowerState(Off) = %q, %v; want timeout with On", st, err)
	}
	if sent, err := c.ResetOnce(ctx, bmc.Hard, "r/hard"); err != nil || sent != "ForceRestart" {
		t.Fatalf("escalation Reset(Hard) = %q, %v", sent, err)
	}
	if got := e.resetTypes("n1"); !slices.Equal(got, []string{"GracefulRestart", "ForceRestart"}) {
		t.Fatalf("simulator received %v", got)
	}
}

// A graceful restart that works goes PoweringOff → Off → On.
func TestGracefulRestart(t *testing.T) {
	e := start(t, bmcsim.Options{ShutdownTime: 100 * time.Millisecond, Systems: []bmcsim.System{{ID: "n1"}}})
	c := e.client(t, "n1", "n1", e.options())
	ctx := context.Background()
	if _, err := c.Reset(ctx, bmc.Soft); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPowerState(ctx, bmc.StateOff, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitPowerState(ctx, bmc.StateOn, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := e.powerEvents(); !slices.Equal(got, []string{"n1=PoweringOff", "n1=Off", "n1=On"}) {
		t.Fatalf("OnPower calls = %v", got)
	}
}

func TestSession(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1"}}})
	tg := e.target("n1", "n1")
	tg.Session = true
	c, err := bmc.New(tg, e.options())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, err := c.PowerState(context.Background()); err != nil || st != bmc.StateOn {
		t.Fatalf("PowerState over a session = %q, %v", st, err)
	}
}

// Credentials never appear in errors or logs.
func TestWrongPasswordNotLeaked(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1"}}})
	for _, session := range []bool{false, true} {
		tg := e.target("n1", "n1")
		tg.Password = bmc.Secret("wr0ng-" + password)
		tg.Session = session
		c, err := bmc.New(tg, e.options())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PowerState(context.Background())
		if err == nil || !errors.Is(err, bmc.ErrBMC) || !strings.Contains(err.Error(), "401") {
			t.Fatalf("session=%v: PowerState with a wrong password = %v; want a 401 ErrBMC", session, err)
		}
		if strings.Contains(err.Error(), password) || strings.Contains(fmt.Sprintf("%+v %#v", err, c.Target()), password) {
			t.Fatalf("error or target leaks the password: %v", err)
		}
		if _, err := c.Reset(context.Background(), bmc.Hard); err == nil {
			t.Fatal("Reset with a wrong password succeeded")
		} else if strings.Contains(err.Error(), password) {
			t.Fatalf("error leaks the password: %v", err)
		}
		c.Close()
	}
	if strings.Contains(e.logs.String(), password) {
		t.Fatalf("logs leak the password:\n%s", e.logs)
	}
	if len(e.sim.Resets("n1")) != 0 {
		t.Fatal("an unauthenticated reset reached the system")
	}
}

func TestUnknownSystem(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1"}, {ID: "n2"}}})
	_, err := e.client(t, "n1", "", e.options()).PowerState(context.Background())
	if err == nil || !strings.Contains(err.Error(), "2 systems") {
		t.Fatalf("PowerState with no system on a 2-system BMC = %v", err)
	}
	_, err = e.client(t, "n3", "n3", e.options()).PowerState(context.Background())
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("PowerState of a missing system = %v", err)
	}
}

// TLS verification is on by default: without the CA the connection fails,
// and nothing is sent.
func TestTLSVerified(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1"}}})
	tg := e.target("n1", "n1")
	tg.CAFile = ""
	c, err := bmc.New(tg, e.options())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.PowerState(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("PowerState against an untrusted certificate = %v", err)
	}
	tg.InsecureSkipVerify = true
	c2, _ := bmc.New(tg, e.options())
	defer c2.Close()
	if _, err := c2.PowerState(context.Background()); err != nil {
		t.Fatalf("insecure_skip_verify: %v", err)
	}
}
