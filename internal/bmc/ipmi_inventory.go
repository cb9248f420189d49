package bmc

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// DefaultIPMIPort is the RMCP port.
const DefaultIPMIPort = 623

// protocol is an entry's protocol: its own, else the defaults', else Redfish.
func (inv *Inventory) protocol(e Entry) string {
	switch {
	case e.Protocol != "":
		return e.Protocol
	case inv.Defaults.Protocol != "":
		return inv.Defaults.Protocol
	}
	return ProtocolRedfish
}

func checkProtocol(p string) error {
	if p != "" && p != ProtocolRedfish && p != ProtocolIPMI {
		return fmt.Errorf("protocol %q: want redfish or ipmi", p)
	}
	return nil
}

// checkNode validates a node entry for its protocol.
func (inv *Inventory) checkNode(e Entry) error {
	if err := checkProtocol(e.Protocol); err != nil {
		return err
	}
	if err := checkIPMIFields(e); err != nil {
		return err
	}
	if inv.protocol(e) == ProtocolRedfish {
		for field, set := range map[string]bool{"host": e.Host != "", "port": e.Port != 0, "privilege": e.Privilege != "",
			"cipher_suite": e.CipherSuite != 0, "interface": e.Interface != ""} {
			if set {
				return fmt.Errorf("%s is an IPMI field; this node's protocol is redfish (set protocol: ipmi)", field)
			}
		}
		return checkEntry(e, true)
	}
	if e.Host == "" {
		return errors.New("host is required for protocol ipmi")
	}
	if strings.ContainsAny(e.Host, "/@ ") || strings.Contains(e.Host, "://") {
		return fmt.Errorf("host %q: want a host name or IP address (no scheme, path or credentials)", e.Host)
	}
	if _, _, err := net.SplitHostPort(e.Host); err == nil {
		return fmt.Errorf("host %q: put the port in port, not in host", e.Host)
	}
	for field, set := range map[string]bool{"endpoint": e.Endpoint != "", "system": e.System != "", "auth": e.Auth != "",
		"reset_types": len(e.ResetTypes) > 0, "ca_file": e.CAFile != "", "insecure_skip_verify": e.InsecureSkipVerify != nil} {
		if set {
			return fmt.Errorf("%s is a Redfish field; this node's protocol is ipmi", field)
		}
	}
	return nil
}

// checkIPMIFields validates the IPMI fields an entry (or the defaults) sets.
func checkIPMIFields(e Entry) error {
	if e.Port < 0 || e.Port > 65535 {
		return fmt.Errorf("port %d: want 1-65535 (default %d)", e.Port, DefaultIPMIPort)
	}
	switch e.Privilege {
	case "", "operator", "administrator":
	default:
		return fmt.Errorf("privilege %q: want operator or administrator", e.Privilege)
	}
	switch e.CipherSuite {
	case 0, 3, 17:
	default:
		return fmt.Errorf("cipher_suite %d: want 17 or 3 (omit it to use 17 if the BMC offers it, else 3)", e.CipherSuite)
	}
	if e.Interface != "" && e.Interface != "lanplus" {
		return fmt.Errorf("interface %q: want lanplus (IPMI v2.0, RMCP+)", e.Interface)
	}
	return nil
}
