package github

import (
	"context"
	"crypto/rsa"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gh "github.com/google/go-github/v90/github"
	"golang.org/x/time/rate"
)

// gate sends GitHub requests under the AppConnection's budget: a rate of requests and
// of writes (GitHub's secondary limits count content-creating requests apart), a bound
// on requests in flight, and a pause until the primary limit resets once only
// reserve requests of it are left, as x-ratelimit-remaining and x-ratelimit-reset say,
// or until a Retry-After has passed.
type gate struct {
	next     http.RoundTripper
	requests *rate.Limiter
	writes   *rate.Limiter
	slots    chan struct{}
	reserve  int

	mu          sync.Mutex
	pausedUntil time.Time
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := g.waitPause(ctx); err != nil {
		return nil, err
	}
	if err := g.requests.Wait(ctx); err != nil {
		return nil, err
	}
	if req.Method != http.MethodGet {
		if err := g.writes.Wait(ctx); err != nil {
			return nil, err
		}
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	resp, err := g.next.RoundTrip(req)
	<-g.slots
	if resp != nil {
		g.observe(resp.Header)
	}
	return resp, err
}

func (g *gate) waitPause(ctx context.Context) error {
	g.mu.Lock()
	until := g.pausedUntil
	g.mu.Unlock()
	if d := time.Until(until); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// observe pauses every request when the primary limit is nearly spent, or when GitHub
// asked for a wait.
func (g *gate) observe(h http.Header) {
	var until time.Time
	if remaining, err := strconv.Atoi(h.Get("X-RateLimit-Remaining")); err == nil && remaining <= g.reserve {
		if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			until = time.Unix(reset, 0)
		}
	}
	if secs, err := strconv.Atoi(h.Get("Retry-After")); err == nil && secs > 0 {
		until = maxTime(until, time.Now().Add(time.Duration(min(secs, 3600))*time.Second))
	}
	if until.After(time.Now().Add(time.Hour + time.Minute)) {
		until = time.Now().Add(time.Hour) // a reset far off is a wrong clock, not a reason to stop for a day
	}
	g.mu.Lock()
	g.pausedUntil = maxTime(g.pausedUntil, until)
	g.mu.Unlock()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// auth puts the token on each request to GitHub's API, and nowhere else.
type auth struct {
	next  http.RoundTripper
	host  string
	token func(context.Context) (string, error)
}

func (a *auth) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != a.host {
		return nil, fmt.Errorf("refused to send GitHub credentials to %s", req.URL.Host)
	}
	token, err := a.token(req.Context())
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+token)
	return a.next.RoundTrip(req)
}

// installationTokens makes and caches a GitHub App installation's token: a JWT signed
// with the app's key buys a token for an hour, used until five minutes before it ends.
type installationTokens struct {
	appID, installationID int64
	key                   *rsa.PrivateKey
	// clientWith makes a client that sends this token (the app's JWT).
	clientWith func(token string) (*gh.Client, error)

	mu      sync.Mutex
	token   string
	expires time.Time
}

func (s *installationTokens) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Until(s.expires) > 5*time.Minute {
		return s.token, nil
	}
	now := time.Now()
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(s.appID, 10),
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)), // GitHub's clock may be behind
		ExpiresAt: jwt.NewNumericDate(now.Add(9 * time.Minute)),
	}).SignedString(s.key)
	if err != nil {
		return "", err
	}
	client, err := s.clientWith(signed)
	if err != nil {
		return "", err
	}
	tok, _, err := client.Apps.CreateInstallationToken(ctx, s.installationID, &gh.InstallationTokenOptions{})
	if err != nil {
		return "", fmt.Errorf("getting the GitHub App installation's token: %w", classify(err))
	}
	s.token, s.expires = tok.GetToken(), tok.GetExpiresAt().Time
	return s.token, nil
}
