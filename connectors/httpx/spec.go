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
