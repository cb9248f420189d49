package config

import (
	"fmt"
	"slices"
	"strings"
)

// UI configures the operator page (/).
type UI struct {
	// Operators are the authenticated users who may act on the page
	// (pause, resume, a manual heal, clear an escalation): basic auth user
	// names of the web configuration, or "cert:<common name>" for client
	// certificates. Everyone else authenticated reads the page only.
	// Empty: every authenticated user may act.
	Operators []string `yaml:"operators"`
}

func (u *UI) validate() error {
	for i, op := range u.Operators {
		switch {
		case strings.TrimSpace(op) != op || op == "":
			return fmt.Errorf("ui.operators[%d]: %q: a user name, without surrounding spaces", i, op)
		case op == "cert:":
			return fmt.Errorf("ui.operators[%d]: %q: a client certificate needs its common name (cert:<common name>)", i, op)
		case slices.Index(u.Operators, op) != i:
			return fmt.Errorf("ui.operators[%d]: %q listed twice", i, op)
		}
	}
	return nil
}

// MayAct says whether user may act on the operator page, and if not, why.
func (u *UI) MayAct(user string) (bool, string) {
	if len(u.Operators) == 0 || slices.Contains(u.Operators, user) {
		return true, ""
	}
	return false, user + " is not in ui.operators (read-only)"
}
