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

// errNotSent marks a reset that failed before any request left (reading
// the system first failed).
var errNotSent = errors.New("no reset request was sent")

// NotSent reports whether a reset error happened before any request left:
// only then is "the BMC refused the credentials" the whole story, rather
// than a failure while watching a reset that was sent (a hung OS ignoring
// a soft-off makes the wait for Off time out).
func NotSent(err error) bool { return errors.Is(err, errNotSent) }

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
