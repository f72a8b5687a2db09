package httpx

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/connectors"
)

func TestCredentialsNeverFollowARedirectToAnotherHost(t *testing.T) {
	stolen := make(chan http.Header, 1)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen <- r.Header.Clone()
	}))
	defer other.Close()
	app := httptest.NewServer(http.RedirectHandler(other.URL+"/Users", http.StatusTemporaryRedirect))
	defer app.Close()

	c := newClient(t, Options{MaxAttempts: 1, Auth: BearerAuth("s3cret-token"),
		Header: http.Header{"X-Api-Key": {"s3cret-key"}}})
	_, err := c.Do(context.Background(), http.MethodGet, app.URL+"/Users", nil, nil)
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "refused a redirect") {
		t.Fatalf("a redirect to another host = %v, want a permanent error that says the redirect was refused", err)
	}
	select {
	case h := <-stolen:
		t.Fatalf("the other host was reached, with headers %v", h)
	default:
	}
}

func TestCredentialsNeverFollowARedirectFromHTTPSToHTTP(t *testing.T) {
	var reached bool
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	defer plain.Close()
	app := httptest.NewTLSServer(http.RedirectHandler(plain.URL, http.StatusFound))
	defer app.Close()
	c := newClient(t, Options{MaxAttempts: 1, Transport: app.Client().Transport, Auth: BasicAuth("roster", "pa55")})
	if _, err := c.Do(context.Background(), http.MethodGet, app.URL, nil, nil); !connectors.IsPermanent(err) || reached {
		t.Fatalf("https→http redirect: err %v, plain server reached %v; want refused and not reached", err, reached)
	}
}

func TestARedirectWithinTheOriginIsFollowedWithCredentials(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/old", http.RedirectHandler("/new", http.StatusMovedPermanently))
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Header.Get("Authorization")))
	})
	app := httptest.NewServer(mux)
	defer app.Close()
	resp, err := newClient(t, Options{Auth: BearerAuth("t")}).Do(context.Background(), http.MethodGet, app.URL+"/old", nil, nil)
	if err != nil || string(resp.Body) != "Bearer t" {
		t.Fatalf("same-origin redirect = %v, %v; want followed with the token", resp, err)
	}
}

func TestABodyOverTheLimitFailsInsteadOfBeingCut(t *testing.T) {
	const limit = 1 << 20
	var asked atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		_, _ = w.Write(bytes.Repeat([]byte("x"), limit+1))
	}))
	defer app.Close()
	c := newClient(t, Options{MaxBodyBytes: limit})
	_, err := c.Do(context.Background(), http.MethodGet, app.URL, nil, nil)
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Fatalf("an oversized body = %v, want a permanent error naming the limit", err)
	}
	if asked.Load() != 1 {
		t.Fatalf("the oversized answer was asked for %d times, want once: a retry gets the same", asked.Load())
	}
	exact := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("x"), limit))
	}))
	defer exact.Close()
	if resp, err := newClient(t, Options{MaxBodyBytes: limit}).Do(context.Background(), http.MethodGet, exact.URL, nil, nil); err != nil || len(resp.Body) != limit {
		t.Fatalf("a body of exactly the limit = %v; want it whole", err)
	}
}

func TestRetryAfterIsCappedAndGarbageIsIgnored(t *testing.T) {
	cases := []struct {
		reason, value string
		want          time.Duration
		given         bool
	}{
		{"a year is capped", "31536000", connectors.MaxRetryAfter, true},
		{"a value that overflows a duration is garbage", "9223372037", 0, false},
		{"a value that overflows int64 is garbage", "99999999999999999999", 0, false},
		{"a date in 2100 is capped", "Fri, 01 Jan 2100 00:00:00 GMT", connectors.MaxRetryAfter, true},
		{"a negative number is garbage", "-5", 0, false},
		{"words are garbage", "soon", 0, false},
		{"a date in the past is now", "Mon, 01 Jan 2001 00:00:00 GMT", 0, true},
		{"a small value is kept", "7", 7 * time.Second, true},
	}
	for _, tc := range cases {
		got, given := retryAfter(http.Header{"Retry-After": {tc.value}})
		if got != tc.want || given != tc.given {
			t.Errorf("%s: retryAfter(%q) = %s, %v; want %s, %v", tc.reason, tc.value, got, given, tc.want, tc.given)
		}
	}
	if wait, _ := connectors.RetryAfter(&connectors.RateLimitedError{RetryAfter: 1 << 62}); wait != connectors.MaxRetryAfter {
		t.Errorf("a connector's RateLimitedError of 146 years reads as %s, want %s", wait, connectors.MaxRetryAfter)
	}
	if wait, _ := connectors.RetryAfter(&connectors.RateLimitedError{RetryAfter: -time.Hour}); wait != 0 {
		t.Errorf("a negative RateLimitedError reads as %s, want 0", wait)
	}
}
