package googleworkspace

import (
	"context"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/option"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// Access is how a target or a source reaches the account.
type Access struct {
	// Customer is the customer id; "" is my_customer.
	Customer   string
	AdminEmail string
	// ServiceAccountKey is the service account's JSON key.
	ServiceAccountKey []byte
	// APIURL is the Admin SDK's base; "" is Google's.
	APIURL string
	// RateLimit is the object's; nil is Google's documented default quota.
	RateLimit  *identityv1alpha1.RateLimit
	Timeout    time.Duration
	RootCAs    []byte
	ServerName string
	// App names the object in metrics.
	App string
}

// accessOf reads a block's Secrets.
func accessOf(ctx context.Context, spec identityv1alpha1.GoogleServiceAccount, secrets connectors.SecretReader, limit *identityv1alpha1.RateLimit, app string) (Access, error) {
	key, err := secrets.SecretValue(ctx, spec.ServiceAccountKeySecretRef.Name, spec.ServiceAccountKeySecretRef.Key)
	if err != nil {
		return Access{}, err
	}
	a := Access{Customer: spec.Customer, AdminEmail: spec.AdminEmail, ServiceAccountKey: key, APIURL: spec.APIURL,
		RateLimit: limit, App: app}
	if spec.RequestTimeout != nil {
		a.Timeout = spec.RequestTimeout.Duration
	}
	var tls httpx.Options
	if err := httpx.FromSpec(ctx, &tls, nil, spec.TLS, secrets); err != nil {
		return Access{}, err
	}
	a.RootCAs, a.ServerName = tls.RootCAs, tls.ServerName
	return a, nil
}

// session is an authorised, budgeted connection to the Admin SDK with a set of scopes.
type session struct {
	http     *http.Client
	budget   *httpx.Client
	apiURL   string
	customer string
	scopes   []string
}

// connect checks the key and the URLs and builds the clients; it sends nothing.
func connect(ctx context.Context, a Access, scopes []string) (*session, error) {
	apiURL := a.APIURL
	if apiURL == "" {
		apiURL = defaultAPIURL
	}
	if err := httpx.SafeURL(apiURL); err != nil {
		return nil, &connectors.PermanentError{Message: "apiURL " + err.Error()}
	}
	opts := httpx.Options{RequestsPerSecond: defaultRequestsPerSecond, Burst: 40, Timeout: a.Timeout,
		RootCAs: a.RootCAs, ServerName: a.ServerName, App: a.App}
	httpx.ApplyRateLimit(&opts, a.RateLimit)
	budget, err := httpx.New(opts)
	if err != nil {
		return nil, err
	}
	tokenClient := &http.Client{Timeout: budget.Timeout(), Transport: budget.Unbudgeted(), CheckRedirect: httpx.SameOrigin}
	tokens, err := tokenSource(ctx, a.ServiceAccountKey, a.AdminEmail, scopes, tokenClient)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: &oauth2.Transport{Source: tokens, Base: budget.Transport()}, CheckRedirect: httpx.SameOrigin}
	customer := a.Customer
	if customer == "" {
		customer = "my_customer"
	}
	return &session{http: client, budget: budget, apiURL: strings.TrimSuffix(apiURL, "/") + "/", customer: customer, scopes: scopes}, nil
}

// options are a Google client's options for this session.
func (s *session) options() []option.ClientOption {
	return []option.ClientOption{option.WithHTTPClient(s.http), option.WithEndpoint(s.apiURL), option.WithUserAgent(httpx.UserAgent)}
}
