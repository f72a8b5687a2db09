package scim

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// Secret keys read for each kind of authentication.
const (
	KeyToken        = "token"
	KeyUsername     = "username"
	KeyPassword     = "password"
	KeyClientID     = "clientID"
	KeyClientSecret = "clientSecret"
)

// FactoryOptions configure the Targets a factory builds.
type FactoryOptions struct {
	// Observe, when set, is told the outcome of every request, with the app it went to
	// (namespace/name of the AppConnection).
	Observe func(app, method string, status int, err error, took time.Duration)
}

// NewFactory returns the TargetFactory for AppConnections with a scim block.
func NewFactory(opts FactoryOptions) connectors.TargetFactory {
	return func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets connectors.SecretReader) (connectors.Target, error) {
		spec := conn.Spec.SCIM
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the AppConnection has no scim block"}
		}
		profile, err := ProfileNamed(string(spec.Profile))
		if err != nil {
			return nil, &connectors.PermanentError{Message: err.Error()}
		}
		httpOpts, err := httpOptions(ctx, conn, profile, secrets)
		if err != nil {
			return nil, err
		}
		if opts.Observe != nil {
			app := conn.Namespace + "/" + conn.Name
			httpOpts.Observe = func(method string, status int, err error, took time.Duration) {
				opts.Observe(app, method, status, err, took)
			}
		}
		if httpOpts.Transport, err = authTransport(ctx, spec.Auth, httpOpts, secrets); err != nil {
			return nil, err
		}
		client, err := httpx.New(httpOpts)
		if err != nil {
			return nil, err
		}
		batch := 0
		if spec.GroupMemberBatchSize != nil {
			batch = int(*spec.GroupMemberBatchSize)
		}
		return NewClient(ClientConfig{BaseURL: spec.BaseURL, Profile: profile, HTTP: client, MemberBatchSize: batch})
	}
}

func httpOptions(ctx context.Context, conn *identityv1alpha1.AppConnection, p Profile, secrets connectors.SecretReader) (httpx.Options, error) {
	spec := conn.Spec.SCIM
	opts := httpx.Options{
		RequestsPerSecond: p.RequestsPerSecond, Burst: p.Burst, MaxConcurrency: p.MaxConcurrency,
		WritesPerSecond: p.WritesPerSecond, WriteBurst: p.WriteBurst,
		Header: http.Header{},
	}
	if rl := conn.Spec.RateLimit; rl != nil {
		opts.RequestsPerSecond, opts.Burst = RateOf(rl)
		opts.WritesPerSecond, opts.WriteBurst = WriteRateOf(rl)
		if rl.MaxConcurrency != nil {
			opts.MaxConcurrency = int(*rl.MaxConcurrency)
		}
	}
	if spec.RequestTimeout != nil {
		opts.Timeout = spec.RequestTimeout.Duration
	}
	for _, h := range spec.Headers {
		value := h.Value
		if h.ValueFrom != nil {
			v, err := secrets.SecretValue(ctx, h.ValueFrom.Name, h.ValueFrom.Key)
			if err != nil {
				return opts, fmt.Errorf("header %s: %w", h.Name, err)
			}
			value = string(v)
		}
		opts.Header.Set(h.Name, value)
	}
	if tls := spec.TLS; tls != nil {
		opts.ServerName = tls.ServerName
		if tls.CASecretRef != nil {
			ca, err := secrets.SecretValue(ctx, tls.CASecretRef.Name, tls.CASecretRef.Key)
			if err != nil {
				return opts, fmt.Errorf("CA certificate: %w", err)
			}
			opts.RootCAs = ca
		}
	}
	return opts, nil
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

// authTransport puts the credentials on every request: a header for Bearer and Basic,
// an OAuth2 token source for client credentials.
func authTransport(ctx context.Context, auth identityv1alpha1.SCIMAuth, opts httpx.Options, secrets connectors.SecretReader) (http.RoundTripper, error) {
	base, err := httpx.BaseTransport(opts)
	if err != nil {
		return nil, err
	}
	read := func(key string) (string, error) {
		v, err := secrets.SecretValue(ctx, auth.SecretRef.Name, key)
		return string(v), err
	}
	switch auth.Type {
	case identityv1alpha1.SCIMAuthBearer:
		token, err := read(KeyToken)
		if err != nil {
			return nil, err
		}
		return headerTransport{base: base, header: "Authorization", value: "Bearer " + token}, nil
	case identityv1alpha1.SCIMAuthBasic:
		user, err := read(KeyUsername)
		if err != nil {
			return nil, err
		}
		password, err := read(KeyPassword)
		if err != nil {
			return nil, err
		}
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.SetBasicAuth(user, password)
		return headerTransport{base: base, header: "Authorization", value: req.Header.Get("Authorization")}, nil
	case identityv1alpha1.SCIMAuthOAuth2ClientCredentials:
		id, err := read(KeyClientID)
		if err != nil {
			return nil, err
		}
		secret, err := read(KeyClientSecret)
		if err != nil {
			return nil, err
		}
		cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: auth.TokenURL, Scopes: auth.Scopes}
		tokenCtx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base, Timeout: 30 * time.Second})
		return &oauth2.Transport{Source: cfg.TokenSource(tokenCtx), Base: base}, nil
	}
	return nil, &connectors.PermanentError{Message: fmt.Sprintf("unknown auth type %q", auth.Type)}
}

// headerTransport sets one header on every request.
type headerTransport struct {
	base          http.RoundTripper
	header, value string
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(t.header, t.value)
	return t.base.RoundTrip(r)
}
