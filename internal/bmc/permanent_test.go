package bmc

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/stmcginnis/gofish/schemas"
)

func TestPermanent(t *testing.T) {
	c := &Client{t: Target{Node: "n1"}}
	ic := &IPMIClient{t: Target{Node: "n1"}}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"redfish 401", c.wrap("power state", &schemas.Error{HTTPReturnedStatusCode: 401}), ErrAuth},
		{"redfish 403", c.wrap("power state", &schemas.Error{HTTPReturnedStatusCode: 403}), ErrAuth},
		{"redfish 500", c.wrap("power state", &schemas.Error{HTTPReturnedStatusCode: 500}), nil},
		{"redfish dial", c.wrap("power state", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), ErrUnreachable},
		{"ipmi rakp", ic.wrap("chassis power status", errors.New("rakp1 failed with cipher suite id (3)")), ErrAuth},
		{"ipmi refused", ic.wrap("chassis power status", errors.New("read: connection refused")), ErrUnreachable},
		{"ipmi other", ic.wrap("chassis power status", errors.New("something odd")), nil},
		{"plain", fmt.Errorf("x: %w", errors.New("y")), nil},
	} {
		got, ok := Permanent(tc.err)
		if got != tc.want || ok != (tc.want != nil) || (tc.name != "plain" && !errors.Is(tc.err, ErrBMC)) {
			t.Errorf("%s: Permanent(%v) = %v, %v; want %v", tc.name, tc.err, got, ok, tc.want)
		}
	}
}
