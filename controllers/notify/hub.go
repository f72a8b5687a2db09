package notify

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
)

// Hub passes published events to the Notifiers of their namespace. It runs with the
// manager, on the leader only, as the controllers that publish do.
type Hub struct {
	mu          sync.RWMutex
	ctx         context.Context // set once the hub runs
	dispatchers map[types.NamespacedName]*dispatcher
	// Changed is told which Notifier's figures changed, to write its status.
	Changed func(types.NamespacedName)
}

// NewHub returns a hub without Notifiers.
func NewHub() *Hub {
	return &Hub{dispatchers: map[types.NamespacedName]*dispatcher{}}
}

// Publish offers an event to every Notifier of its namespace. It never waits on a
// channel; a nil hub drops the event.
func (h *Hub) Publish(e Event) {
	if h == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	events.WithLabelValues("published").Inc()
	h.mu.RLock()
	defer h.mu.RUnlock()
	for key, d := range h.dispatchers {
		if key.Namespace == e.Namespace {
			d.offer(e, e.Time)
		}
	}
}

// Set runs a Notifier with cfg, keeping what it gathered and its figures when it ran
// already; a Notifier new to the hub counts on from seed (its status).
func (h *Hub) Set(key types.NamespacedName, cfg Config, seed Stats) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.dispatchers[key]; d != nil {
		d.setConfig(cfg)
		return
	}
	d := newDispatcher(cfg, func() {
		if h.Changed != nil {
			h.Changed(key)
		}
	})
	d.stats = seed
	h.dispatchers[key] = d
	if h.ctx != nil {
		h.startLocked(d)
	}
}

// Remove stops a Notifier; what it gathered and did not send is dropped.
func (h *Hub) Remove(key types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.dispatchers[key]; d != nil {
		if d.stop != nil {
			d.stop()
		}
		delete(h.dispatchers, key)
	}
}

// Stats are a Notifier's figures, if it runs.
func (h *Hub) Stats(key types.NamespacedName) (Stats, bool) {
	h.mu.RLock()
	d := h.dispatchers[key]
	h.mu.RUnlock()
	if d == nil {
		return Stats{}, false
	}
	return d.snapshot(), true
}

// Start runs the Notifiers until ctx ends.
func (h *Hub) Start(ctx context.Context) error {
	h.mu.Lock()
	h.ctx = ctx
	for _, d := range h.dispatchers {
		h.startLocked(d)
	}
	h.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (h *Hub) startLocked(d *dispatcher) {
	ctx, stop := context.WithCancel(h.ctx)
	d.stop = stop
	go d.run(ctx)
}

var (
	events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_notification_events_total",
		Help: "Lifecycle events by what became of them: published (once, whatever the Notifiers), delivered or failed (per Notifier).",
	}, []string{"result"})
	messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roster_notification_messages_total",
		Help: "Messages sent to Notifier channels: sent, retried (a failed attempt) or failed (given up).",
	}, []string{"result"})
	delay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "roster_notification_delay_seconds",
		Help:    "Time from an event to its delivery, digest gathering included.",
		Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900},
	})
)

// Collectors are the metrics of notifications.
func Collectors() []prometheus.Collector { return []prometheus.Collector{events, messages, delay} }

func observeDelivery(b *batch, now time.Time) {
	messages.WithLabelValues("sent").Inc()
	events.WithLabelValues("delivered").Add(float64(len(b.events) + b.more))
	for _, e := range b.events {
		delay.Observe(now.Sub(e.Time).Seconds())
	}
}
