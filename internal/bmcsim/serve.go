package bmcsim

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
)

// ServeTLS serves the simulator over TLS on a loopback port, as the demo,
// the end-to-end pipeline and the benchmarks run it beside node-healer,
// and writes into dir what node-healer's BMC inventory needs: the
// server's certificate (ca.pem), the password file (bmc-password) and an
// inventory (inventory.yml) naming, for every node, the system of that ID
// at this endpoint. It returns the server (Close it when done) and the
// inventory's path.
func (s *Sim) ServeTLS(dir string, nodes []string) (*httptest.Server, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // clients that hang up mid-answer are expected
	srv.StartTLS()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	var inv strings.Builder
	fmt.Fprintf(&inv, "defaults: {username: %s, password_file: bmc-password, ca_file: ca.pem}\nnodes:\n", s.opts.Username)
	for _, n := range nodes {
		fmt.Fprintf(&inv, "  %s: {endpoint: %s, system: %s}\n", n, srv.URL, n)
	}
	inventory := filepath.Join(dir, "inventory.yml")
	for name, data := range map[string][]byte{"ca.pem": ca, "bmc-password": []byte(s.opts.Password + "\n"), "inventory.yml": []byte(inv.String())} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			srv.Close()
			return nil, "", err
		}
	}
	return srv, inventory, nil
}
