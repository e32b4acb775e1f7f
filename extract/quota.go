package extract

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrQuota is in the error of a source's run that met its quota (max_requests or max_duration): the run
// stopped at a batch boundary, what it committed stays, and the next run resumes there. Such a run is
// recorded as partial, not failed; Partial tells whether a whole Run ended only that way.
var ErrQuota = errors.New("quota reached")

// quota counts the requests of one source's run against max_requests and max_duration.
type quota struct {
	maxRequests int64
	maxDuration time.Duration
	deadline    time.Time // zero: no max_duration
	sent        atomic.Int64
}

// newQuota starts the clock of src's quota; nil when the source has none.
func newQuota(src *Source) *quota {
	if src.MaxRequests == 0 && src.MaxDuration == 0 {
		return nil
	}
	q := &quota{maxRequests: int64(src.MaxRequests), maxDuration: time.Duration(src.MaxDuration)}
	if q.maxDuration > 0 {
		q.deadline = time.Now().Add(q.maxDuration)
	}
	return q
}

// take counts one request about to be sent, or refuses it with ErrQuota when the quota is spent.
func (q *quota) take() error {
	if q == nil {
		return nil
	}
	if !q.deadline.IsZero() && !time.Now().Before(q.deadline) {
		return fmt.Errorf("%w (max_duration %s)", ErrQuota, q.maxDuration)
	}
	if q.maxRequests > 0 {
		if q.sent.Load() >= q.maxRequests {
			return fmt.Errorf("%w (max_requests %d)", ErrQuota, q.maxRequests)
		}
	}
	q.sent.Add(1)
	return nil
}

// Partial reports whether err, as Run returns it, holds only sources that met their quota: none failed or
// was cancelled. elt extract exits with its own status then (docs/extract.md).
func Partial(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !Partial(e) {
				return false
			}
		}
		return len(j.Unwrap()) > 0
	}
	return errors.Is(err, ErrQuota)
}

// maxHold bounds the records of one cursor value a run with a quota holds back (fetcher.pass): a group that
// grows past it goes on to the loader, and a quota met inside it rolls the batch in flight back instead.
const maxHold = 10000
