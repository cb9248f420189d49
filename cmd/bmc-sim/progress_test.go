package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
)

// The command boots as long as a server does by default (2 minutes), shows
// PoweringOn during a restart, and passes the BootProgress faults on.
func TestBootDefaultsAndFaults(t *testing.T) {
	var help bytes.Buffer
	if code := cli([]string{"--help"}, &help); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"--boot-time=2m", "--[no-]powering-on", "--slow-boot", "no-boot-progress"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, help.String())
		}
	}
	o := options{Systems: "n1,n2", FaultSystems: "n2", PoweringOn: true,
		Faults: bmcsim.Faults{BootTime: 4 * time.Minute, NoBootProgress: true}}
	so, err := o.simOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !so.PoweringOn || so.Systems[0].Faults.BootTime != 0 || so.Systems[1].Faults.BootTime != 4*time.Minute || !so.Systems[1].Faults.NoBootProgress {
		t.Fatalf("sim options %+v", so)
	}
	if _, err := (options{Faults: bmcsim.Faults{BootTime: time.Minute}}).simOptions(nil); err == nil {
		t.Error("--slow-boot without --systems accepted")
	}
}
