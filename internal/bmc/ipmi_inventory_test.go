package bmc_test

import (
	"strings"
	"testing"

	"github.com/node-healer/node-healer/internal/bmc"
)

func TestIPMIInventory(t *testing.T) {
	inv, err := bmc.ParseInventory([]byte(`
defaults: {username: admin, password_file: password, protocol: ipmi, cipher_suite: 17}
nodes:
  n1: {host: 10.0.0.21}
  n2: {host: bmc-2.example.com, port: 6230, privilege: administrator, cipher_suite: 3, interface: lanplus}
  n3: {protocol: redfish, endpoint: "https://10.0.0.23"}
`), "testdata")
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := inv.Lookup("n1", nil)
	if t1.Protocol != bmc.ProtocolIPMI || t1.Host != "10.0.0.21" || t1.Port != 623 || t1.Privilege != "operator" || t1.CipherSuite != 17 {
		t.Errorf("n1 = %+v", t1)
	}
	t2, _ := inv.Lookup("n2", nil)
	if t2.Port != 6230 || t2.Privilege != "administrator" || t2.CipherSuite != 3 {
		t.Errorf("n2 = %+v", t2)
	}
	if t3, _ := inv.Lookup("n3", nil); t3.Protocol != bmc.ProtocolRedfish {
		t.Errorf("n3 = %+v", t3)
	}
}

// Each bad IPMI entry is rejected with an error naming the field.
func TestIPMIInventoryRejects(t *testing.T) {
	for field, node := range map[string]string{
		"port":                 `{protocol: ipmi, host: h, port: 70000}`,
		"privilege":            `{protocol: ipmi, host: h, privilege: user}`,
		"host is required":     `{protocol: ipmi}`,
		"cipher_suite":         `{protocol: ipmi, host: h, cipher_suite: 1}`,
		"interface":            `{protocol: ipmi, host: h, interface: lan}`,
		"protocol":             `{protocol: snmp, host: h}`,
		"endpoint":             `{protocol: ipmi, host: h, endpoint: "https://h"}`,
		"host \"h:623\"":       `{protocol: ipmi, host: "h:623"}`,
		"host \"ipmi://h\"":    `{protocol: ipmi, host: "ipmi://h"}`,
		"host is an IPMI":      `{endpoint: "https://h", host: h}`,
		"reset_types":          `{protocol: ipmi, host: h, reset_types: [On]}`,
		"insecure_skip_verify": `{protocol: ipmi, host: h, insecure_skip_verify: true}`,
	} {
		_, err := bmc.ParseInventory([]byte("defaults: {username: admin, password_file: password}\nnodes:\n  n1: "+node+"\n"), "testdata")
		if err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "n1") {
			t.Errorf("%s: err = %v; want one naming %q and the node", node, err, field)
		}
	}
	if _, err := bmc.ParseInventory([]byte("defaults: {privilege: root}\n"), "testdata"); err == nil || !strings.Contains(err.Error(), "defaults: privilege") {
		t.Errorf("bad default privilege: %v", err)
	}
}
