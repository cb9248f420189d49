package bmc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/testenv"
)

// ipmiFleet starts one ipmi_sim per node and a Fleet whose inventory
// names them with protocol: ipmi.
func ipmiFleet(t *testing.T, password string, nodes ...string) (*bmc.Fleet, map[string]*testenv.IPMISim, *bmc.Metrics) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sims := map[string]*testenv.IPMISim{}
	y := "defaults: {protocol: ipmi, username: admin, password_file: pw, privilege: operator}\nnodes:\n"
	for _, n := range nodes {
		s := testenv.StartIPMISimT(t, testenv.IPMISimOptions{Name: n})
		sims[n] = s
		y += "  " + n + ": {host: 127.0.0.1, port: " + itoa(s.Port) + ", interface: lanplus}\n"
	}
	inv, err := bmc.ParseInventory([]byte(y), dir)
	if err != nil {
		t.Fatal(err)
	}
	m := bmc.NewMetrics(prometheus.NewRegistry())
	f := bmc.NewFleet(inv, nil, bmc.Options{Timeout: 3 * time.Second, OffWait: 8 * time.Second, Poll: 200 * time.Millisecond, Metrics: m})
	t.Cleanup(f.Close)
	return f, sims, m
}

func itoa(i int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(i)) }

func fmtInt(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func waitCount(t *testing.T, s *testenv.IPMISim, kind string, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for s.Count(kind) < n {
		if time.Now().After(deadline) {
			t.Fatalf("simulator logged %d %q, want %d: %q", s.Count(kind), kind, n, s.Events())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Against OpenIPMI's ipmi_sim: power status, a power cycle of a hung
// server (one power-down seen by the server, then it starts again), a
// soft reboot the OS honours, and power off then on (fence).
func TestIPMISimPower(t *testing.T) {
	f, sims, m := ipmiFleet(t, "secret", "n1", "n2")
	ctx := context.Background()
	if st, err := f.PowerState(ctx, "n1"); err != nil || st != bmc.StateOn {
		t.Fatalf("PowerState = %q, %v", st, err)
	}

	n1 := sims["n1"]
	if err := n1.SetHung(true); err != nil {
		t.Fatal(err)
	}
	sent, err := f.ResetOnce(ctx, "n1", bmc.Hard, "run-1/power-cycle")
	if err != nil || sent != "chassis power cycle" {
		t.Fatalf("Hard = %q, %v", sent, err)
	}
	waitCount(t, n1, "start", 2)
	if off, soft, reset := n1.Count("off"), n1.Count("soft"), n1.Count("reset"); off != 1 || soft != 0 || reset != 0 {
		t.Fatalf("simulator acted on off=%d soft=%d reset=%d; want one power cycle: %q", off, soft, reset, n1.Events())
	}
	if _, err := f.ResetOnce(ctx, "n1", bmc.Hard, "run-1/power-cycle"); !errors.Is(err, bmc.ErrAlreadySent) {
		t.Fatalf("second ResetOnce = %v", err)
	}
	if v := testutil.ToFloat64(m.Resets.WithLabelValues(bmc.ProtocolIPMI, "cycle")); v != 1 {
		t.Errorf("resets_total{ipmi,cycle} = %v", v)
	}

	n2 := sims["n2"]
	if sent, err := f.Reset(ctx, "n2", bmc.Soft); err != nil || sent != "chassis power soft+on" {
		t.Fatalf("Soft = %q, %v (events %q)", sent, err, n2.Events())
	}
	waitCount(t, n2, "start", 2)
	if n2.Count("soft") != 1 || n2.Count("off") != 0 {
		t.Fatalf("soft reboot: %q", n2.Events())
	}

	// Fence: off, confirmed by Get Chassis Status, then on.
	if sent, err := f.Reset(ctx, "n2", bmc.Off); err != nil || sent != "chassis power off" {
		t.Fatalf("Off = %q, %v", sent, err)
	}
	if st, err := f.WaitPowerState(ctx, "n2", bmc.StateOff, 10*time.Second); err != nil {
		t.Fatalf("wait Off: %q, %v", st, err)
	}
	if sent, err := f.Reset(ctx, "n2", bmc.Off); err != nil || sent != "" {
		t.Fatalf("Off when off = %q, %v", sent, err)
	}
	if sent, err := f.Reset(ctx, "n2", bmc.On); err != nil || sent != "chassis power on" {
		t.Fatalf("On = %q, %v", sent, err)
	}
	waitCount(t, n2, "start", 3)
}

// A power-cycle of a node that is already off: ipmi_sim accepts the cycle
// and powers the server on (one start, nothing else sent). The IPMI spec
// also lets a BMC refuse the cycle while off (completion code); ipmi_sim
// never does, so node-healer's off+on fallback for that is covered by
// TestIPMICycleRefusedFallsBack against a fake.
func TestIPMISimCycleWhileOff(t *testing.T) {
	f, sims, _ := ipmiFleet(t, "secret", "n1")
	ctx := context.Background()
	n1 := sims["n1"]
	if sent, err := f.Reset(ctx, "n1", bmc.Off); err != nil || sent != "chassis power off" {
		t.Fatalf("Off = %q, %v", sent, err)
	}
	if st, err := f.WaitPowerState(ctx, "n1", bmc.StateOff, 10*time.Second); err != nil {
		t.Fatalf("wait Off: %q, %v", st, err)
	}
	starts := n1.Count("start")
	sent, err := f.ResetOnce(ctx, "n1", bmc.Hard, "run-off/power-cycle")
	if err != nil || sent != "chassis power cycle" {
		t.Fatalf("Hard while off = %q, %v (events %q)", sent, err, n1.Events())
	}
	waitCount(t, n1, "start", starts+1)
	if st, err := f.WaitPowerState(ctx, "n1", bmc.StateOn, 10*time.Second); err != nil {
		t.Fatalf("wait On after the cycle: %q, %v", st, err)
	}
	if off := n1.Count("off"); off != 1 {
		t.Errorf("simulator saw %d power-offs, want only the first (events %q)", off, n1.Events())
	}
}

// A hung OS ignores the soft shutdown: the soft reboot ends with an error
// and power on is not sent.
func TestIPMISimSoftIgnored(t *testing.T) {
	f, sims, _ := ipmiFleet(t, "secret", "n1")
	_ = sims["n1"].SetHung(true)
	_, err := f.Reset(context.Background(), "n1", bmc.Soft)
	if !errors.Is(err, bmc.ErrTimeout) || !strings.Contains(err.Error(), "power on not sent") {
		t.Fatalf("Soft on a hung node = %v", err)
	}
	if n := sims["n1"].Count("soft"); n != 1 {
		t.Fatalf("soft requests seen by the server: %d", n)
	}
}

// Wrong password: a clear error, no control reaches the simulator; a
// closed port: an error after the timeout.
func TestIPMISimFailures(t *testing.T) {
	f, sims, _ := ipmiFleet(t, "wrong-password", "n1")
	_, err := f.Reset(context.Background(), "n1", bmc.Hard)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("wrong password = %v", err)
	}
	if n := sims["n1"].Count("off"); n != 0 {
		t.Fatalf("simulator acted on %d power-downs", n)
	}

	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "pw"), []byte("secret"), 0o600)
	port, _ := testenv.FreePort()
	inv, err := bmc.ParseInventory([]byte("nodes:\n  n9: {protocol: ipmi, host: 127.0.0.1, port: "+itoa(port)+", username: admin, password_file: pw}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	closed := bmc.NewFleet(inv, nil, bmc.Options{Timeout: time.Second})
	start := time.Now()
	if _, err := closed.Reset(context.Background(), "n9", bmc.Hard); err == nil || !errors.Is(err, bmc.ErrBMC) {
		t.Fatalf("closed port = %v", err)
	} else {
		t.Logf("closed port after %s: %v", time.Since(start), err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("closed port took %s", time.Since(start))
	}
}

// The simulator dies right as the power cycle is sent: the outcome is
// unknown, the power state is read again, and nothing is resent for the
// decision; the restarted simulator sees no power-down.
func TestIPMISimKilledMidCycle(t *testing.T) {
	f, sims, _ := ipmiFleet(t, "secret", "n1")
	s := sims["n1"]
	_, err := f.ResetChecked(context.Background(), "n1", bmc.Hard, func() error { s.Kill(); return nil })
	var re *bmc.ResetError
	if !errors.As(err, &re) || !re.Maybe || re.After != bmc.StateUnknown {
		t.Fatalf("cycle into a dead BMC = %#v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	waitCount(t, s, "start", 2)
	if st, err := f.PowerState(context.Background(), "n1"); err != nil || st != bmc.StateOn {
		t.Fatalf("after restart: %q, %v", st, err)
	}
	if n := s.Count("off"); n != 0 {
		t.Fatalf("a power-down reached the simulator: %q", s.Events())
	}
}
