package bmc

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// AnnotationEndpoint is the node annotation naming a node's BMC when the
// inventory has no entry for it: a URL "https://host[:port]", optionally
// followed by the system path "/redfish/v1/Systems/<id>".
const AnnotationEndpoint = "node-healer.io/bmc-endpoint"

// Inventory maps nodes to their BMCs. It is loaded from a YAML or JSON file:
//
//	defaults:                      # optional; every field but endpoint/system
//	  username: admin
//	  password_file: /etc/node-healer/bmc/password
//	  ca_file: /etc/node-healer/bmc/ca.pem
//	annotations:                   # optional; without it annotations are ignored
//	  allowed_hosts: ["*.bmc.example.com", "10.0.*"]
//	nodes:
//	  worker-1:
//	    endpoint: https://10.0.0.11
//	    system: 437XR1138R2        # Id or /redfish/v1/Systems/<id>; omit: the only system
//	    username: admin            # overrides defaults
//	    password_file: worker-1.pw # relative paths are relative to the inventory file
//	    insecure_skip_verify: false
//	    auth: basic                # basic (default) or session
//	    reset_types: [...]         # only used if the BMC advertises none
//	  worker-4:                    # an IPMI v2.0 BMC (RMCP+, lanplus)
//	    protocol: ipmi             # redfish (default) or ipmi; defaults may set it
//	    host: 10.0.0.14            # IPMI: host or IP, instead of endpoint
//	    port: 623                  # IPMI: UDP port, default 623
//	    privilege: operator        # IPMI: operator (default) or administrator
//	    cipher_suite: 17           # IPMI: 17 or 3; omitted: 17 if offered, else 3
//	    interface: lanplus         # IPMI: lanplus (the only one; IPMI 1.5 is not supported)
//
// An annotation-named endpoint receives the default credentials, so it is
// honoured only when its host matches annotations.allowed_hosts (path.Match
// patterns): whoever can annotate a node must not be able to collect the
// fleet's BMC password.
type Inventory struct {
	Defaults    Entry            `yaml:"defaults"`
	Annotations AnnotationPolicy `yaml:"annotations"`
	Nodes       map[string]Entry `yaml:"nodes"`
}

// Entry is one node's BMC (or the defaults).
type Entry struct {
	Endpoint           string   `yaml:"endpoint"`
	System             string   `yaml:"system"`
	Username           string   `yaml:"username"`
	PasswordFile       string   `yaml:"password_file"`
	InsecureSkipVerify *bool    `yaml:"insecure_skip_verify"`
	CAFile             string   `yaml:"ca_file"`
	Auth               string   `yaml:"auth"`
	ResetTypes         []string `yaml:"reset_types"`

	Protocol    string `yaml:"protocol"`
	Host        string `yaml:"host"`
	Port        int    `yaml:"port"`
	Privilege   string `yaml:"privilege"`
	CipherSuite int    `yaml:"cipher_suite"`
	Interface   string `yaml:"interface"`
}

// AnnotationPolicy says which annotation-named endpoints are trusted.
type AnnotationPolicy struct {
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// Target is one node's resolved BMC connection settings.
type Target struct {
	Node     string
	Endpoint string // scheme://host[:port]
	// System is the system's Id or path; "" picks the only system.
	System   string
	Username string
	// Password, if set, is used as is; otherwise PasswordFile is read at
	// every (re)connect, so a rotated Secret is picked up.
	Password           Secret
	PasswordFile       string
	InsecureSkipVerify bool
	CAFile             string
	// Session logs in with a Redfish session instead of basic auth.
	Session bool
	// ResetTypes stand in for the allowed types when the BMC advertises none.
	ResetTypes []string
	// Source is "inventory" or "annotation".
	Source string

	// Protocol is ProtocolRedfish or ProtocolIPMI. The fields below are
	// IPMI's (Endpoint, System, TLS and ResetTypes are Redfish's).
	Protocol string
	Host     string
	Port     int // default 623
	// Privilege is "operator" or "administrator".
	Privilege string
	// CipherSuite is 3 or 17; 0 tries 17, then 3.
	CipherSuite int
}

// LoadInventory reads and validates an inventory file. Relative file paths
// in it are made relative to the file's directory.
func LoadInventory(file string) (*Inventory, error) {
	return loadInventory(file, nil)
}

// LoadInventoryCheck is LoadInventory for `receiver check-config` on a
// machine where the BMC password files are not mounted: a password file
// that does not exist or cannot be read is reported to missing (its node,
// or "defaults", and path) instead of failing. Everything else is checked
// as LoadInventory does; an empty password file is still an error.
func LoadInventoryCheck(file string, missing func(where, path string, err error)) (*Inventory, error) {
	return loadInventory(file, missing)
}

func loadInventory(file string, missing func(where, path string, err error)) (*Inventory, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("bmc inventory: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, fmt.Errorf("bmc inventory: %w", err)
	}
	inv, err := parseInventory(b, dir, missing)
	if err != nil {
		return nil, fmt.Errorf("bmc inventory %s: %w", file, err)
	}
	return inv, nil
}

// ParseInventory decodes (strictly: unknown fields are errors) and validates
// an inventory; dir anchors relative file paths.
func ParseInventory(b []byte, dir string) (*Inventory, error) {
	return parseInventory(b, dir, nil)
}

func parseInventory(b []byte, dir string, missing func(where, path string, err error)) (*Inventory, error) {
	inv := &Inventory{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(inv); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&inv.Defaults.PasswordFile)
	abs(&inv.Defaults.CAFile)
	for n, e := range inv.Nodes {
		abs(&e.PasswordFile)
		abs(&e.CAFile)
		inv.Nodes[n] = e
	}
	if err := inv.validate(missing); err != nil {
		return nil, err
	}
	return inv, nil
}

func (inv *Inventory) validate(missing func(where, path string, err error)) error {
	d := inv.Defaults
	if d.Endpoint != "" || d.System != "" {
		return errors.New("defaults: endpoint and system are per node")
	}
	for _, p := range inv.Annotations.AllowedHosts {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return fmt.Errorf("annotations.allowed_hosts: bad pattern %q", p)
		}
	}
	if err := checkProtocol(d.Protocol); err != nil {
		return fmt.Errorf("defaults: %w", err)
	}
	if d.Host != "" {
		return errors.New("defaults: host is per node")
	}
	if err := checkIPMIFields(d); err != nil {
		return fmt.Errorf("defaults: %w", err)
	}
	if err := checkEntry(d, false); err != nil {
		return fmt.Errorf("defaults: %w", err)
	}
	names := make([]string, 0, len(inv.Nodes))
	for n := range inv.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.TrimSpace(n) == "" {
			return errors.New("nodes: empty node name")
		}
		t := inv.target(n, inv.Nodes[n])
		if err := inv.checkNode(inv.Nodes[n]); err != nil {
			return fmt.Errorf("node %s: %w", n, err)
		}
		if err := checkTarget(t); err != nil {
			var pe *fs.PathError
			if missing == nil || !errors.As(err, &pe) || !(errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
				return fmt.Errorf("node %s: %w", n, err)
			}
			missing("node "+n, pe.Path, err)
		}
	}
	return nil
}

// checkEntry validates the fields an entry may set on its own.
func checkEntry(e Entry, node bool) error {
	if node {
		if e.Endpoint == "" {
			return errors.New("endpoint is required")
		}
		if err := checkEndpoint(e.Endpoint, false); err != nil {
			return err
		}
	}
	if e.Auth != "" && e.Auth != "basic" && e.Auth != "session" {
		return fmt.Errorf("auth %q: want basic or session", e.Auth)
	}
	if e.System != "" && strings.HasPrefix(e.System, "/") && !strings.HasPrefix(e.System, "/redfish/v1/Systems/") {
		return fmt.Errorf("system %q: want an Id or /redfish/v1/Systems/<id>", e.System)
	}
	if e.CAFile != "" {
		if _, err := loadCA(e.CAFile); err != nil {
			return err
		}
	}
	return nil
}

// checkTarget validates what a resolved target needs to connect.
func checkTarget(t Target) error {
	if t.Username == "" {
		return errors.New("username is required (here or in defaults)")
	}
	if t.Password == "" {
		if t.PasswordFile == "" {
			return errors.New("password_file is required (here or in defaults)")
		}
		if _, err := ReadSecret(t.PasswordFile); err != nil {
			return err
		}
	}
	return nil
}

// checkEndpoint accepts scheme://host[:port] (and, if withSystem, a system
// path after it). The URL must not carry credentials; errors never echo them.
func checkEndpoint(raw string, withSystem bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("endpoint: not a URL")
	}
	if u.User != nil {
		return errors.New("endpoint: credentials in the URL are not allowed; use username and password_file")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("endpoint %s: scheme must be https or http", u.Redacted())
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("endpoint %s: want scheme://host[:port]", u.Redacted())
	}
	p := strings.TrimSuffix(u.Path, "/")
	if p != "" && !(withSystem && strings.HasPrefix(p, "/redfish/v1/Systems/") && len(p) > len("/redfish/v1/Systems/")) {
		return fmt.Errorf("endpoint %s: unexpected path", u.Redacted())
	}
	return nil
}

func loadCA(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificates", file)
	}
	return pool, nil
}

// target merges an entry over the defaults.
func (inv *Inventory) target(node string, e Entry) Target {
	d := inv.Defaults
	pick := func(v, def string) string {
		if v != "" {
			return v
		}
		return def
	}
	insecure := d.InsecureSkipVerify != nil && *d.InsecureSkipVerify
	if e.InsecureSkipVerify != nil {
		insecure = *e.InsecureSkipVerify
	}
	reset := e.ResetTypes
	if len(reset) == 0 {
		reset = d.ResetTypes
	}
	return Target{
		Node:               node,
		Endpoint:           strings.TrimSuffix(e.Endpoint, "/"),
		System:             e.System,
		Username:           pick(e.Username, d.Username),
		PasswordFile:       pick(e.PasswordFile, d.PasswordFile),
		InsecureSkipVerify: insecure,
		CAFile:             pick(e.CAFile, d.CAFile),
		Session:            pick(e.Auth, d.Auth) == "session",
		ResetTypes:         slices.Clone(reset),
		Source:             "inventory",
		Protocol:           inv.protocol(e),
		Host:               e.Host,
		Port:               pickInt(e.Port, d.Port, DefaultIPMIPort),
		Privilege:          pick(pick(e.Privilege, d.Privilege), "operator"),
		CipherSuite:        pickInt(e.CipherSuite, d.CipherSuite, 0),
	}
}

func pickInt(v, def, fallback int) int {
	switch {
	case v != 0:
		return v
	case def != 0:
		return def
	}
	return fallback
}

// Lookup resolves a node's BMC: its inventory entry, else its
// AnnotationEndpoint annotation (with the default credentials) if the host
// is allowed. It returns ErrUnknownNode when neither applies.
func (inv *Inventory) Lookup(node string, annotations map[string]string) (Target, error) {
	if e, ok := inv.Nodes[node]; ok {
		return inv.target(node, e), nil
	}
	raw, ok := annotations[AnnotationEndpoint]
	if !ok {
		return Target{}, fmt.Errorf("%w %s", ErrUnknownNode, node)
	}
	if err := checkEndpoint(raw, true); err != nil {
		return Target{}, fmt.Errorf("node %s annotation %s: %w", node, AnnotationEndpoint, err)
	}
	u, _ := url.Parse(raw)
	if !inv.hostAllowed(u.Hostname()) {
		return Target{}, fmt.Errorf("%w %s: annotation %s names host %s, which annotations.allowed_hosts does not allow",
			ErrUnknownNode, node, AnnotationEndpoint, u.Hostname())
	}
	t := inv.target(node, Entry{Endpoint: u.Scheme + "://" + u.Host, System: strings.TrimSuffix(u.Path, "/")})
	t.Source = "annotation"
	t.Protocol = ProtocolRedfish // an annotation names a Redfish URL
	if err := checkTarget(t); err != nil {
		return Target{}, fmt.Errorf("node %s (annotation): %w", node, err)
	}
	return t, nil
}

func (inv *Inventory) hostAllowed(host string) bool {
	for _, p := range inv.Annotations.AllowedHosts {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}
