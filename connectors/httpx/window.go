package httpx

import (
	"context"
	"sync"
	"time"
)

// Budget is at most N requests in any span of Per: how apps such as Slack and GitHub
// count (a sliding window), which also keeps within apps that count fixed windows.
type Budget struct {
	N   int
	Per time.Duration
}

// maxWindowSlots bounds the memory of a window: a budget of more requests is kept as
// the same share of a shorter span, which is no looser.
const maxWindowSlots = 10000

// windowMargin widens each window a little: requests reach an app a little earlier or
// later than they leave, so two sent exactly one span apart can arrive closer. How much
// closer is a matter of the requests' transit, not of the period: 3% of a short period,
// never more than a second (3% of an hour would leave 108 s of every hour unspent).
func windowMargin(per time.Duration) time.Duration {
	return min(max(per*3/100, 50*time.Millisecond), time.Second)
}

// window lets a request go only when fewer than N went within the last span.
type window struct {
	mu   sync.Mutex
	span time.Duration
	sent []time.Time // when each of the last N requests went, oldest at next
	next int
}

func newWindow(b Budget) *window {
	n, per := b.N, b.Per
	if n > maxWindowSlots {
		per = time.Duration(float64(per) * maxWindowSlots / float64(n))
		n = maxWindowSlots
	}
	return &window{span: per + windowMargin(per), sent: make([]time.Time, n)}
}

// wait takes a place in the window, waiting for one to free up.
func (w *window) wait(ctx context.Context) error {
	for {
		w.mu.Lock()
		now := time.Now()
		oldest := w.sent[w.next]
		if oldest.IsZero() || now.Sub(oldest) >= w.span {
			w.sent[w.next] = now
			w.next = (w.next + 1) % len(w.sent)
			w.mu.Unlock()
			return nil
		}
		wait := w.span - now.Sub(oldest)
		w.mu.Unlock()
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}
