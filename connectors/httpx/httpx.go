// Package httpx is the HTTP client every HTTP connector uses: a rate budget, bounded
// concurrency, a timeout per request, retries with exponential backoff and jitter on
// transient failures, and 429/503 Retry-After honoured across all requests to the app.
// Answers come back fully read, and failures as the typed errors of package connectors.
package httpx

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/rosterhq/roster/connectors"
)

// budgetShare is the part of a rate budget Roster spends, and burstShare the part of
// its burst. Requests reach an app a little earlier or later than they leave, so two
// sent a budget's interval apart can arrive closer; an app counting to the letter would
// answer 429 and pause every request for its Retry-After, which costs far more than
// the 3% and the one request of burst kept in hand.
const budgetShare = 0.97

func burstShare(burst int) int { return max(1, burst-1) }

// UserAgent identifies Roster to apps; some (GitHub, AWS) refuse requests without one.
const UserAgent = "Roster/v1alpha1 (identity provisioning operator)"

// Options configure a Client. Zero values take the defaults noted.
type Options struct {
	// RequestsPerSecond is the rate budget; 0 means 10.
	RequestsPerSecond float64
	// Burst is how many requests may go at once before the rate applies; 0 means
	// RequestsPerSecond rounded up, at most 100.
	Burst int
	// WritesPerSecond, when set, is a second budget for writes (POST, PUT, PATCH,
	// DELETE) on top of RequestsPerSecond, for apps that limit writes harder than reads.
	WritesPerSecond float64
	// WriteBurst is the burst of the write budget; 0 means 1.
	WriteBurst int
	// RequestBudget and WriteBudget, when set, allow at most N requests (writes) in any
	// span of Per, on top of the rates above, whatever their bursts.
	RequestBudget, WriteBudget Budget
	// MaxConcurrency bounds requests in flight; 0 means 4.
	MaxConcurrency int
	// Timeout bounds each attempt; 0 means 30s.
	Timeout time.Duration
	// MaxAttempts bounds attempts per request; 0 means 5.
	MaxAttempts int
	// BaseBackoff is the first retry delay, doubled each attempt with jitter; 0 means 200ms.
	BaseBackoff time.Duration
	// MaxBackoff caps a retry delay, and a Retry-After the client waits out itself;
	// longer Retry-Afters come back as RateLimitedError. 0 means 30s.
	MaxBackoff time.Duration
	// Header is sent with every request.
	Header http.Header
	// Auth, when set, adds credentials to each request as it leaves. Credentials are
	// never put in the transport, and a redirect is followed only within the origin
	// (scheme, host and port) it was sent to, so they never reach another host.
	Auth func(*http.Request) error
	// MaxBodyBytes bounds an answer's body; a longer one fails with a PermanentError
	// instead of being cut. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Transport carries the requests; nil means a new http.Transport with TLS below.
	Transport http.RoundTripper
	// RootCAs, when set, are trusted in addition to the system's.
	RootCAs []byte
	// ServerName overrides the name checked against the server's certificate.
	ServerName string
	// App names the app (namespace/name of its AppConnection or DirectorySync) in the
	// roster_connector_http_responses_total metric; "" counts nothing.
	App string
	// Observe, when set, is told the outcome of every attempt.
	Observe func(method string, status int, err error, took time.Duration)
}

// DefaultMaxBodyBytes bounds an answer's body unless a connector sets its own bound.
const DefaultMaxBodyBytes = 64 << 20

// Client sends requests to one app under its budget.
type Client struct {
	http    *http.Client
	opts    Options
	limiter *rate.Limiter
	writes  *rate.Limiter // nil without a separate write budget
	// requestWindow and writeWindow hold the budgets over a sliding span; nil if none.
	requestWindow, writeWindow *window
	slots                      chan struct{}

	mu          sync.Mutex
	pausedUntil time.Time
}

// Response is an answer read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// New builds a Client.
func New(opts Options) (*Client, error) {
	if opts.RequestsPerSecond <= 0 {
		opts.RequestsPerSecond = 10
	}
	if opts.Burst <= 0 {
		opts.Burst = min(100, max(1, int(opts.RequestsPerSecond+0.999)))
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 4
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.BaseBackoff <= 0 {
		opts.BaseBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	transport := opts.Transport
	if transport == nil {
		t, err := newTransport(opts)
		if err != nil {
			return nil, err
		}
		transport = t
	}
	c := &Client{
		http:    &http.Client{Transport: transport, CheckRedirect: SameOrigin},
		opts:    opts,
		limiter: rate.NewLimiter(rate.Limit(opts.RequestsPerSecond*budgetShare), burstShare(opts.Burst)),
		slots:   make(chan struct{}, opts.MaxConcurrency),
	}
	if opts.WritesPerSecond > 0 {
		c.writes = rate.NewLimiter(rate.Limit(opts.WritesPerSecond*budgetShare), burstShare(opts.WriteBurst))
	}
	if b := opts.RequestBudget; b.N > 0 && b.Per > 0 {
		c.requestWindow = newWindow(b)
	}
	if b := opts.WriteBudget; b.N > 0 && b.Per > 0 {
		c.writeWindow = newWindow(b)
	}
	return c, nil
}

func newTransport(opts Options) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(opts.MaxConcurrency, 4)
	if len(opts.RootCAs) == 0 && opts.ServerName == "" {
		return t, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if len(opts.RootCAs) > 0 && !pool.AppendCertsFromPEM(opts.RootCAs) {
		return nil, &connectors.PermanentError{Message: "the CA certificate is not valid PEM"}
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: opts.ServerName, MinVersion: tls.VersionTLS12}
	return t, nil
}

// Do sends a request, retrying transient failures, and returns the answer when it is
// a success (2xx) or a failure no retry will fix. 4xx answers other than 429 come back
// as a Response for the caller to interpret; 429 (and 503 with Retry-After) and 5xx
// that outlast the retries come back as RateLimitedError and TransientError.
//
// A POST creates: it is sent again only when it surely did nothing (the connection was
// never made, or the app answered 429 or 503), or when it carries an Idempotency-Key
// header, which makes a second delivery the same change to the app. After a reset, a
// timeout or another 5xx the app may have done it, and the error comes back at once for
// the caller to look before it creates again: not every app refuses a second account of
// the same name.
//
// An attempt the app does not answer within the timeout is tried once more, not up to
// MaxAttempts times: an app that stays silent is reported after two timeouts, and its
// requests go back to the caller's own retry schedule rather than holding a slot.
func (c *Client) Do(ctx context.Context, method, url string, header http.Header, body []byte) (*Response, error) {
	var lastErr error
	timeouts := 0
	once := method == http.MethodPost && header.Get("Idempotency-Key") == ""
	for attempt := 0; attempt < c.opts.MaxAttempts; attempt++ {
		if attempt > 0 {
			if err := sleep(ctx, c.backoff(attempt)); err != nil {
				return nil, err
			}
		}
		resp, err := c.attempt(ctx, method, url, header, body)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if connectors.IsPermanent(err) {
				return nil, err // an oversized answer, a refused redirect: a retry gets the same
			}
			var untrusted *tls.CertificateVerificationError
			if errors.As(err, &untrusted) {
				return nil, &connectors.PermanentError{Message: "the server's certificate is not trusted: " + untrusted.Err.Error()}
			}
			var refused *oauth2.RetrieveError
			if errors.As(err, &refused) && refused.Response != nil && refused.Response.StatusCode < 500 {
				return nil, &connectors.PermanentError{Status: refused.Response.StatusCode,
					Message: "the token endpoint refused the client credentials", Err: connectors.ErrUnauthorized}
			}
			lastErr = &connectors.TransientError{Err: err}
			if timedOut(err) {
				timeouts++
				lastErr = &connectors.TransientError{Err: fmt.Errorf("no answer within %s: %w", c.opts.Timeout, err)}
			}
			if once && !neverSent(err) || timeouts == 2 {
				return nil, lastErr
			}
			continue
		}
		wait, given := retryAfter(resp.Header)
		switch {
		case resp.Status == http.StatusTooManyRequests || resp.Status == http.StatusServiceUnavailable && given:
			if !given {
				wait = c.backoff(attempt + 1)
			}
			if wait > c.opts.MaxBackoff {
				return nil, &connectors.RateLimitedError{RetryAfter: wait, Message: summary(resp)}
			}
			c.pause(wait)
			lastErr = &connectors.RateLimitedError{RetryAfter: wait, Message: summary(resp)}
		case resp.Status >= 500 && resp.Status != http.StatusNotImplemented:
			lastErr = &connectors.TransientError{Status: resp.Status, Err: errors.New(summary(resp))}
			if once && resp.Status != http.StatusServiceUnavailable {
				return nil, lastErr
			}
		default:
			return resp, nil
		}
	}
	return nil, lastErr
}

// neverSent reports whether a request failed before it reached the server: the
// connection could not be made.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// timedOut reports whether an attempt failed for want of an answer in time.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *Client) attempt(ctx context.Context, method, url string, header http.Header, body []byte) (*Response, error) {
	if err := c.waitTurn(ctx, method); err != nil {
		return nil, err
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.slots }()
	if err := c.waitWindows(ctx, method); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bodyReader(body))
	if err != nil {
		return nil, &connectors.PermanentError{Message: err.Error()}
	}
	for k, vs := range c.opts.Header {
		req.Header[k] = vs
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", UserAgent)
	if c.opts.Auth != nil {
		if err := c.opts.Auth(req); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(method, 0, err, start)
		var refused *RedirectError
		if errors.As(err, &refused) {
			return nil, &connectors.PermanentError{Message: refused.Error()}
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBodyBytes+1))
	c.observe(method, resp.StatusCode, err, start)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > c.opts.MaxBodyBytes {
		return nil, &connectors.PermanentError{Status: resp.StatusCode,
			Message: fmt.Sprintf("the answer to %s is larger than %d bytes; nothing of it was used", method, c.opts.MaxBodyBytes)}
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// RedirectError: a server redirected a request out of the origin it was sent to.
type RedirectError struct{ From, To string }

func (e *RedirectError) Error() string {
	return fmt.Sprintf("refused a redirect from %s to %s: requests carry credentials and follow redirects only within one scheme, host and port", e.From, e.To)
}

// SameOrigin is an http.Client CheckRedirect that follows a redirect only to the same
// scheme, host and port, at most 5 times.
func SameOrigin(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return &RedirectError{From: first.Scheme + "://" + first.Host, To: req.URL.Scheme + "://" + req.URL.Host}
	}
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	return nil
}

func (c *Client) observe(method string, status int, err error, start time.Time) {
	if c.opts.App != "" {
		responses.WithLabelValues(c.opts.App, method, strconv.Itoa(status)).Inc()
	}
	if c.opts.Observe != nil {
		c.opts.Observe(method, status, err, time.Since(start))
	}
}

// waitTurn waits out a pause the app asked for, then the rate budgets.
func (c *Client) waitTurn(ctx context.Context, method string) error {
	for {
		c.mu.Lock()
		wait := time.Until(c.pausedUntil)
		c.mu.Unlock()
		if wait <= 0 {
			break
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	if c.writes != nil && method != http.MethodGet && method != http.MethodHead {
		if err := c.writes.Wait(ctx); err != nil {
			return err
		}
	}
	return c.limiter.Wait(ctx)
}

// waitWindows takes a place in the budgets' sliding windows. It runs once the request
// holds its slot, right before it is sent, so that the time it records is when it goes.
func (c *Client) waitWindows(ctx context.Context, method string) error {
	if c.writeWindow != nil && method != http.MethodGet && method != http.MethodHead {
		if err := c.writeWindow.wait(ctx); err != nil {
			return err
		}
	}
	if c.requestWindow != nil {
		return c.requestWindow.wait(ctx)
	}
	return nil
}

// pause holds every request to the app for d: a 429 speaks for the whole budget.
func (c *Client) pause(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until := time.Now().Add(d); until.After(c.pausedUntil) {
		c.pausedUntil = until
	}
}

func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.BaseBackoff << min(attempt-1, 16)
	if d > c.opts.MaxBackoff || d <= 0 {
		d = c.opts.MaxBackoff
	}
	// Full jitter over the upper half keeps retries from many workers apart.
	return d/2 + rand.N(d/2+1)
}

// retryAfter reads a Retry-After header, capped at connectors.MaxRetryAfter. A value that is
// neither a number of seconds nor an HTTP date, or that overflows, counts as not given,
// so that the default backoff applies.
func retryAfter(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 || secs > math.MaxInt64/int64(time.Second) {
			return 0, false
		}
		return min(time.Duration(secs)*time.Second, connectors.MaxRetryAfter), true
	}
	if at, err := http.ParseTime(v); err == nil {
		return min(max(0, time.Until(at)), connectors.MaxRetryAfter), true
	}
	return 0, false
}

func summary(r *Response) string {
	const limit = 300
	body := bytes.TrimSpace(r.Body)
	if len(body) > limit {
		body = append(body[:limit:limit], "…"...)
	}
	if len(body) == 0 {
		return http.StatusText(r.Status)
	}
	return string(body)
}

func bodyReader(body []byte) io.Reader {
	if body == nil {
		return nil
	}
	return bytes.NewReader(body)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
