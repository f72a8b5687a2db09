package scim

import (
	"context"
	"fmt"
	"net/http"

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

// NewFactory returns the TargetFactory for AppConnections with a scim block.
func NewFactory() connectors.TargetFactory {
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
		httpOpts.App = conn.Namespace + "/" + conn.Name
		if httpOpts.Auth, err = authenticator(ctx, spec.Auth, httpOpts, secrets); err != nil {
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
	httpx.ApplyRateLimit(&opts, conn.Spec.RateLimit)
	if spec.RequestTimeout != nil {
		opts.Timeout = spec.RequestTimeout.Duration
	}
	err := httpx.FromSpec(ctx, &opts, spec.Headers, spec.TLS, secrets)
	return opts, err
}

// authenticator puts the credentials on each request: a header for Bearer and Basic, a
// token from the token endpoint for OAuth2 client credentials.
func authenticator(ctx context.Context, auth identityv1alpha1.SCIMAuth, opts httpx.Options, secrets connectors.SecretReader) (func(*http.Request) error, error) {
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
		return httpx.BearerAuth(token), nil
	case identityv1alpha1.SCIMAuthBasic:
		user, err := read(KeyUsername)
		if err != nil {
			return nil, err
		}
		password, err := read(KeyPassword)
		if err != nil {
			return nil, err
		}
		return httpx.BasicAuth(user, password), nil
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
		return httpx.OAuth2ClientCredentials(cfg, opts)
	}
	return nil, &connectors.PermanentError{Message: fmt.Sprintf("unknown auth type %q", auth.Type)}
}
