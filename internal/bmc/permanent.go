package bmc

import (
	"errors"
	"net"
	"net/http"
)

// Errors that retrying the same request cannot fix, so a run that meets
// them hands the node to a human instead of knocking again — a BMC that
// refuses a password locks the account after a few more tries.
var (
	// ErrAuth: the BMC refused node-healer's credentials (IPMI RAKP,
	// Redfish 401/403).
	ErrAuth = errors.New("the BMC refused the credentials (check the inventory's username and password_file)")
	// ErrUnreachable: nothing answers at the BMC's address (connection
	// refused, no route, IPMI: no answer within the timeout).
	ErrUnreachable = errors.New("the BMC is unreachable (check the inventory's endpoint or host and port, and the network to it)")
)

// Permanent reports whether err is one retrying will not fix, and which
// (ErrAuth or ErrUnreachable).
func Permanent(err error) (error, bool) {
	switch {
	case err == nil:
		return nil, false
	case errors.Is(err, ErrAuth):
		return ErrAuth, true
	case errors.Is(err, ErrUnreachable):
		return ErrUnreachable, true
	}
	if s := httpStatus(err); s == http.StatusUnauthorized || s == http.StatusForbidden {
		return ErrAuth, true
	}
	var he *httpError
	if errors.As(err, &he) && (he.status == http.StatusUnauthorized || he.status == http.StatusForbidden) {
		return ErrAuth, true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return ErrUnreachable, true
	}
	return nil, false
}
