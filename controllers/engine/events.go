package engine

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Events about single Users are limited per app, so that a bulk change (an initial
// sync of thousands, an approved mass deprovisioning) costs the API server a summary
// rather than an Event per account. Each User's status still tells its accounts.
const (
	userEventsPerSecond = 1
	userEventBurst      = 50
	// summarizeEvery is how often the Users' events left out are summed up in an Event
	// on the AppConnection.
	summarizeEvery = 10 * time.Second
)

// userEvents passes on Events about single Users within the budget and counts the rest
// by reason.
type userEvents struct {
	budget  *rate.Limiter
	omitted map[string]int // reason → Events left out
	last    time.Time
}

func newUserEvents() *userEvents {
	return &userEvents{budget: rate.NewLimiter(userEventsPerSecond, userEventBurst), omitted: map[string]int{}}
}

// userEventLocked records an Event about a User, or counts it when over the budget.
func (e *Engine) userEventLocked(user, eventType, reason, message string) {
	if eventType == "Normal" && !e.userEvents.budget.Allow() {
		e.userEvents.omitted[reason]++
		return
	}
	e.events.User(e.cfg.App, user, eventType, reason, message)
}

// summarizeUserEvents records, on the AppConnection, how many Events about single Users
// were left out since the last summary: every summarizeEvery while the engine works,
// and as soon as it is done.
func (e *Engine) summarizeUserEvents(now time.Time) {
	e.mu.Lock()
	ue := e.userEvents
	if len(ue.omitted) == 0 || (now.Sub(ue.last) < summarizeEvery && e.busyLocked()) {
		e.mu.Unlock()
		return
	}
	omitted, app := ue.omitted, e.cfg.App
	ue.omitted, ue.last = map[string]int{}, now
	e.mu.Unlock()
	reasons := make([]string, 0, len(omitted))
	for r := range omitted {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		e.events.App(app, "Normal", r, fmt.Sprintf("%d more accounts %s in %s; Events about single Users are limited to %d a second, each User's status.accounts tells its own",
			omitted[r], strings.ToLower(r), app, userEventsPerSecond))
	}
}
