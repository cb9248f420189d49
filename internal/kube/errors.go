package kube

import (
	"errors"
	"fmt"
	"net"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// classify marks errors that mean "the API server could not be reached or
// is overloaded" with runbooks.ErrUnavailable, so runs wait and resume
// instead of failing on them.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var netErr net.Error
	if apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || errors.As(err, &netErr) {
		return fmt.Errorf("%w: %w", runbooks.ErrUnavailable, err)
	}
	return err
}
