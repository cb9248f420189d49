package bmcsim

import (
	"slices"
	"testing"
	"time"
)

// observed is one distinct (PowerState, BootProgress.LastState) seen.
type observed struct {
	power, boot string
	at          time.Time // LastStateTime
}

// watch samples a system until it is On with OSRunning newer than from, or
// the timeout passes, and returns the distinct values seen in order.
func watch(t *testing.T, s *Sim, id string, from time.Time, timeout time.Duration) []observed {
	t.Helper()
	var seen []observed
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p := s.PowerState(id)
		b, at := s.BootProgress(id)
		o := observed{p, b, at}
		if len(seen) == 0 || seen[len(seen)-1] != o {
			seen = append(seen, o)
		}
		if p == "On" && b == bootOSRunning && at.After(from) {
			return seen
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s not back within %s; seen %v", id, timeout, seen)
	return nil
}

// A healthy graceful restart: PoweringOff, Off, PoweringOn while the boot
// walks to OSBootStarted and OSRunning, each LastStateTime later than the
// one before, all after the reset; OSRunning only once PowerState is On.
func TestBootProgressHealthyRestart(t *testing.T) {
	rec := &recorder{}
	const boot = 400 * time.Millisecond
	s, srv := serve(t, Options{BootTime: boot, ShutdownTime: 60 * time.Millisecond, PoweringOn: true, OnPower: rec.onPower,
		Systems: []System{{ID: "n1"}}})
	if b, at := s.BootProgress("n1"); b != bootOSRunning || at.IsZero() {
		t.Fatalf("initial BootProgress %q %v", b, at)
	}
	_, body := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1"})
	bp, _ := body["BootProgress"].(map[string]any)
	if bp["LastState"] != bootOSRunning || bp["LastStateTime"] == "" {
		t.Fatalf("served BootProgress %v", body["BootProgress"])
	}
	sent := time.Now()
	if c := postReset(t, srv, "n1", "GracefulRestart"); c != 204 {
		t.Fatalf("GracefulRestart: %d", c)
	}
	seen := watch(t, s, "n1", sent, 5*time.Second)

	var boots []string
	last := time.Time{}
	for _, o := range seen {
		if len(boots) == 0 || boots[len(boots)-1] != o.boot {
			boots = append(boots, o.boot)
			if len(boots) > 1 && !o.at.After(last) {
				t.Errorf("LastStateTime of %s (%v) not after the previous state's (%v)", o.boot, o.at, last)
			}
			last = o.at
		}
		if o.boot != bootOSRunning && o.power == "On" {
			t.Errorf("PowerState On while BootProgress is %s", o.boot)
		}
		if o.boot == bootOS && o.power != "PoweringOn" {
			t.Errorf("OSBootStarted with PowerState %s, want PoweringOn", o.power)
		}
	}
	// Samples may miss a short state, never reorder them.
	full := []string{bootOSRunning, bootNone, bootCPU, bootHardware, bootOS, bootOSRunning}
	if !subsequence(boots, full) || !slices.Contains(boots, bootOS) || boots[0] != bootOSRunning || boots[len(boots)-1] != bootOSRunning || len(boots) < 3 {
		t.Fatalf("BootProgress walk %v, want a subsequence of %v through %s", boots, full, bootOS)
	}
	if got, want := rec.events(), []string{"n1=PoweringOff", "n1=Off", "n1=PoweringOn", "n1=On"}; !slices.Equal(got, want) {
		t.Fatalf("OnPower calls %v, want %v", got, want)
	}
	_, body = do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1"})
	bp, _ = body["BootProgress"].(map[string]any)
	if secs, _ := bp["LastBootTimeSeconds"].(float64); secs < boot.Seconds()*0.9 || secs > boot.Seconds()*3 {
		t.Errorf("LastBootTimeSeconds %v, want about %v", bp["LastBootTimeSeconds"], boot.Seconds())
	}
	if at, err := time.Parse(time.RFC3339, bp["LastStateTime"].(string)); err != nil || !at.After(sent) {
		t.Errorf("served LastStateTime %v (%v), want after the reset at %v", bp["LastStateTime"], err, sent)
	}
}

func subsequence(got, full []string) bool {
	i := 0
	for _, g := range got {
		for i < len(full) && full[i] != g {
			i++
		}
		if i == len(full) {
			return false
		}
		i++
	}
	return true
}

// A hung OS ignores the graceful restart: PowerState On, BootProgress
// OSRunning with the LastStateTime it had before the reset.
func TestBootProgressHungOS(t *testing.T) {
	rec := &recorder{}
	s, srv := serve(t, Options{BootTime: 50 * time.Millisecond, ShutdownTime: 20 * time.Millisecond, PoweringOn: true, OnPower: rec.onPower,
		Systems: []System{{ID: "n1", Faults: Faults{IgnoreGraceful: true}}}})
	_, before := s.BootProgress("n1")
	sent := time.Now()
	postReset(t, srv, "n1", "GracefulRestart")
	time.Sleep(200 * time.Millisecond)
	b, at := s.BootProgress("n1")
	if b != bootOSRunning || !at.Equal(before) || !at.Before(sent) || s.PowerState("n1") != "On" {
		t.Fatalf("hung OS: %s %s at %v (before the reset: %v)", s.PowerState("n1"), b, at, before)
	}
	if got := rec.events(); len(got) != 0 {
		t.Fatalf("power changes on a hung OS: %v", got)
	}
	// The hard reset works: a new boot.
	postReset(t, srv, "n1", "ForceRestart")
	watch(t, s, "n1", sent, 5*time.Second)
}

// Faults.BootTime slows one system's boot; Faults.NoBootProgress serves no
// BootProgress; without Options.PoweringOn a restart stays Off until On.
func TestBootProgressFaults(t *testing.T) {
	rec := &recorder{}
	s, srv := serve(t, Options{BootTime: 30 * time.Millisecond, OnPower: rec.onPower, Systems: []System{
		{ID: "slow", Faults: Faults{BootTime: 600 * time.Millisecond}},
		{ID: "old", Faults: Faults{NoBootProgress: true}},
	}})
	sent := time.Now()
	postReset(t, srv, "slow", "ForceRestart")
	time.Sleep(200 * time.Millisecond)
	if p, b := s.PowerState("slow"), s.boot("slow"); p != "Off" || b == bootOSRunning {
		t.Fatalf("slow boot after 200ms: %s %s", p, b)
	}
	watch(t, s, "slow", sent, 5*time.Second)
	if d := time.Since(sent); d < 600*time.Millisecond {
		t.Fatalf("slow boot took %s", d)
	}
	if got, want := rec.events(), []string{"slow=Off", "slow=On"}; !slices.Equal(got, want) {
		t.Fatalf("OnPower calls %v, want %v", got, want)
	}
	_, body := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/old"})
	if _, ok := body["BootProgress"]; ok || body["PowerState"] != "On" {
		t.Fatalf("NoBootProgress system served %v / %v", body["BootProgress"], body["PowerState"])
	}
	// SetPowerState keeps BootProgress consistent.
	if err := s.SetPowerState("old", "Off"); err != nil {
		t.Fatal(err)
	}
	if b := s.boot("old"); b != bootNone {
		t.Fatalf("Off with BootProgress %s", b)
	}
}

func (s *Sim) boot(id string) string {
	b, _ := s.BootProgress(id)
	return b
}
