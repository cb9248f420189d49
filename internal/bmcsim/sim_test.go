package bmcsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) onPower(system, state string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, system+"="+state)
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func serve(t *testing.T, o Options) (*Sim, *httptest.Server) {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); srv.Close() })
	return s, srv
}

type call struct {
	method, path, body string
	user, pass, token  string
}

func do(t *testing.T, srv *httptest.Server, c call) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if c.token != "" {
		req.Header.Set("X-Auth-Token", c.token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

func TestMockupDir(t *testing.T) {
	d, err := MockupDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvMockup, "/elsewhere")
	if d2, _ := MockupDir(); d2 != "/elsewhere" {
		t.Fatalf("env override ignored: %s", d2)
	}
	if _, err := New(Options{Mockup: t.TempDir()}); err == nil {
		t.Fatal("empty mockup dir accepted")
	}
	if _, err := New(Options{Mockup: d, Systems: []System{{ID: "a/b"}}}); err == nil {
		t.Fatal("bad system ID accepted")
	}
	if _, err := New(Options{Mockup: d, Systems: []System{{ID: "a"}, {ID: "a"}}}); err == nil {
		t.Fatal("duplicate system ID accepted")
	}
}

func TestAuth(t *testing.T) {
	_, srv := serve(t, Options{Username: "admin", Password: "pw", Systems: []System{{ID: "n1"}}})
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/"}); resp.StatusCode != 200 {
		t.Fatalf("service root without auth: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1"}); resp.StatusCode != 401 {
		t.Fatalf("system without auth: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1", user: "admin", pass: "nope"}); resp.StatusCode != 401 {
		t.Fatalf("system with a wrong password: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1", user: "admin", pass: "pw"}); resp.StatusCode != 200 {
		t.Fatalf("system with basic auth: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, call{method: "POST", path: "/redfish/v1/Systems/n1/Actions/ComputerSystem.Reset", body: `{"ResetType":"ForceOff"}`}); resp.StatusCode != 401 {
		t.Fatalf("reset without auth: %d", resp.StatusCode)
	}

	// Sessions.
	if resp, _ := do(t, srv, call{method: "POST", path: sessionsPath, body: `{"UserName":"admin","Password":"nope"}`}); resp.StatusCode != 401 {
		t.Fatalf("login with a wrong password: %d", resp.StatusCode)
	}
	resp, _ := do(t, srv, call{method: "POST", path: sessionsPath, body: `{"UserName":"admin","Password":"pw"}`})
	tok, loc := resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location")
	if resp.StatusCode != 201 || tok == "" || !strings.HasPrefix(loc, sessionsPath+"/") {
		t.Fatalf("login: %d token %q location %q", resp.StatusCode, tok, loc)
	}
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1", token: tok}); resp.StatusCode != 200 {
		t.Fatalf("system with a session: %d", resp.StatusCode)
	}
	if resp, m := do(t, srv, call{method: "GET", path: sessionsPath, token: tok}); resp.StatusCode != 200 || m["Members@odata.count"] != 1.0 {
		t.Fatalf("sessions: %d %v", resp.StatusCode, m)
	}
	if resp, _ := do(t, srv, call{method: "DELETE", path: loc, token: tok}); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1", token: tok}); resp.StatusCode != 401 {
		t.Fatalf("system after logout: %d", resp.StatusCode)
	}
}

// Cloned systems keep the mockup's shape under their own ID.
func TestClonedSystems(t *testing.T) {
	_, srv := serve(t, Options{Systems: []System{{ID: "n1", AllowPowerCycle: true, Deny: []string{"Nmi"}}, {ID: "n2", PowerState: "Off", ActionInfo: true}}})
	_, coll := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems"})
	if coll["Members@odata.count"] != 2.0 {
		t.Fatalf("collection = %v", coll)
	}
	_, sys := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1/"})
	if sys["Id"] != "n1" || sys["@odata.id"] != "/redfish/v1/Systems/n1" || sys["PowerState"] != "On" || sys["Manufacturer"] != "Contoso" {
		t.Fatalf("n1 = %v", sys)
	}
	reset := sys["Actions"].(map[string]any)[resetKey].(map[string]any)
	var allowed []string
	for _, v := range reset["ResetType@Redfish.AllowableValues"].([]any) {
		allowed = append(allowed, v.(string))
	}
	if !slices.Contains(allowed, "PowerCycle") || slices.Contains(allowed, "Nmi") || reset["target"] != "/redfish/v1/Systems/n1/Actions/ComputerSystem.Reset" {
		t.Fatalf("n1 reset action = %v", reset)
	}
	if b, _ := json.Marshal(sys); strings.Contains(string(b), "/Systems/437XR1138R2") || sys["SerialNumber"] != "n1" {
		t.Errorf("n1 still links to the template system: %s", b)
	}
	// Sub-resources are served with rewritten links.
	resp, proc := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n1/Processors"})
	if resp.StatusCode != 200 || !strings.HasPrefix(proc["@odata.id"].(string), "/redfish/v1/Systems/n1/") {
		t.Fatalf("n1 processors: %d %v", resp.StatusCode, proc)
	}
	_, sys2 := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n2"})
	reset2 := sys2["Actions"].(map[string]any)[resetKey].(map[string]any)
	if sys2["PowerState"] != "Off" || reset2["@Redfish.ActionInfo"] != "/redfish/v1/Systems/n2/ResetActionInfo" || reset2["ResetType@Redfish.AllowableValues"] != nil {
		t.Fatalf("n2 = %v", reset2)
	}
	if resp, ai := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/n2/ResetActionInfo"}); resp.StatusCode != 200 || ai["Parameters"] == nil {
		t.Fatalf("n2 action info: %d %v", resp.StatusCode, ai)
	}
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/Systems/437XR1138R2"}); resp.StatusCode != 404 {
		t.Fatalf("template system still served: %d", resp.StatusCode)
	}
	if resp, _ := do(t, srv, call{method: "GET", path: "/redfish/v1/Chassis/1U"}); resp.StatusCode != 200 {
		t.Fatalf("static resource: %d", resp.StatusCode)
	}
}

func postReset(t *testing.T, srv *httptest.Server, id, typ string) int {
	t.Helper()
	resp, _ := do(t, srv, call{method: "POST", path: "/redfish/v1/Systems/" + id + "/Actions/ComputerSystem.Reset", body: `{"ResetType":"` + typ + `"}`})
	return resp.StatusCode
}

func waitState(t *testing.T, s *Sim, id, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.PowerState(id) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: PowerState %s, want %s", id, s.PowerState(id), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPowerTransitions(t *testing.T) {
	rec := &recorder{}
	s, srv := serve(t, Options{BootTime: 50 * time.Millisecond, ShutdownTime: 20 * time.Millisecond, OnPower: rec.onPower,
		Systems: []System{{ID: "n1"}}})

	if c := postReset(t, srv, "n1", "ForceRestart"); c != 204 {
		t.Fatalf("ForceRestart: %d", c)
	}
	if st := s.PowerState("n1"); st != "Off" {
		t.Fatalf("right after ForceRestart: %s", st)
	}
	waitState(t, s, "n1", "On")

	postReset(t, srv, "n1", "GracefulShutdown")
	waitState(t, s, "n1", "Off")
	postReset(t, srv, "n1", "PushPowerButton") // off → on
	waitState(t, s, "n1", "On")
	postReset(t, srv, "n1", "Nmi")
	postReset(t, srv, "n1", "ForceOff")
	postReset(t, srv, "n1", "ForceOff") // already off: no event
	postReset(t, srv, "n1", "ForceOn")
	waitState(t, s, "n1", "On")

	want := []string{"Off", "On", "PoweringOff", "Off", "PoweringOn", "On", "Off", "PoweringOn", "On"}
	for i := range want {
		want[i] = "n1=" + want[i]
	}
	if got := rec.events(); !slices.Equal(got, want) {
		t.Fatalf("OnPower calls\n got %v\nwant %v", got, want)
	}
	if n := len(s.Resets("n1")); n != 7 || s.Applied("n1") != 7 {
		t.Fatalf("resets %d applied %d", n, s.Applied("n1"))
	}
}

// A later reset supersedes the pending transitions of an earlier one.
func TestSupersede(t *testing.T) {
	s, srv := serve(t, Options{BootTime: 100 * time.Millisecond, Systems: []System{{ID: "n1"}}})
	postReset(t, srv, "n1", "ForceRestart") // Off, On in 100ms
	postReset(t, srv, "n1", "ForceOff")     // stays Off
	time.Sleep(250 * time.Millisecond)
	if st := s.PowerState("n1"); st != "Off" {
		t.Fatalf("PowerState = %s; the superseded restart came back On", st)
	}
}

func TestFaults(t *testing.T) {
	s, srv := serve(t, Options{BootTime: time.Hour, Systems: []System{
		{ID: "n1", Faults: Faults{ResetStatus: 500}},
		{ID: "n2", Faults: Faults{ResetStatus: 500, ApplyDespiteError: true}},
		{ID: "n3", Faults: Faults{Refuse: []string{"ForceRestart"}, IgnoreGraceful: true}},
		{ID: "n4"},
	}})
	if c := postReset(t, srv, "n1", "ForceRestart"); c != 500 || s.PowerState("n1") != "On" || s.Applied("n1") != 0 {
		t.Fatalf("n1: %d %s applied %d", c, s.PowerState("n1"), s.Applied("n1"))
	}
	if c := postReset(t, srv, "n2", "ForceRestart"); c != 500 || s.PowerState("n2") != "Off" || s.Applied("n2") != 1 {
		t.Fatalf("n2: %d %s applied %d", c, s.PowerState("n2"), s.Applied("n2"))
	}
	if c := postReset(t, srv, "n3", "ForceRestart"); c != 400 || s.PowerState("n3") != "On" {
		t.Fatalf("n3 refused: %d %s", c, s.PowerState("n3"))
	}
	if c := postReset(t, srv, "n3", "GracefulRestart"); c != 204 || s.PowerState("n3") != "On" {
		t.Fatalf("n3 graceful ignored: %d %s", c, s.PowerState("n3"))
	}
	if c := postReset(t, srv, "n4", "PowerCycle"); c != 400 || s.PowerState("n4") != "On" {
		t.Fatalf("n4 PowerCycle not advertised: %d %s", c, s.PowerState("n4"))
	}
	if resp, _ := do(t, srv, call{method: "POST", path: "/redfish/v1/Systems/n4/Actions/ComputerSystem.Reset", body: `{}`}); resp.StatusCode != 400 {
		t.Fatalf("missing ResetType: %d", resp.StatusCode)
	}

	// Hang: the reset is applied at once; the answer waits.
	if err := s.SetFaults("n4", Faults{ResetHang: 200 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() { done <- postReset(t, srv, "n4", "ForceOff") }()
	waitState(t, s, "n4", "Off")
	select {
	case <-done:
		t.Fatal("answer did not hang")
	case <-time.After(50 * time.Millisecond):
	}
	if c := <-done; c != 204 {
		t.Fatalf("hung answer: %d", c)
	}
	if err := s.SetFaults("nope", Faults{}); err == nil {
		t.Fatal("SetFaults on an unknown system")
	}
}
