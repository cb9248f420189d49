package bmc_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/node-healer/node-healer/internal/bmc"
	"github.com/node-healer/node-healer/internal/bmcsim"
)

func TestLoadInventory(t *testing.T) {
	inv, err := bmc.LoadInventory("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("testdata")
	t1, err := inv.Lookup("worker-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if t1.Endpoint != "https://10.0.0.11" || t1.System != "437XR1138R2" || t1.Username != "admin" ||
		t1.InsecureSkipVerify || t1.Session || t1.Source != "inventory" ||
		filepath.Clean(t1.PasswordFile) != filepath.Join(abs, "password") {
		t.Errorf("worker-1 = %+v", t1)
	}
	t2, _ := inv.Lookup("worker-2", nil)
	if t2.Endpoint != "https://bmc-2.example.com:8443" || t2.Username != "operator" || !t2.InsecureSkipVerify ||
		!t2.Session || filepath.Base(t2.PasswordFile) != "password-2" {
		t.Errorf("worker-2 = %+v", t2)
	}
	t3, _ := inv.Lookup("worker-3", nil)
	if t3.System != "/redfish/v1/Systems/worker-3" || strings.Join(t3.ResetTypes, ",") != "ForceOff,On" {
		t.Errorf("worker-3 = %+v", t3)
	}
	if _, err := inv.Lookup("worker-9", nil); !errors.Is(err, bmc.ErrUnknownNode) {
		t.Errorf("unknown node: %v", err)
	}

	j, err := bmc.LoadInventory("testdata/good.json")
	if err != nil {
		t.Fatal(err)
	}
	if tj, err := j.Lookup("worker-1", nil); err != nil || tj.System != "437XR1138R2" {
		t.Errorf("JSON inventory: %+v, %v", tj, err)
	}
}

func TestInventoryRejects(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad.*.yml")
	if len(files) < 10 {
		t.Fatalf("only %d bad fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := bmc.LoadInventory(f)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "fleet-password") {
				t.Fatalf("error leaks a credential: %v", err)
			}
			t.Log(err)
		})
	}
}

func TestAnnotationLookup(t *testing.T) {
	inv, err := bmc.LoadInventory("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	ann := func(v string) map[string]string { return map[string]string{bmc.AnnotationEndpoint: v} }

	tg, err := inv.Lookup("edge-1", ann("https://edge-1.bmc.example.com/redfish/v1/Systems/1"))
	if err != nil {
		t.Fatal(err)
	}
	if tg.Endpoint != "https://edge-1.bmc.example.com" || tg.System != "/redfish/v1/Systems/1" ||
		tg.Username != "admin" || tg.Source != "annotation" {
		t.Errorf("annotation target = %+v", tg)
	}
	// The inventory wins over an annotation.
	if tg, _ := inv.Lookup("worker-1", ann("https://evil.bmc.example.com")); tg.Endpoint != "https://10.0.0.11" {
		t.Errorf("annotation overrode the inventory: %+v", tg)
	}
	for _, bad := range []string{
		"https://attacker.example.org",          // host not allowed: would receive the fleet password
		"https://admin:x@10.0.9.1",              // credentials in the URL
		"ftp://10.0.9.1",                        // scheme
		"https://10.0.9.1/redfish/v1/Chassis/1", // not a system path
	} {
		if _, err := inv.Lookup("edge-1", ann(bad)); err == nil {
			t.Errorf("annotation %q accepted", bad)
		}
	}

	noPolicy, err := bmc.ParseInventory([]byte("defaults: {username: a, password_file: password}\n"), "testdata")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noPolicy.Lookup("edge-1", ann("https://edge-1.bmc.example.com")); !errors.Is(err, bmc.ErrUnknownNode) {
		t.Errorf("annotation honoured without allowed_hosts: %v", err)
	}
}

// A Fleet resolves nodes from the inventory and from annotations, and
// satisfies Power.
func TestFleet(t *testing.T) {
	e := start(t, bmcsim.Options{Systems: []bmcsim.System{{ID: "n1"}, {ID: "n2", PowerState: "Off"}}})
	inv, err := bmc.ParseInventory([]byte(`
defaults:
  username: admin
  password_file: `+e.pwFile+`
  ca_file: `+e.caFile+`
annotations:
  allowed_hosts: ["127.0.0.1"]
nodes:
  n1:
    endpoint: `+e.srv.URL+`
    system: n1
`), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	annotations := func(_ context.Context, node string) (map[string]string, error) {
		if node == "n2" {
			return map[string]string{bmc.AnnotationEndpoint: e.srv.URL + "/redfish/v1/Systems/n2"}, nil
		}
		return nil, nil
	}
	var p bmc.Power = bmc.NewFleet(inv, annotations, e.options())
	defer p.(*bmc.Fleet).Close()
	ctx := context.Background()
	if st, err := p.PowerState(ctx, "n1"); err != nil || st != bmc.StateOn {
		t.Fatalf("n1 = %q, %v", st, err)
	}
	if st, err := p.PowerState(ctx, "n2"); err != nil || st != bmc.StateOff {
		t.Fatalf("n2 (annotation) = %q, %v", st, err)
	}
	if sent, err := p.Reset(ctx, "n2", bmc.On); err != nil || sent != "On" {
		t.Fatalf("Reset(n2, On) = %q, %v", sent, err)
	}
	if _, err := p.PowerState(ctx, "n3"); !errors.Is(err, bmc.ErrUnknownNode) {
		t.Fatalf("n3 = %v; want ErrUnknownNode", err)
	}
	failing := bmc.NewFleet(inv, func(context.Context, string) (map[string]string, error) {
		return nil, errors.New("apiserver down")
	}, e.options())
	if _, err := failing.Reset(ctx, "n2", bmc.Hard); err == nil || !strings.Contains(err.Error(), "apiserver down") {
		t.Fatalf("Reset with unreadable annotations = %v; want the error (fail closed)", err)
	}
	if got := e.resetTypes("n2"); len(got) != 1 {
		t.Fatalf("n2 received %v", got)
	}
}
