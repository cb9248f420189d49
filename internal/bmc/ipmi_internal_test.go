package bmc

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeBMC is a chassis behind the ipmiSession seam: it records every
// control and can refuse or swallow them.
type fakeBMC struct {
	mu        sync.Mutex
	on        bool
	sent      []chassis.ChassisControl
	refuse    map[chassis.ChassisControl]bool // answer a completion code
	swallow   map[chassis.ChassisControl]bool // act, then never answer
	statusErr error
}

func (f *fakeBMC) dial(ctx context.Context, _ Target, _ Secret, _ int, _ time.Duration) (ipmiSession, error) {
	return f, nil
}
func (f *fakeBMC) PowerOn(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on, f.statusErr
}
func (f *fakeBMC) Control(ctx context.Context, c chassis.ChassisControl) error {
	f.mu.Lock()
	f.sent = append(f.sent, c)
	if f.refuse[c] {
		f.mu.Unlock()
		return &types.ResponseError{}
	}
	switch c {
	case chassis.ChassisControlPowerDown, chassis.ChassisControlSoftShutdown:
		f.on = false
	case chassis.ChassisControlPowerUp, chassis.ChassisControlPowerCycle:
		f.on = true
	}
	swallow := f.swallow[c]
	f.mu.Unlock()
	if swallow {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
func (f *fakeBMC) Close(context.Context) {}

func (f *fakeBMC) controls() []chassis.ChassisControl {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chassis.ChassisControl(nil), f.sent...)
}

func fakeClient(t *testing.T, f *fakeBMC) (*IPMIClient, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	c, err := NewIPMI(Target{Node: "n1", Host: "127.0.0.1", Username: "u", Password: "p", Protocol: ProtocolIPMI},
		Options{Timeout: 300 * time.Millisecond, OffWait: time.Second, Poll: 10 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	c.dial = f.dial
	return c, m
}

func TestIPMIResetCycle(t *testing.T) {
	f := &fakeBMC{on: true}
	c, m := fakeClient(t, f)
	sent, err := c.Reset(context.Background(), Hard)
	if err != nil || sent != "chassis power cycle" {
		t.Fatalf("Reset(Hard) = %q, %v", sent, err)
	}
	if got := f.controls(); len(got) != 1 || got[0] != chassis.ChassisControlPowerCycle {
		t.Fatalf("sent %v", got)
	}
	if v := testutil.ToFloat64(m.Resets.WithLabelValues(ProtocolIPMI, "cycle")); v != 1 {
		t.Errorf("resets_total{ipmi,cycle} = %v", v)
	}
}

// A BMC that refuses power cycle (as the spec has it while the chassis is
// off) gets power off+on instead: still one decision, nothing resent.
func TestIPMICycleRefusedFallsBack(t *testing.T) {
	for _, on := range []bool{true, false} {
		f := &fakeBMC{on: on, refuse: map[chassis.ChassisControl]bool{chassis.ChassisControlPowerCycle: true}}
		c, _ := fakeClient(t, f)
		sent, err := c.Reset(context.Background(), Hard)
		if err != nil {
			t.Fatalf("on=%v: %v", on, err)
		}
		want := []chassis.ChassisControl{chassis.ChassisControlPowerCycle, chassis.ChassisControlPowerDown, chassis.ChassisControlPowerUp}
		if !on {
			want = []chassis.ChassisControl{chassis.ChassisControlPowerCycle, chassis.ChassisControlPowerUp}
		}
		if got := f.controls(); !equalControls(got, want) {
			t.Errorf("on=%v: sent %v, want %v", on, got, want)
		}
		if !strings.Contains(sent, "cycle (refused)") || !strings.HasSuffix(sent, "+on") && !strings.HasSuffix(sent, "power on") {
			t.Errorf("on=%v: detail %q", on, sent)
		}
	}
}

// A control whose answer is lost is never resent: the power state is read
// again and returned in a *ResetError with Maybe set; ResetOnce refuses a
// second send for the same decision.
func TestIPMILostAnswerNotResent(t *testing.T) {
	f := &fakeBMC{on: true, swallow: map[chassis.ChassisControl]bool{chassis.ChassisControlPowerCycle: true}}
	c, m := fakeClient(t, f)
	_, err := c.ResetOnce(context.Background(), Hard, "run-1/power-cycle")
	var re *ResetError
	if !errors.As(err, &re) || !re.Maybe || re.After != StateOn || !errors.Is(err, ErrBMC) {
		t.Fatalf("err = %#v", err)
	}
	if _, err := c.ResetOnce(context.Background(), Hard, "run-1/power-cycle"); !errors.Is(err, ErrAlreadySent) {
		t.Fatalf("second ResetOnce = %v", err)
	}
	if got := f.controls(); len(got) != 1 {
		t.Fatalf("sent %v; want one cycle", got)
	}
	if v := testutil.ToFloat64(m.Requests.WithLabelValues(ProtocolIPMI, OpReset, ResultTimeout)); v != 1 {
		t.Errorf("requests_total{ipmi,reset,timeout} = %v", v)
	}
}

// Soft is soft-off, then on once Off; a soft-off the OS ignores ends with
// an error and no power on.
func TestIPMISoft(t *testing.T) {
	f := &fakeBMC{on: true}
	c, _ := fakeClient(t, f)
	if sent, err := c.Reset(context.Background(), Soft); err != nil || sent != "chassis power soft+on" {
		t.Fatalf("Soft = %q, %v", sent, err)
	}
	hung := &fakeBMC{on: true, refuse: map[chassis.ChassisControl]bool{}}
	c, _ = fakeClient(t, hung)
	c.dial = func(ctx context.Context, t Target, p Secret, r int, d time.Duration) (ipmiSession, error) {
		return ignoringSoft{hung}, nil
	}
	_, err := c.Reset(context.Background(), Soft)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "power on not sent") {
		t.Fatalf("hung Soft = %v", err)
	}
	if got := hung.controls(); !equalControls(got, []chassis.ChassisControl{chassis.ChassisControlSoftShutdown}) {
		t.Fatalf("hung node got %v", got)
	}
}

// ignoringSoft accepts a soft shutdown and does nothing (a hung OS).
type ignoringSoft struct{ *fakeBMC }

func (s ignoringSoft) Control(ctx context.Context, c chassis.ChassisControl) error {
	if c == chassis.ChassisControlSoftShutdown {
		s.mu.Lock()
		s.sent = append(s.sent, c)
		s.mu.Unlock()
		return nil
	}
	return s.fakeBMC.Control(ctx, c)
}

func TestIPMIOffOnNeeded(t *testing.T) {
	f := &fakeBMC{on: false}
	c, _ := fakeClient(t, f)
	if sent, err := c.Reset(context.Background(), Off); err != nil || sent != "" {
		t.Fatalf("Off when off = %q, %v", sent, err)
	}
	if sent, err := c.Reset(context.Background(), On); err != nil || sent != "chassis power on" {
		t.Fatalf("On = %q, %v", sent, err)
	}
	if sent, err := c.Reset(context.Background(), On); err != nil || sent != "" {
		t.Fatalf("On when on = %q, %v", sent, err)
	}
}

func equalControls(a, b []chassis.ChassisControl) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
