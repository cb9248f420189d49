package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmcsim"
)

func TestCheckBMC(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string // "" = accepted
		bmc  string // the protocol after defaulting
	}{
		{name: "default is redfish", o: Options{}, bmc: BMCRedfish},
		{name: "redfish keeps every fault", o: Options{BMC: BMCRedfish, Faults: map[string]bmcsim.Faults{"node-1": {BootTime: time.Minute}}}, bmc: BMCRedfish},
		{name: "ipmi with a hung OS", o: Options{BMC: BMCIPMI, Faults: map[string]bmcsim.Faults{"node-1": {IgnoreGraceful: true}}}, bmc: BMCIPMI},
		{name: "ipmi cannot slow the boot", o: Options{BMC: BMCIPMI, Faults: map[string]bmcsim.Faults{"node-1": {IgnoreGraceful: true, BootTime: time.Minute}}}, want: "need the Redfish simulator"},
		{name: "ipmi cannot refuse resets", o: Options{BMC: BMCIPMI, Faults: map[string]bmcsim.Faults{"node-2": {Refuse: []string{"ForceRestart"}}}}, want: "node-2"},
		{name: "unknown protocol", o: Options{BMC: "ilo"}, want: `unknown BMC protocol "ilo"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkBMC(&c.o)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("err %v, want one containing %q", err, c.want)
			case c.want == "" && c.o.BMC != c.bmc:
				t.Fatalf("protocol %q, want %q", c.o.BMC, c.bmc)
			}
		})
	}
}

func TestReceiverConfigOffWait(t *testing.T) {
	ipmi := receiverConfig(&Options{BMC: BMCIPMI}, "redis://x", "tok", "inv.yml", "http://am")
	if !strings.Contains(ipmi, "off_wait: 10s") {
		t.Errorf("IPMI demo config without the short off_wait:\n%s", ipmi)
	}
	for _, o := range []Options{{BMC: BMCRedfish}, {BMC: BMCIPMI, Shipped: true}} {
		if c := receiverConfig(&o, "redis://x", "tok", "inv.yml", "http://am"); strings.Contains(c, "off_wait") {
			t.Errorf("%+v: off_wait set, want node-healer's default:\n%s", o, c)
		}
	}
}
