package httpx

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/connectors"
)

func newClient(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.BaseBackoff == 0 {
		opts.BaseBackoff = time.Millisecond
	}
	if opts.RequestsPerSecond == 0 {
		opts.RequestsPerSecond = 1000
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRetriesA5xxBurstThenSucceeds(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusInternalServerError)
		case 2:
			w.WriteHeader(http.StatusBadGateway)
		case 3:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(`{"ok":true}`))
		}
	}))
	defer srv.Close()
	resp, err := newClient(t, Options{}).Do(context.Background(), http.MethodGet, srv.URL, nil, nil)
	if err != nil {
		t.Fatalf("Do after a 5xx burst: %v", err)
	}
	if resp.Status != 200 || string(resp.Body) != `{"ok":true}` || calls.Load() != 4 {
		t.Fatalf("got %d %q after %d calls, want 200 after 4", resp.Status, resp.Body, calls.Load())
	}
}

func TestGivesUpOnPersistent5xxWithATransientError(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "database down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	_, err := newClient(t, Options{MaxAttempts: 3}).Do(context.Background(), http.MethodGet, srv.URL, nil, nil)
	var transient *connectors.TransientError
	if !errors.As(err, &transient) || transient.Status != 500 {
		t.Fatalf("got %v, want a TransientError with status 500", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("made %d attempts, want 3", calls.Load())
	}
}

func TestHonoursRetryAfterOn429(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	if _, err := newClient(t, Options{}).Do(context.Background(), http.MethodGet, srv.URL, nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(times) != 2 {
		t.Fatalf("server saw %d requests, want 2", len(times))
	}
	// A lower bound only: the retry must not come before the app allowed it.
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Fatalf("retried after %s, before the Retry-After of 1s", gap)
	}
}

func TestLongRetryAfterComesBackAsRateLimited(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	_, err := newClient(t, Options{MaxBackoff: time.Second}).Do(context.Background(), http.MethodGet, srv.URL, nil, nil)
	wait, limited := connectors.RetryAfter(err)
	if !limited || wait != 120*time.Second {
		t.Fatalf("got %v, want a RateLimitedError asking for 120s", err)
	}
}

func TestBoundsConcurrency(t *testing.T) {
	var inFlight, peak atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
	}))
	defer srv.Close()
	c := newClient(t, Options{MaxConcurrency: 3})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { _, _ = c.Do(context.Background(), http.MethodGet, srv.URL, nil, nil) })
	}
	for inFlight.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if peak.Load() != 3 {
		t.Fatalf("peak concurrency %d, want exactly 3", peak.Load())
	}
}

func TestTimesOutAHungAttemptAndRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-r.Context().Done() // hang until the client gives up
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	resp, err := newClient(t, Options{Timeout: 100 * time.Millisecond}).Do(context.Background(), http.MethodGet, srv.URL, nil, nil)
	if err != nil || resp.Status != 200 {
		t.Fatalf("got %v, %v; want a success on the second attempt", resp, err)
	}
	if calls.Load() != 2 {
		t.Fatalf("server saw %d attempts, want 2", calls.Load())
	}
}

func TestAnAppSilentTwiceIsReportedAfterTwoAttempts(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client going away
		<-r.Context().Done()
	}))
	defer srv.Close()
	_, err := newClient(t, Options{Timeout: 100 * time.Millisecond, MaxAttempts: 5}).Do(context.Background(), http.MethodPatch, srv.URL, nil, []byte("{}"))
	if err == nil || connectors.IsPermanent(err) || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Fatalf("got %v; want a temporary failure saying the app did not answer within 100ms", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("server saw %d attempts, want 2: a silent app is reported, not tried 5 times", calls.Load())
	}
}

func TestSendsUserAgentAndHeaders(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	c := newClient(t, Options{Header: http.Header{"X-Tenant": {"acme"}}})
	if _, err := c.Do(context.Background(), http.MethodGet, srv.URL, http.Header{"Accept": {"application/scim+json"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got.Get("User-Agent") != UserAgent || got.Get("X-Tenant") != "acme" || got.Get("Accept") != "application/scim+json" {
		t.Fatalf("headers = %v", got)
	}
}

func TestFourXXComesBackAsAResponse(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "bad", http.StatusBadRequest)
	}))
	defer srv.Close()
	resp, err := newClient(t, Options{}).Do(context.Background(), http.MethodPost, srv.URL, nil, []byte("{}"))
	if err != nil || resp.Status != 400 || calls.Load() != 1 {
		t.Fatalf("got %v, %v after %d calls; want the 400 once, not retried", resp, err, calls.Load())
	}
}

func TestWriteBudgetDoesNotSlowReads(t *testing.T) {
	c := newClient(t, Options{RequestsPerSecond: 1000, WritesPerSecond: 0.001, WriteBurst: 1})
	if c.writes == nil {
		t.Fatal("no write budget")
	}
	// The one write token is spent; a second write would wait, reads must not.
	c.writes.Allow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.waitTurn(ctx, http.MethodGet); err != nil {
		t.Fatalf("a read waited on the write budget: %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancelShort()
	if err := c.waitTurn(short, http.MethodPost); err == nil {
		t.Fatal("a write went out beyond the write budget")
	}
}

func TestRequestsWaitForTheRateBudget(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	c := newClient(t, Options{RequestsPerSecond: 20, Burst: 1, MaxConcurrency: 8})
	start := time.Now()
	var wg sync.WaitGroup
	for range 11 {
		wg.Go(func() { _, _ = c.Do(context.Background(), http.MethodGet, srv.URL, nil, nil) })
	}
	wg.Wait()
	// A lower bound only: 11 requests at 20 a second with a burst of 1 cannot all be out
	// before 10 intervals of 50ms have passed.
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Fatalf("11 requests went out in %s, faster than a budget of 20 a second allows", took)
	}
	if calls.Load() != 11 {
		t.Fatalf("server saw %d requests, want 11", calls.Load())
	}
}

// TestAPostIsSentAgainOnlyWhenItSurelyDidNothing: after a reset connection or a 500 the
// app may have made what a POST asked for, so the POST comes back at once with an error
// whose outcome is unknown; a 503 or 429 did nothing and is retried; a GET is always
// retried. A 503 without Retry-After says the app is unavailable, not rate limited.
func TestAPostIsSentAgainOnlyWhenItSurelyDidNothing(t *testing.T) {
	for _, tc := range []struct {
		reason        string
		method        string
		fail          func(w http.ResponseWriter)
		wantCalls     int32
		wantRateLimit bool
	}{
		{"a POST whose connection is reset", http.MethodPost, reset, 1, false},
		{"a POST answered 500", http.MethodPost, status(http.StatusInternalServerError), 1, false},
		{"a POST answered 503", http.MethodPost, status(http.StatusServiceUnavailable), 3, false},
		{"a GET whose connection is reset", http.MethodGet, reset, 3, false},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				tc.fail(w)
			}))
			defer srv.Close()
			_, err := newClient(t, Options{MaxAttempts: 3}).Do(context.Background(), tc.method, srv.URL, nil, []byte(`{}`))
			if !connectors.OutcomeUnknown(err) || calls.Load() != tc.wantCalls {
				t.Fatalf("%d calls, error %v; want %d calls and an error whose outcome is unknown", calls.Load(), err, tc.wantCalls)
			}
			if _, limited := connectors.RetryAfter(err); limited != tc.wantRateLimit {
				t.Fatalf("rate limited: %v, want %v (%v)", limited, tc.wantRateLimit, err)
			}
		})
	}
}

func status(code int) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) { http.Error(w, http.StatusText(code), code) }
}

// reset kills the connection without an answer, as a proxy or a crashed app does.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.(*net.TCPConn).SetLinger(0)
		_ = conn.Close()
	}
}
