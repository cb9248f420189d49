package kube

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/node-healer/node-healer/internal/runbooks"
)

// requestCounter counts the API requests a drain makes.
type requestCounter struct{ n atomic.Int64 }

func (c *requestCounter) add()       { c.n.Add(1) }
func (c *requestCounter) get() int64 { return c.n.Load() }

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// evictOutcome is what one Eviction call said.
type evictOutcome int

const (
	evictDone    evictOutcome = iota // accepted: the pod is being deleted
	evictGone                        // the pod (this UID) no longer exists
	evictBlocked                     // 429 from a PodDisruptionBudget: retry later
	evictRetry                       // 429/5xx/network trouble: retry later
	evictFailed                      // anything else: give up
)

// evictOnce posts one policy/v1 Eviction with a UID precondition, so a
// replacement pod of the same name is never evicted by mistake. It returns
// the outcome, the PodDisruptionBudget named by a 429 (if any) and the
// error.
func (d *Drainer) evictOnce(ctx context.Context, pp PlannedPod, rc *requestCounter) (evictOutcome, string, error) {
	uid := pp.UID
	ev := &policyv1.Eviction{
		ObjectMeta:    metav1.ObjectMeta{Name: pp.Name, Namespace: pp.Namespace},
		DeleteOptions: &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}},
	}
	rc.add()
	err := d.Client.PolicyV1().Evictions(pp.Namespace).Evict(ctx, ev)
	switch {
	case err == nil:
		return evictDone, "", nil
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// NotFound: already deleted. Conflict: the UID precondition
		// failed, so the pod we planned for is gone and another took
		// its name.
		return evictGone, "", nil
	case apierrors.IsTooManyRequests(err):
		if pdb, msg := disruptionBudgetCause(err); msg != "" {
			return evictBlocked, pdb, fmt.Errorf("%s", msg)
		}
		return evictRetry, "", err
	case isMultiplePDBs(err):
		return evictFailed, "", fmt.Errorf("%w: evict %s: %v (fix the budgets so that one selects it)", ErrMultiplePDBs, pp.Ref(), err)
	case errors.Is(classify(err), runbooks.ErrUnavailable):
		return evictRetry, "", err
	}
	return evictFailed, "", fmt.Errorf("evict %s: %w", pp.Ref(), err)
}

// disruptionBudgetCause reads the cause the eviction handler attaches to a
// 429 when a PodDisruptionBudget refuses: "The disruption budget NAME
// needs N healthy pods and has M currently" or "... NAME is still being
// processed by the server.".
func disruptionBudgetCause(err error) (pdb, msg string) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) || se.Status().Details == nil {
		return "", ""
	}
	for _, c := range se.Status().Details.Causes {
		if c.Type != policyv1.DisruptionBudgetCause {
			continue
		}
		rest, ok := strings.CutPrefix(c.Message, "The disruption budget ")
		if ok {
			pdb, _, _ = strings.Cut(rest, " ")
		}
		return pdb, c.Message
	}
	return "", ""
}

// isMultiplePDBs recognises the eviction handler's 500 for a pod selected
// by several budgets.
func isMultiplePDBs(err error) bool {
	var se apierrors.APIStatus
	return errors.As(err, &se) && se.Status().Code == http.StatusInternalServerError &&
		strings.Contains(se.Status().Message, "more than one PodDisruptionBudget")
}
