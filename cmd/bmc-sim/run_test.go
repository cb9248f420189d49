package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/bmcsim"
	"github.com/node-healer/node-healer/internal/testenv"
)

func TestRun(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("sim-Secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := make(chan net.Addr, 1)
	o := options{Listen: "127.0.0.1:0", Systems: "n1,n2", BootTime: 50 * time.Millisecond, Username: "admin",
		PasswordFile: pw, PowerCycle: true, FaultSystems: "n2", Faults: bmcFaults(), LogFormat: "logfmt",
		onListen: func(a net.Addr) { addr <- a }}
	var logs testenv.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, &logs) }()
	var a net.Addr
	select {
	case a = <-addr:
	case err := <-done:
		t.Fatal(err)
	}

	c, err := bmc.New(bmc.Target{Node: "n1", Endpoint: "http://" + a.String(), System: "n1", Username: "admin", PasswordFile: pw},
		bmc.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sent, err := c.Reset(ctx, bmc.Hard); err != nil || sent != "PowerCycle" {
		t.Fatalf("Reset = %q, %v", sent, err)
	}
	if _, err := c.Reset(ctx, bmc.Soft); err != nil {
		t.Fatalf("n1 has no faults: %v", err)
	}
	c2, _ := bmc.New(bmc.Target{Node: "n2", Endpoint: "http://" + a.String(), System: "n2", Username: "admin", PasswordFile: pw},
		bmc.Options{Timeout: 2 * time.Second})
	defer c2.Close()
	if _, err := c2.Reset(ctx, bmc.Hard); err == nil {
		t.Fatal("n2 should answer 500")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"type=PowerCycle", "system=n2", "status=500", "state=Off"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "sim-Secret-1") {
		t.Fatal("logs leak the password")
	}
}

func bmcFaults() (f bmcsim.Faults) {
	f.ResetStatus = 500
	return f
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []options{
		{Systems: "n1", FaultSystems: "n9"},
		{Systems: "n1", Faults: bmcsim.Faults{ApplyDespiteError: true}},
		{Systems: "n1", Faults: bmcsim.Faults{ResetStatus: 200}},
		{PowerCycle: true},
		{Systems: "n1", PasswordFile: "/nonexistent"},
	} {
		if _, err := o.simOptions(nil); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	if code := cli([]string{"--no-such-flag"}, &bytes.Buffer{}); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
}
