package bmc_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/bmcsim"
)

var errLost = errors.New("lease lost")

// TestResetCheckedRefusesAfterCheck: a failing last check sends nothing
// and returns the check's error; a passing one sends the reset.
func TestResetCheckedRefusesAfterCheck(t *testing.T) {
	e := start(t, bmcsim.Options{})
	c := e.client(t, "web483", "", e.options())
	ctx := context.Background()
	if _, err := c.ResetChecked(ctx, bmc.Hard, func() error { return errLost }); !errors.Is(err, errLost) {
		t.Fatalf("failing check: %v", err)
	}
	if got := e.resetTypes(mockupID); len(got) != 0 {
		t.Fatalf("a reset was sent after the check failed: %v", got)
	}
	checked := 0
	if _, err := c.ResetChecked(ctx, bmc.Hard, func() error { checked++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := e.resetTypes(mockupID); checked != 1 || !slices.Equal(got, []string{"ForceRestart"}) {
		t.Fatalf("checked %d times, sent %v", checked, got)
	}
}

// BenchmarkResetCheckWindow measures the window the lease check leaves:
// from the last check returning to the simulated BMC receiving the reset
// request (loopback HTTPS), reported as window-µs (mean) and
// p99-window-µs. "before-read" checks before the client reads the system
// (the check in the runbook only); "before-send" is ResetChecked, what the
// runbooks use: the check runs after the read, right before the POST.
//
//	go test -run '^$' -bench ResetCheckWindow -benchtime 200x ./internal/bmc/
func BenchmarkResetCheckWindow(b *testing.B) {
	e := start(b, bmcsim.Options{})
	c, err := bmc.New(e.target("web483", ""), e.options())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	measure := func(b *testing.B, reset func(check func() error) error) {
		var windows []time.Duration
		for b.Loop() {
			var checkedAt time.Time
			if err := reset(func() error { checkedAt = time.Now(); return nil }); err != nil {
				b.Fatal(err)
			}
			rs := e.sim.Resets(mockupID)
			windows = append(windows, rs[len(rs)-1].At.Sub(checkedAt))
		}
		slices.Sort(windows)
		var sum time.Duration
		for _, w := range windows {
			sum += w
		}
		b.ReportMetric(float64(sum.Microseconds())/float64(len(windows)), "window-µs")
		b.ReportMetric(float64(windows[len(windows)*99/100].Microseconds()), "p99-window-µs")
	}
	b.Run("before-read", func(b *testing.B) {
		measure(b, func(check func() error) error {
			if err := check(); err != nil {
				return err
			}
			_, err := c.Reset(ctx, bmc.Soft)
			return err
		})
	})
	b.Run("before-send", func(b *testing.B) {
		measure(b, func(check func() error) error {
			_, err := c.ResetChecked(ctx, bmc.Soft, check)
			return err
		})
	})
}
