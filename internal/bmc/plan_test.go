package bmc

import (
	"errors"
	"slices"
	"testing"
)

func TestPlan(t *testing.T) {
	mockup := []string{"On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn", "PushPowerButton"}
	without := func(drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(mockup), func(v string) bool { return slices.Contains(drop, v) })
	}
	for _, tc := range []struct {
		name    string
		kind    Kind
		allowed []string
		state   State
		want    []string // nil with wantErr false: nothing to send
		wantErr bool
	}{
		{"soft", Soft, mockup, StateOn, []string{"GracefulRestart"}, false},
		{"soft not allowed", Soft, without("GracefulRestart"), StateOn, nil, true},
		{"hard prefers PowerCycle", Hard, append(slices.Clone(mockup), "PowerCycle"), StateOn, []string{"PowerCycle"}, false},
		{"hard on the mockup", Hard, mockup, StateOn, []string{"ForceRestart"}, false},
		{"hard fallback", Hard, without("ForceRestart"), StateOn, []string{"ForceOff", "On"}, false},
		{"hard fallback ForceOn", Hard, without("ForceRestart", "On"), StateOn, []string{"ForceOff", "ForceOn"}, false},
		{"hard fallback button", Hard, []string{"ForceOff", "PushPowerButton"}, StateOn, []string{"ForceOff", "PushPowerButton"}, false},
		{"hard no way back on", Hard, []string{"ForceOff", "GracefulRestart"}, StateOn, nil, true},
		{"hard nothing", Hard, nil, StateOn, nil, true},
		{"off", Off, mockup, StateOn, []string{"ForceOff"}, false},
		{"off graceful only", Off, without("ForceOff"), StateOn, []string{"GracefulShutdown"}, false},
		{"off already", Off, mockup, StateOff, nil, false},
		{"off while powering off", Off, mockup, StatePoweringOff, []string{"ForceOff"}, false},
		{"on", On, mockup, StateOff, []string{"On"}, false},
		{"on ForceOn", On, without("On"), StateOff, []string{"ForceOn"}, false},
		{"on already", On, mockup, StateOn, nil, false},
		{"on powering on", On, mockup, StatePoweringOn, nil, false},
		{"on button when off", On, []string{"PushPowerButton"}, StateOff, []string{"PushPowerButton"}, false},
		{"on button not when unknown", On, []string{"PushPowerButton"}, StateUnknown, nil, true},
		{"on button not when powering off", On, []string{"PushPowerButton"}, StatePoweringOff, nil, true},
		{"on nothing", On, []string{"ForceOff"}, StateOff, nil, true},
		{"unknown kind", Kind("nuke"), mockup, StateOn, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(tc.kind, tc.allowed, tc.state)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Plan = %v, %v; wantErr %v", got, err, tc.wantErr)
			}
			if err != nil && tc.kind != "nuke" && !errors.Is(err, ErrNotAllowed) {
				t.Errorf("error %v is not ErrNotAllowed", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Plan = %v, want %v", got, tc.want)
			}
			for _, t2 := range got {
				if !slices.Contains(tc.allowed, t2) {
					t.Errorf("plan sends %s, which is not allowed", t2)
				}
			}
		})
	}
}
