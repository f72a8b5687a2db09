package googleworkspace

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"

	"github.com/rosterhq/roster/connectors"
)

// quotaWait is how long a call Google refused for its quota waits when Google does not
// say: the per-user quota is counted by the minute.
const quotaWait = 10 * time.Second

// classify turns the Admin SDK client's errors into the errors the engine decides on.
func (s *session) classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	var answer *googleapi.Error
	var token *oauth2.RetrieveError
	switch {
	case errors.As(err, &answer):
		return s.answerError(answer.Code, answer.Header, reasonOf(answer), answer.Message)
	case errors.As(err, &token) && token.Response != nil && token.Response.StatusCode < 500:
		return &connectors.PermanentError{Status: token.Response.StatusCode, Err: connectors.ErrUnauthorized,
			Message: fmt.Sprintf("Google's token endpoint refused the service account (%s): check the key, and that its client id has domain-wide delegation for %v and adminEmail is an admin", token.ErrorCode, s.scopes)}
	case connectors.IsPermanent(err):
		return err // an answer larger than the bound
	}
	return &connectors.TransientError{Err: err}
}

func reasonOf(e *googleapi.Error) string {
	for _, item := range e.Errors {
		if item.Reason != "" {
			return item.Reason
		}
	}
	return ""
}

// answerError reads an answer's status and Google's reason for it.
func (s *session) answerError(status int, header http.Header, reason, message string) error {
	if len(message) > 300 {
		message = message[:300] + "…"
	}
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusForbidden && isQuota(reason):
		return &connectors.RateLimitedError{RetryAfter: retryAfter(header), Message: fmt.Sprintf("Google answered %d %s: %s", status, reason, message)}
	case status == http.StatusUnauthorized:
		return &connectors.PermanentError{Status: status, Err: connectors.ErrUnauthorized, Message: "Google refused the credentials: " + message}
	case status == http.StatusForbidden:
		return &connectors.PermanentError{Status: status, Err: connectors.ErrUnauthorized,
			Message: fmt.Sprintf("Google refused the request (%s): %s (adminEmail needs the admin privileges for it, and the service account domain-wide delegation for %v)", reason, message, s.scopes)}
	case status == http.StatusNotFound:
		return fmt.Errorf("the Directory API answered 404: %s: %w", message, connectors.ErrNotFound)
	case status == http.StatusConflict:
		return fmt.Errorf("the Directory API answered 409: %s: %w", message, connectors.ErrConflict)
	case status >= 500 || status == http.StatusPreconditionFailed:
		return &connectors.TransientError{Status: status, Err: fmt.Errorf("the Directory API answered %d: %s", status, message)}
	}
	return &connectors.PermanentError{Status: status, Message: fmt.Sprintf("Google answered %d %s: %s", status, reason, message)}
}

func isQuota(reason string) bool {
	switch reason {
	case "userRateLimitExceeded", "rateLimitExceeded", "quotaExceeded", "dailyLimitExceeded":
		return true
	}
	return false
}

func retryAfter(h http.Header) time.Duration {
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil && secs > 0 {
		return min(time.Duration(secs)*time.Second, connectors.MaxRetryAfter)
	}
	return quotaWait
}
