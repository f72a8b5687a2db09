package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Normal Events about single Users are limited per namespace, so that a bulk change (an
// initial sync of thousands into twenty apps, an approved mass deprovisioning) costs
// the API server a few summaries rather than an Event per account. Each User's status
// still tells its accounts.
const (
	userEventsPerSecond = 1
	userEventBurst      = 50
	// SummarizeEvery is how often the Users' events left out are summed up in an Event
	// on the AppConnection: at most this often, and this long after the first left out.
	SummarizeEvery = 10 * time.Second
)

// NewUserEventBudget returns a budget for Events about single Users, to be shared by
// the engines of a namespace (Config.UserEvents).
func NewUserEventBudget() *rate.Limiter { return rate.NewLimiter(userEventsPerSecond, userEventBurst) }

// userEvents passes on Events about single Users within the budget and counts the rest
// by reason.
type userEvents struct {
	budget  *rate.Limiter
	omitted map[string]int // reason → Events left out
	since   time.Time      // when the first of them was left out
	every   time.Duration  // SummarizeEvery, shorter in tests
}

func newUserEvents(budget *rate.Limiter) *userEvents {
	if budget == nil {
		budget = NewUserEventBudget()
	}
	return &userEvents{budget: budget, omitted: map[string]int{}, every: SummarizeEvery}
}

// userEventLocked records an Event about a User, or counts it when over the budget.
func (e *Engine) userEventLocked(user, eventType, reason, message string) {
	if eventType == "Normal" && !e.userEvents.budget.Allow() {
		if len(e.userEvents.omitted) == 0 {
			e.userEvents.since = e.now()
		}
		e.userEvents.omitted[reason]++
		return
	}
	e.events.User(e.cfg.App, user, eventType, reason, message)
}

// summarizeUserEvents records, on the AppConnection, how many Events about single Users
// were left out, once SummarizeEvery has passed since the first of them. A summary
// every few seconds would cost the API server more than it tells: the events library
// keys an Event by its object, not its message, and two summaries on the same
// resourceVersion become a series it writes again when the series ends.
func (e *Engine) summarizeUserEvents(now time.Time) {
	e.mu.Lock()
	ue := e.userEvents
	if len(ue.omitted) == 0 || now.Sub(ue.since) < ue.every {
		e.mu.Unlock()
		return
	}
	omitted, app := ue.omitted, e.cfg.App
	ue.omitted = map[string]int{}
	e.mu.Unlock()
	reasons := make([]string, 0, len(omitted))
	for r := range omitted {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		e.events.App(app, "Normal", r, fmt.Sprintf("%d more accounts %s in %s; Events about single Users are limited to %d a second in a namespace, each User's status.accounts tells its own",
			omitted[r], strings.ToLower(r), app, userEventsPerSecond))
	}
}
