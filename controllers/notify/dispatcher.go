package notify

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// Channel sends messages to one place.
type Channel interface {
	// Send delivers a message, or fails; a *connectors.PermanentError is not retried.
	Send(ctx context.Context, m Message) error
}

// Config is a Notifier as its dispatcher runs it.
type Config struct {
	Channel Channel
	// Events are the event types that pass; nil passes all.
	Events map[identityv1alpha1.NotificationEvent]bool
	Filter Filter
	// Quiet and MaxWait gather a burst: a batch goes once Quiet has passed without a new
	// event of its type, or MaxWait since its first.
	Quiet, MaxWait time.Duration
	// Interval is the least time between two messages.
	Interval  time.Duration
	Templates Templates
}

// Filter narrows events by app, Role and User labels; an empty part passes everything.
type Filter struct {
	Apps, Roles map[string]bool
	Users       labels.Selector
}

func (f Filter) matches(e Event) bool {
	if len(f.Apps) > 0 && !slices.ContainsFunc(e.Apps, func(a string) bool { return f.Apps[a] }) {
		return false
	}
	if len(f.Roles) > 0 && (e.Person == nil || !slices.ContainsFunc(e.Person.Roles, func(r string) bool { return f.Roles[r] })) {
		return false
	}
	if f.Users != nil && !f.Users.Empty() && (e.Person == nil || !f.Users.Matches(labels.Set(e.Person.Labels))) {
		return false
	}
	return true
}

// Stats are a Notifier's delivery figures since the operator started.
type Stats struct {
	Delivered, Messages, Failed, Deduplicated, Pending int64
	LastDelivery, LastFailure                          time.Time
	LastError                                          string
	// Permanent: the last failure will not pass on a retry (a wrong URL, refused
	// credentials); a person must act.
	Permanent bool
}

// Bounds that keep a flood, or a channel down for hours, from growing without end.
const (
	maxBatch     = 1000             // events a batch keeps; more are counted
	maxSeen      = 100_000          // keys remembered for deduplication
	seenFor      = 24 * time.Hour   // how long a key is remembered
	maxAttempts  = 8                // deliveries of one batch before it is given up
	maxBackoff   = 5 * time.Minute  // the longest wait between two attempts
	firstBackoff = 2 * time.Second  // the first wait
	sendTimeout  = 30 * time.Second // one delivery, every retry inside it included
)

type batch struct {
	events      []Event
	more        int
	first, last time.Time
	attempts    int
	retryAt     time.Time
}

// dispatcher delivers one Notifier's events.
type dispatcher struct {
	mu       sync.Mutex
	cfg      Config
	batches  map[identityv1alpha1.NotificationEvent]*batch
	seen     map[string]time.Time
	stats    Stats
	lastSent time.Time
	wake     chan struct{}
	changed  func()
	stop     context.CancelFunc
}

func newDispatcher(cfg Config, changed func()) *dispatcher {
	return &dispatcher{cfg: cfg, batches: map[identityv1alpha1.NotificationEvent]*batch{}, seen: map[string]time.Time{},
		wake: make(chan struct{}, 1), changed: changed}
}

// offer takes an event if the Notifier wants it; it never blocks on delivery.
func (d *dispatcher) offer(e Event, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if (d.cfg.Events != nil && !d.cfg.Events[e.Kind]) || !d.cfg.Filter.matches(e) {
		return
	}
	if _, seen := d.seen[e.Key]; seen && e.Key != "" {
		d.stats.Deduplicated++
		return
	}
	d.remember(e.Key, now)
	b := d.batches[e.Kind]
	if b == nil {
		b = &batch{first: now}
		d.batches[e.Kind] = b
	}
	b.last = now
	if len(b.events) < maxBatch {
		b.events = append(b.events, e)
	} else {
		b.more++
	}
	d.stats.Pending++
	d.poke()
}

func (d *dispatcher) remember(key string, now time.Time) {
	if key == "" {
		return
	}
	if len(d.seen) >= maxSeen {
		for k, t := range d.seen {
			if now.Sub(t) > seenFor || len(d.seen) >= maxSeen {
				delete(d.seen, k)
			}
		}
	}
	d.seen[key] = now
}

func (d *dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run delivers batches as they fall due until ctx ends.
func (d *dispatcher) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		kind, b, wait := d.due(now)
		if b != nil {
			d.deliver(ctx, kind, b)
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// due takes the batch whose time has come, or says how long until the next.
func (d *dispatcher) due(now time.Time) (identityv1alpha1.NotificationEvent, *batch, time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	wait := time.Hour
	var kind identityv1alpha1.NotificationEvent
	var soonest time.Time
	for k, b := range d.batches {
		at := b.last.Add(d.cfg.Quiet)
		at = earliest(at, b.first.Add(d.cfg.MaxWait))
		at = latest(at, b.retryAt, d.lastSent.Add(d.cfg.Interval))
		if soonest.IsZero() || at.Before(soonest) {
			kind, soonest = k, at
		}
	}
	if soonest.IsZero() {
		return "", nil, wait
	}
	if soonest.After(now) {
		return "", nil, soonest.Sub(now)
	}
	b := d.batches[kind]
	delete(d.batches, kind)
	return kind, b, 0
}

// deliver sends a batch; on failure the batch waits for its next attempt, joined by
// events that came meanwhile, until maxAttempts.
func (d *dispatcher) deliver(ctx context.Context, kind identityv1alpha1.NotificationEvent, b *batch) {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	m, tplErr := Render(b.events, b.more, cfg.Templates)
	sendCtx, cancel := context.WithTimeout(ctx, sendTimeout)
	err := cfg.Channel.Send(sendCtx, m)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: what was gathered is lost with the process
	}
	now := time.Now()
	n := int64(len(b.events) + b.more)
	d.mu.Lock()
	d.lastSent = now
	var permanent *connectors.PermanentError
	switch {
	case err == nil:
		d.stats.Delivered += n
		d.stats.Messages++
		d.stats.Pending -= n
		d.stats.LastDelivery = now
		d.stats.Permanent = false
		if tplErr != nil {
			d.stats.LastError = tplErr.Error()
		}
		observeDelivery(b, now)
	case errors.As(err, &permanent) || b.attempts+1 >= maxAttempts:
		d.failLocked(err, n, now, permanent != nil)
		messages.WithLabelValues("failed").Inc()
	default:
		b.attempts++
		wait := min(maxBackoff, firstBackoff<<(b.attempts-1))
		var limited *connectors.RateLimitedError
		if errors.As(err, &limited) {
			wait = max(wait, limited.RetryAfter)
		}
		b.retryAt = now.Add(wait)
		d.requeueLocked(kind, b)
		d.stats.LastFailure, d.stats.LastError = now, err.Error()
		messages.WithLabelValues("retried").Inc()
	}
	d.mu.Unlock()
	d.changed()
}

func (d *dispatcher) failLocked(err error, n int64, now time.Time, permanent bool) {
	d.stats.Failed += n
	d.stats.Pending -= n
	d.stats.LastFailure, d.stats.LastError, d.stats.Permanent = now, err.Error(), permanent
	events.WithLabelValues("failed").Add(float64(n))
}

// requeueLocked puts a failed batch back, ahead of the events that came since.
func (d *dispatcher) requeueLocked(kind identityv1alpha1.NotificationEvent, b *batch) {
	if later := d.batches[kind]; later != nil {
		room := max(0, maxBatch-len(b.events))
		take := min(room, len(later.events))
		b.events = append(b.events, later.events[:take]...)
		b.more += later.more + len(later.events) - take
		b.last = later.last
	}
	d.batches[kind] = b
}

func (d *dispatcher) setConfig(cfg Config) {
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.poke()
}

func (d *dispatcher) snapshot() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func latest(a time.Time, others ...time.Time) time.Time {
	for _, o := range others {
		if o.After(a) {
			a = o
		}
	}
	return a
}
