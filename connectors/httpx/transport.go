package httpx

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// Transport returns an http.RoundTripper that sends each request once under the
// client's budget, for connectors that speak through a vendor's own client library:
// the rate budgets, the bound on requests in flight, the timeout per request (reading
// the answer included), the answer's size bound and the metric all apply as they do to
// Do; a 429 (or a 503 with Retry-After) pauses every request to the app. Retries are
// left to the caller. Credentials are the caller's to add, in a RoundTripper wrapped
// around this one.
func (c *Client) Transport() http.RoundTripper { return budgeted{c} }

type budgeted struct{ c *Client }

func (b budgeted) RoundTrip(req *http.Request) (*http.Response, error) {
	c := b.c
	if err := c.waitTurn(req.Context(), req.Method); err != nil {
		return nil, err
	}
	select {
	case c.slots <- struct{}{}:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	defer func() { <-c.slots }()
	if err := c.waitWindows(req.Context(), req.Method); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(req.Context(), c.opts.Timeout)
	req = req.Clone(ctx)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	start := time.Now()
	resp, err := c.http.Transport.RoundTrip(req)
	if err != nil {
		cancel()
		c.observe(req.Method, 0, err, start)
		if timedOut(err) {
			err = fmt.Errorf("no answer within %s: %w", c.opts.Timeout, err)
		}
		return nil, err
	}
	c.observe(req.Method, resp.StatusCode, nil, start)
	if wait, given := retryAfter(resp.Header); resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable && given {
		if !given {
			wait = c.backoff(1)
		}
		c.pause(min(wait, c.opts.MaxBackoff))
	}
	resp.Body = &boundedBody{body: resp.Body, left: c.opts.MaxBodyBytes, done: cancel, method: req.Method}
	return resp, nil
}

// boundedBody fails a read past the client's bound on an answer's size rather than
// cutting it short, and ends the request's timeout when closed.
type boundedBody struct {
	body   io.ReadCloser
	left   int64
	done   context.CancelFunc
	method string
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge()
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.body.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, b.tooLarge()
	}
	return n, err
}

func (b *boundedBody) tooLarge() error {
	return &connectors.PermanentError{Message: fmt.Sprintf("the answer to %s is larger than the bound on an answer; nothing of it was used", b.method)}
}

func (b *boundedBody) Close() error {
	err := b.body.Close()
	b.done()
	return err
}

// Timeout is the bound on each request.
func (c *Client) Timeout() time.Duration { return c.opts.Timeout }

// Unbudgeted is the client's transport with its TLS settings and without its budget,
// for the few requests that go to another host, such as a token endpoint's.
func (c *Client) Unbudgeted() http.RoundTripper { return c.http.Transport }

// Take waits for n more requests' worth of the rate budget, for a batch request that
// carries n calls more than itself, each of which the app counts.
func (c *Client) Take(ctx context.Context, n int) error {
	for n > 0 {
		k := min(n, c.limiter.Burst())
		if err := c.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
