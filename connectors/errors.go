package connectors

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrNotFound: the account or group does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the account or group already exists; look it up and adopt it.
	ErrConflict = errors.New("already exists")
	// ErrUnauthorized: the app refused the credentials.
	ErrUnauthorized = errors.New("credentials rejected")
	// ErrUnsupported: the app cannot do what was asked.
	ErrUnsupported = errors.New("not supported by the app")
	// ErrSecretNotFound: a Secret or key the configuration names does not exist.
	ErrSecretNotFound = errors.New("secret not found")
)

// RateLimitedError: the app asked Roster to slow down and retry after RetryAfter.
type RateLimitedError struct {
	RetryAfter time.Duration
	Message    string
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %s", e.RetryAfter, e.Message)
}

// PendingError: the account cannot be made yet, for a reason a person resolves (a login
// the User does not have yet, an invitation limit reached). The account is Pending with
// the message, not Failed; it is tried again after RetryAfter if set, else when the
// User, the assignment or the AppConnection changes.
type PendingError struct {
	Message    string
	RetryAfter time.Duration
}

func (e *PendingError) Error() string { return e.Message }

// PermanentError: the app refused the request and will refuse it again until something
// changes (a 4xx answer). Err, when set, is a sentinel such as ErrUnauthorized.
type PermanentError struct {
	Status  int
	Message string
	Err     error
}

func (e *PermanentError) Error() string {
	if e.Status == 0 {
		return e.Message
	}
	return fmt.Sprintf("app answered %d: %s", e.Status, e.Message)
}

func (e *PermanentError) Unwrap() error { return e.Err }

// TransientError: the request failed in a way that may pass (a 5xx answer, a timeout,
// a dropped connection).
type TransientError struct {
	Status int
	Err    error
}

func (e *TransientError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("temporary failure: %v", e.Err)
	}
	return fmt.Sprintf("app answered %d: %v", e.Status, e.Err)
}

func (e *TransientError) Unwrap() error { return e.Err }

// IsPermanent reports whether retrying without a change cannot help.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// MaxRetryAfter caps the wait an app can impose with Retry-After: a longer (or
// malformed) answer must not stop an app's work, the kill switch included, for longer.
const MaxRetryAfter = 15 * time.Minute

// RetryAfter is the delay a rate-limited error asks for, within [0, MaxRetryAfter], and
// whether err is one.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RateLimitedError
	if errors.As(err, &r) {
		return min(max(r.RetryAfter, 0), MaxRetryAfter), true
	}
	return 0, false
}

// RejectedError is a source record that did not become a User: the reason, and what
// the mapping or the API server said.
type RejectedError struct {
	Reason, Detail string
}

func (e *RejectedError) Error() string { return e.Reason + ": " + e.Detail }
