package httpx

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// limitedApp counts writes as an app does and answers 429 past n within per: over a
// sliding window (as Slack and GitHub count), or over fixed windows.
func limitedApp(t *testing.T, n int, per time.Duration, sliding bool) (*httptest.Server, *atomic.Int32) {
	var mu sync.Mutex
	var arrivals []time.Time
	var limited atomic.Int32
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		since := now.Add(-per)
		if !sliding {
			since = start.Add(now.Sub(start).Truncate(per))
		}
		kept := arrivals[:0]
		for _, a := range arrivals {
			if a.After(since) || a.Equal(since) {
				kept = append(kept, a)
			}
		}
		arrivals = kept
		if len(arrivals) >= n {
			limited.Add(1)
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		arrivals = append(arrivals, now)
	}))
	t.Cleanup(srv.Close)
	return srv, &limited
}

func sendWrites(t *testing.T, c *Client, url string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := c.Do(context.Background(), http.MethodPost, url, nil, []byte("{}")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestAWriteBudgetNeverExceedsItsCountWithinAnyWindow(t *testing.T) {
	const n, per = 5, 500 * time.Millisecond
	for _, sliding := range []bool{true, false} {
		app, limited := limitedApp(t, n, per, sliding)
		// The rates a RateLimit of 5 writes per 400ms turns into, with its default burst.
		opts := Options{RequestsPerSecond: 100, WritesPerSecond: n / per.Seconds(), WriteBurst: n, MaxConcurrency: 4,
			WriteBudget: Budget{N: n, Per: per}}
		sendWrites(t, newClient(t, opts), app.URL, 3*n)
		if got := limited.Load(); got != 0 {
			t.Errorf("sliding %v: the app answered 429 %d times to a client within its budget", sliding, got)
		}
	}
}

func TestATokenBucketAloneOverrunsASlidingWindow(t *testing.T) {
	const n, per = 5, 500 * time.Millisecond
	app, limited := limitedApp(t, n, per, true)
	opts := Options{RequestsPerSecond: 100, WritesPerSecond: n / per.Seconds(), WriteBurst: n, MaxConcurrency: 4}
	sendWrites(t, newClient(t, opts), app.URL, 3*n)
	if limited.Load() == 0 {
		t.Fatal("a burst followed by the refill rate stayed within the window: the app of the test above does not count as the apps do")
	}
}

func TestAWindowsMarginIsTheTransitsNotAShareOfALongPeriod(t *testing.T) {
	for _, c := range []struct{ per, span time.Duration }{
		{time.Second, time.Second + 50*time.Millisecond},
		{10 * time.Second, 10*time.Second + 300*time.Millisecond},
		{time.Minute, time.Minute + time.Second},
		{time.Hour, time.Hour + time.Second},
	} {
		if got := newWindow(Budget{N: 100, Per: c.per}).span; got != c.span {
			t.Errorf("a budget per %s is counted over %s, want %s", c.per, got, c.span)
		}
	}
}
