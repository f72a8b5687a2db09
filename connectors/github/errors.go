package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	gh "github.com/google/go-github/v90/github"

	"github.com/rosterhq/roster/connectors"
)

// invitationLimitWait is how long a joiner waits when the organization's invitation
// limit is reached: GitHub counts invitations over a sliding day and does not say when
// one frees up.
const invitationLimitWait = time.Hour

// classify turns go-github's errors into the errors the engine decides on.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
		return err
	}
	var limited *gh.RateLimitError
	var abuse *gh.AbuseRateLimitError
	var answer *gh.ErrorResponse
	switch {
	case errors.As(err, &limited):
		return &connectors.RateLimitedError{RetryAfter: max(time.Until(limited.Rate.Reset.Time), time.Second),
			Message: "GitHub's primary rate limit is spent until " + limited.Rate.Reset.UTC().Format(time.RFC3339)}
	case errors.As(err, &abuse):
		wait := time.Minute
		if abuse.RetryAfter != nil && *abuse.RetryAfter > 0 {
			wait = *abuse.RetryAfter
		}
		return &connectors.RateLimitedError{RetryAfter: wait, Message: "GitHub's secondary rate limit: " + abuse.Message}
	case errors.As(err, &answer) && answer.Response != nil:
		return answerError(answer)
	}
	return &connectors.TransientError{Err: err}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func answerError(answer *gh.ErrorResponse) error {
	status := answer.Response.StatusCode
	msg := answer.Message
	for _, e := range answer.Errors {
		if e.Message != "" {
			msg += "; " + e.Message
		} else if e.Code != "" {
			msg += fmt.Sprintf("; %s %s", e.Field, e.Code)
		}
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	switch {
	case status == http.StatusUnauthorized:
		return &connectors.PermanentError{Status: status, Message: "GitHub refused the credentials: " + msg, Err: connectors.ErrUnauthorized}
	case status == http.StatusNotFound:
		return fmt.Errorf("GitHub answered 404: %s: %w", msg, connectors.ErrNotFound)
	case status == http.StatusUnprocessableEntity && strings.Contains(strings.ToLower(msg), "invitation rate limit"):
		return &connectors.PendingError{RetryAfter: invitationLimitWait,
			Message: "the organization's invitation limit is reached (GitHub allows 50 or 500 invitations a day, by plan): the invitation is sent when it frees up"}
	case status == http.StatusUnprocessableEntity && hasCode(answer, "already_exists"):
		return fmt.Errorf("GitHub answered 422: %s: %w", msg, connectors.ErrConflict)
	case status == http.StatusForbidden:
		return &connectors.PermanentError{Status: status, Message: msg + " (the token or app needs the organization's Members permission, read and write, from an owner)"}
	case status >= 500:
		return &connectors.TransientError{Status: status, Err: errors.New(msg)}
	}
	return &connectors.PermanentError{Status: status, Message: msg}
}

func hasCode(answer *gh.ErrorResponse, code string) bool {
	for _, e := range answer.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}
