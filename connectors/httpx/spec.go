package httpx

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// FromSpec fills opts with an API block's headers and TLS settings, reading the Secrets
// they name.
func FromSpec(ctx context.Context, opts *Options, headers []identityv1alpha1.HTTPHeader, tls *identityv1alpha1.TLSConfig, secrets connectors.SecretReader) error {
	if opts.Header == nil {
		opts.Header = http.Header{}
	}
	for _, h := range headers {
		value := h.Value
		if h.ValueFrom != nil {
			v, err := secrets.SecretValue(ctx, h.ValueFrom.Name, h.ValueFrom.Key)
			if err != nil {
				return fmt.Errorf("header %s: %w", h.Name, err)
			}
			value = string(v)
		}
		opts.Header.Set(h.Name, value)
	}
	if tls == nil {
		return nil
	}
	opts.ServerName = tls.ServerName
	if tls.CASecretRef != nil {
		ca, err := secrets.SecretValue(ctx, tls.CASecretRef.Name, tls.CASecretRef.Key)
		if err != nil {
			return fmt.Errorf("CA certificate: %w", err)
		}
		opts.RootCAs = ca
	}
	return nil
}

// BearerAuth sends a bearer token with each request.
func BearerAuth(token string) func(*http.Request) error {
	return func(r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// BasicAuth sends a user name and password with each request.
func BasicAuth(user, password string) func(*http.Request) error {
	return func(r *http.Request) error {
		r.SetBasicAuth(user, password)
		return nil
	}
}

// OAuth2ClientCredentials sends a token from cfg's token endpoint with each request,
// fetched (and refreshed) over a transport built from opts, which follows no redirect
// out of the token endpoint's origin.
func OAuth2ClientCredentials(cfg clientcredentials.Config, opts Options) (func(*http.Request) error, error) {
	base, err := newTransport(opts)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: base, Timeout: 30 * time.Second, CheckRedirect: SameOrigin}
	source := oauth2.ReuseTokenSource(nil, cfg.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, client)))
	return func(r *http.Request) error {
		token, err := source.Token()
		if err != nil {
			return err
		}
		token.SetAuthHeader(r)
		return nil
	}, nil
}

// ApplyRateLimit sets the budgets of opts from an AppConnection's rateLimit; nil
// leaves them as they are.
func ApplyRateLimit(opts *Options, rl *identityv1alpha1.RateLimit) {
	if rl == nil {
		return
	}
	opts.RequestsPerSecond, opts.Burst = RateOf(rl)
	opts.WritesPerSecond, opts.WriteBurst = WriteRateOf(rl)
	opts.RequestBudget = Budget{N: int(rl.Requests), Per: periodOf(rl)}
	if rl.Writes != nil {
		opts.WriteBudget = Budget{N: int(*rl.Writes), Per: periodOf(rl)}
	}
	if rl.MaxConcurrency != nil {
		opts.MaxConcurrency = int(*rl.MaxConcurrency)
	}
}

// RateOf turns a RateLimit into requests per second and a burst (one period's worth,
// at most 100, unless set).
func RateOf(rl *identityv1alpha1.RateLimit) (float64, int) {
	burst := min(100, max(1, int(rl.Requests)))
	if rl.Burst != nil {
		burst = int(*rl.Burst)
	}
	return float64(rl.Requests) / periodOf(rl).Seconds(), burst
}

// WriteRateOf turns a RateLimit's writes into writes per second and a burst (the
// requests' burst, at most one period's writes); 0 when writes have no budget of their
// own.
func WriteRateOf(rl *identityv1alpha1.RateLimit) (float64, int) {
	if rl.Writes == nil {
		return 0, 0
	}
	_, burst := RateOf(rl)
	return float64(*rl.Writes) / periodOf(rl).Seconds(), min(burst, int(*rl.Writes))
}

func periodOf(rl *identityv1alpha1.RateLimit) time.Duration {
	if rl.Period != nil && rl.Period.Duration > 0 {
		return rl.Period.Duration
	}
	return time.Second
}
