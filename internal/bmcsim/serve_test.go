package bmcsim

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeTLS: the written CA verifies the server, the password file
// holds the simulator's password and the inventory names each node's
// system at the endpoint, which answers with those credentials.
func TestServeTLS(t *testing.T) {
	s, err := New(Options{Systems: []System{{ID: "n1"}, {ID: "n2"}}, Username: "admin", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir := filepath.Join(t.TempDir(), "bmc")
	srv, inventory, err := s.ServeTLS(dir, []string{"n1", "n2"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if inventory != filepath.Join(dir, "inventory.yml") {
		t.Errorf("inventory %s", inventory)
	}
	inv := read("inventory.yml")
	for _, want := range []string{"username: admin", "password_file: bmc-password", "ca_file: ca.pem",
		"n1: {endpoint: " + srv.URL + ", system: n1}", "n2: {endpoint: " + srv.URL + ", system: n2}"} {
		if !strings.Contains(inv, want) {
			t.Errorf("inventory lacks %q:\n%s", want, inv)
		}
	}
	if pw := read("bmc-password"); pw != "pw\n" {
		t.Errorf("password file %q", pw)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(read("ca.pem"))) {
		t.Fatal("ca.pem holds no certificate")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/redfish/v1/Systems/n1", nil)
	req.SetBasicAuth("admin", "pw")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("the CA does not verify the server: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET system n1: %d", resp.StatusCode)
	}
}
