package httpx

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// A vendor's client library sends through Transport: one attempt per request, under the
// same bound on answers and the same pause after a 429 as Do.
func TestTheTransportSendsOnceUnderTheBudget(t *testing.T) {
	const limit = 1 << 10
	var asked atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		switch r.URL.Path {
		case "/busy":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/large":
			_, _ = w.Write(bytes.Repeat([]byte("x"), limit+1))
		case "/exact":
			_, _ = w.Write(bytes.Repeat([]byte("x"), limit))
		}
	}))
	defer app.Close()
	c := newClient(t, Options{MaxBodyBytes: limit})
	client := &http.Client{Transport: c.Transport()}
	get := func(path string) (*http.Response, []byte, error) {
		resp, err := client.Get(app.URL + path)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		return resp, data, err
	}
	if _, data, err := get("/exact"); err != nil || len(data) != limit {
		t.Fatalf("an answer of exactly the bound = %d bytes, %v", len(data), err)
	}
	if _, _, err := get("/large"); !connectors.IsPermanent(err) {
		t.Fatalf("an answer over the bound = %v, want a permanent error", err)
	}
	asked.Store(0)
	resp, _, err := get("/busy")
	if err != nil || resp.StatusCode != http.StatusTooManyRequests || asked.Load() != 1 {
		t.Fatalf("a 429 = %v, %v after %d requests; want it returned, sent once", resp, err, asked.Load())
	}
	start := time.Now()
	if _, _, err := get("/exact"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Fatalf("the request after a 429 with Retry-After: 1 went after %s, want it held about a second", waited)
	}
	if err := c.Take(context.Background(), 3*c.limiter.Burst()); err != nil {
		t.Fatalf("taking more than a burst of the budget: %v", err)
	}
}
