// Package github provisions the members and teams of a GitHub organization: a joiner is
// invited (their membership pending until they accept), a leaver removed or made an
// outside collaborator, groups are teams, and the organization role is the app role.
// It speaks GitHub's REST API through go-github, under GitHub's rate limits.
package github

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gh "github.com/google/go-github/v90/github"
	"golang.org/x/time/rate"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// GitHub's documented limits, the default budget: 5,000 requests an hour for a token,
// and at most 80 content-creating requests a minute (a secondary limit).
const (
	defaultRequestsPerSecond = 5000.0 / 3600
	defaultWritesPerSecond   = 80.0 / 60
	perPage                  = 100
)

// AttrRoles is where the organization role is, as an app role: member or admin.
const attrRoles = "roles"

// Listing phases, in order; a cursor is "<phase>:<page>".
const (
	phaseMembers     = "members"
	phaseInvitations = "invitations"
	phaseOutside     = "outside"
)

// NewFactory returns the TargetFactory for AppConnections with a github block.
func NewFactory() connectors.TargetFactory {
	return func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets connectors.SecretReader) (connectors.Target, error) {
		spec := conn.Spec.GitHub
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the AppConnection has no github block"}
		}
		cfg := Config{Org: spec.Organization, APIURL: spec.APIURL, Leavers: spec.Leavers, RateLimit: conn.Spec.RateLimit}
		if spec.RequestTimeout != nil {
			cfg.Timeout = spec.RequestTimeout.Duration
		}
		if spec.TLS != nil && spec.TLS.CASecretRef != nil {
			ca, err := secrets.SecretValue(ctx, spec.TLS.CASecretRef.Name, spec.TLS.CASecretRef.Key)
			if err != nil {
				return nil, fmt.Errorf("CA certificate: %w", err)
			}
			cfg.RootCAs, cfg.ServerName = ca, spec.TLS.ServerName
		}
		switch {
		case spec.TokenSecretRef != nil:
			token, err := secrets.SecretValue(ctx, spec.TokenSecretRef.Name, spec.TokenSecretRef.Key)
			if err != nil {
				return nil, err
			}
			cfg.Token = strings.TrimSpace(string(token))
		case spec.App != nil:
			key, err := secrets.SecretValue(ctx, spec.App.PrivateKeySecretRef.Name, spec.App.PrivateKeySecretRef.Key)
			if err != nil {
				return nil, err
			}
			cfg.App = &AppAuth{AppID: spec.App.AppID, InstallationID: spec.App.InstallationID, PrivateKey: key}
		}
		return New(cfg)
	}
}

// AppAuth is a GitHub App installation's credentials.
type AppAuth struct {
	AppID, InstallationID int64
	PrivateKey            []byte // PEM
}

// Config configures a Target.
type Config struct {
	Org string
	// APIURL is the REST API's base; "" is GitHub.com.
	APIURL string
	// Token or App authenticates.
	Token   string
	App     *AppAuth
	Leavers identityv1alpha1.GitHubLeaverPolicy
	// RateLimit is the AppConnection's; nil is GitHub's documented limits.
	RateLimit  *identityv1alpha1.RateLimit
	Timeout    time.Duration
	RootCAs    []byte
	ServerName string
}

// Target provisions a GitHub organization.
type Target struct {
	org     string
	client  *gh.Client
	leavers identityv1alpha1.GitHubLeaverPolicy

	mu sync.Mutex
	// admins are the organization's owners, read at the start of a listing.
	admins map[string]bool
	roles  teamRoles
}

var (
	_ connectors.GroupTarget   = (*Target)(nil)
	_ connectors.DefaultMapper = (*Target)(nil)
)

// New returns a Target.
func New(cfg Config) (*Target, error) {
	base, err := transport(cfg)
	if err != nil {
		return nil, err
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = "https://api.github.com/"
	}
	u, err := url.Parse(strings.TrimSuffix(apiURL, "/") + "/")
	if err != nil {
		return nil, &connectors.PermanentError{Message: "apiURL: " + err.Error()}
	}
	clientWith := func(rt http.RoundTripper, token string) (*gh.Client, error) {
		opts := []gh.ClientOptionsFunc{gh.WithHTTPClient(&http.Client{Transport: rt, Timeout: cfg.Timeout, CheckRedirect: httpx.SameOrigin}),
			gh.WithURLs(gh.Ptr(u.String()), gh.Ptr(u.String())), gh.WithUserAgent(httpx.UserAgent)}
		if token != "" {
			opts = append(opts, gh.WithAuthToken(token))
		}
		return gh.NewClient(opts...)
	}
	var token func(context.Context) (string, error)
	switch {
	case cfg.Token != "":
		token = func(context.Context) (string, error) { return cfg.Token, nil }
	case cfg.App != nil:
		key, err := jwt.ParseRSAPrivateKeyFromPEM(cfg.App.PrivateKey)
		if err != nil {
			return nil, &connectors.PermanentError{Message: "the GitHub App's private key is not an RSA key in PEM: " + err.Error()}
		}
		tokens := &installationTokens{appID: cfg.App.AppID, installationID: cfg.App.InstallationID, key: key,
			clientWith: func(jwt string) (*gh.Client, error) { return clientWith(base, jwt) }}
		token = tokens.Token
	default:
		return nil, &connectors.PermanentError{Message: "no GitHub token or app"}
	}
	client, err := clientWith(&auth{next: base, host: u.Host, token: token}, "")
	if err != nil {
		return nil, &connectors.PermanentError{Message: err.Error()}
	}
	leavers := cfg.Leavers
	if leavers == "" {
		leavers = identityv1alpha1.GitHubLeaverRemove
	}
	return &Target{org: cfg.Org, client: client, leavers: leavers, admins: map[string]bool{}, roles: teamRoles{}}, nil
}

// transport is TLS under the rate budget.
func transport(cfg Config) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	if len(cfg.RootCAs) > 0 || cfg.ServerName != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if len(cfg.RootCAs) > 0 && !pool.AppendCertsFromPEM(cfg.RootCAs) {
			return nil, &connectors.PermanentError{Message: "the CA certificate is not valid PEM"}
		}
		t.TLSClientConfig.RootCAs, t.TLSClientConfig.ServerName = pool, cfg.ServerName
	}
	g := &gate{next: t, requests: rate.NewLimiter(rate.Limit(defaultRequestsPerSecond), 100),
		writes: rate.NewLimiter(rate.Limit(defaultWritesPerSecond), 10), slots: make(chan struct{}, 4), reserve: 10}
	if rl := cfg.RateLimit; rl != nil {
		opts := httpx.Options{}
		httpx.ApplyRateLimit(&opts, rl)
		g.requests = rate.NewLimiter(rate.Limit(opts.RequestsPerSecond), opts.Burst)
		if opts.WritesPerSecond > 0 {
			g.writes = rate.NewLimiter(rate.Limit(opts.WritesPerSecond), opts.WriteBurst)
		}
		if opts.MaxConcurrency > 0 {
			g.slots = make(chan struct{}, opts.MaxConcurrency)
		}
	}
	return g, nil
}

// DefaultMapping: GitHub holds a login and a role. The login comes from the User's
// attributes["github"]; the role from the assignment's app role (member by default).
func (t *Target) DefaultMapping() []identityv1alpha1.ExpressionMapping {
	m := []identityv1alpha1.ExpressionMapping{
		{Target: connectors.AttrUserName, Expression: `"github" in user.attributes ? user.attributes["github"] : ""`},
		{Target: attrRoles, Expression: `[{"value": entitlements.appRole != "" ? entitlements.appRole : "member", "primary": true}]`},
	}
	for _, path := range []string{connectors.AttrExternalID, connectors.AttrEmails, "displayName", "name.givenName", "name.familyName", "name.middleName",
		"title", "userType", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"} {
		m = append(m, identityv1alpha1.ExpressionMapping{Target: path, Expression: "null"})
	}
	return m
}

// Validate reads the organization, which checks the credentials and the name.
func (t *Target) Validate(ctx context.Context) (connectors.Capabilities, error) {
	if _, _, err := t.client.Organizations.Get(ctx, t.org); err != nil {
		return connectors.Capabilities{}, fmt.Errorf("reading organization %s: %w", t.org, classify(err))
	}
	return connectors.Capabilities{Groups: true, Filter: true, MaxResults: perPage, MemberBatch: 1}, nil
}

// account is a member or invitee as a Roster account; its id is the login, lower case.
func account(login, role string, active bool, note string) connectors.Account {
	return connectors.Account{ID: strings.ToLower(login), Active: active, Note: note,
		Attributes: map[string]any{connectors.AttrUserName: login, attrRoles: []any{map[string]any{"value": role, "primary": true}}}}
}

func roleOf(a connectors.Account) (string, error) {
	role := "member"
	if roles, _ := a.Attributes[attrRoles].([]any); len(roles) > 0 {
		if m, ok := roles[0].(map[string]any); ok {
			role, _ = m["value"].(string)
		}
	}
	if role != "member" && role != "admin" {
		return "", &connectors.PermanentError{Message: fmt.Sprintf("GitHub organization roles are member and admin, not %q", role)}
	}
	return role, nil
}

func invitedNote(since time.Time) string {
	return fmt.Sprintf("invited to the organization on %s; waiting for the person to accept", since.UTC().Format("2006-01-02"))
}

// Lookup finds a member or a pending invitation by login.
func (t *Target) Lookup(ctx context.Context, key connectors.Key) (connectors.Account, error) {
	if key.Kind != connectors.KeyUserName {
		return connectors.Account{}, &connectors.PermanentError{Message: "GitHub accounts are matched by login: set matchBy UserName"}
	}
	if key.Value == "" {
		return connectors.Account{}, connectors.ErrNotFound // an empty login would ask for Roster's own membership
	}
	m, _, err := t.client.Organizations.GetOrgMembership(ctx, key.Value, t.org)
	if err != nil {
		return connectors.Account{}, classify(err)
	}
	return membershipAccount(m), nil
}

func membershipAccount(m *gh.Membership) connectors.Account {
	login := m.GetUser().GetLogin()
	if m.GetState() == "pending" {
		return account(login, m.GetRole(), true, "invited to the organization; waiting for the person to accept")
	}
	return account(login, m.GetRole(), true, "")
}

// ListAccounts lists members, then pending invitations, then outside collaborators
// (deactivated accounts), a page at a time.
func (t *Target) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	phase, page := phaseMembers, 1
	if cursor != "" {
		p, n, _ := strings.Cut(cursor, ":")
		num, err := strconv.Atoi(n)
		if err != nil || num < 1 {
			return connectors.AccountPage{}, &connectors.PermanentError{Message: "not a listing cursor: " + cursor}
		}
		phase, page = p, num
	}
	var out connectors.AccountPage
	var next int
	var err error
	switch phase {
	case phaseMembers:
		if page == 1 {
			if err := t.readAdmins(ctx); err != nil {
				return out, err
			}
		}
		var users []*gh.User
		var resp *gh.Response
		users, resp, err = t.client.Organizations.ListMembers(ctx, t.org, &gh.ListMembersOptions{Role: "all", ListOptions: gh.ListOptions{Page: page, PerPage: perPage}})
		t.mu.Lock()
		for _, u := range users {
			role := "member"
			if t.admins[strings.ToLower(u.GetLogin())] {
				role = "admin"
			}
			out.Accounts = append(out.Accounts, account(u.GetLogin(), role, true, ""))
		}
		t.mu.Unlock()
		next = nextPage(resp)
	case phaseInvitations:
		var invs []*gh.Invitation
		var resp *gh.Response
		invs, resp, err = t.client.Organizations.ListPendingOrgInvitations(ctx, t.org, &gh.ListOptions{Page: page, PerPage: perPage})
		for _, inv := range invs {
			if inv.GetLogin() == "" {
				continue // an invitation by email is not Roster's: it invites by login
			}
			role := "member"
			if inv.GetRole() == "admin" {
				role = "admin"
			}
			out.Accounts = append(out.Accounts, account(inv.GetLogin(), role, true, invitedNote(inv.GetCreatedAt().Time)))
		}
		next = nextPage(resp)
	case phaseOutside:
		var users []*gh.User
		var resp *gh.Response
		users, resp, err = t.client.Organizations.ListOutsideCollaborators(ctx, t.org, &gh.ListOutsideCollaboratorsOptions{ListOptions: gh.ListOptions{Page: page, PerPage: perPage}})
		for _, u := range users {
			out.Accounts = append(out.Accounts, account(u.GetLogin(), "member", false, "an outside collaborator"))
		}
		next = nextPage(resp)
	default:
		return out, &connectors.PermanentError{Message: "not a listing cursor: " + cursor}
	}
	if err != nil {
		return connectors.AccountPage{}, fmt.Errorf("listing %s of %s: %w", phase, t.org, classify(err))
	}
	switch {
	case next > page:
		out.Next = fmt.Sprintf("%s:%d", phase, next)
	case phase == phaseMembers:
		out.Next = phaseInvitations + ":1"
	case phase == phaseInvitations:
		out.Next = phaseOutside + ":1"
	}
	return out, nil
}

func nextPage(resp *gh.Response) int {
	if resp == nil {
		return 0
	}
	return resp.NextPage
}

// readAdmins reads the organization's owners, every page.
func (t *Target) readAdmins(ctx context.Context) error {
	admins := map[string]bool{}
	for page := 1; page > 0; {
		users, resp, err := t.client.Organizations.ListMembers(ctx, t.org, &gh.ListMembersOptions{Role: "admin", ListOptions: gh.ListOptions{Page: page, PerPage: perPage}})
		if err != nil {
			return fmt.Errorf("listing the owners of %s: %w", t.org, classify(err))
		}
		for _, u := range users {
			admins[strings.ToLower(u.GetLogin())] = true
		}
		if next := nextPage(resp); next > page {
			page = next
		} else {
			page = 0
		}
	}
	t.mu.Lock()
	t.admins = admins
	t.mu.Unlock()
	return nil
}

// Create invites the login to the organization with its role.
func (t *Target) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	login := desired.UserName()
	if login == "" {
		return connectors.Account{}, &connectors.PendingError{Message: `no GitHub login: set the User's attributes["github"] (or map userName) to the person's GitHub login`}
	}
	role, err := roleOf(desired)
	if err != nil {
		return connectors.Account{}, err
	}
	// Setting the membership invites a newcomer and keeps a member a member: a second
	// create of the same login is the same membership, not a second account.
	m, _, err := t.client.Organizations.EditOrgMembership(ctx, login, t.org, &gh.Membership{Role: gh.Ptr(role)})
	if err != nil {
		err = classify(err)
		if errors.Is(err, connectors.ErrNotFound) {
			return connectors.Account{}, &connectors.PermanentError{Message: fmt.Sprintf("GitHub has no user %q: check the User's GitHub login", login)}
		}
		return connectors.Account{}, err
	}
	t.noteRole(login, role)
	return membershipAccount(m), nil
}

func (t *Target) noteRole(login, role string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if role == "admin" {
		t.admins[strings.ToLower(login)] = true
	} else {
		delete(t.admins, strings.ToLower(login))
	}
}

// Update sets the role; an outside collaborator (deactivated) is invited again.
func (t *Target) Update(ctx context.Context, current, desired connectors.Account) (connectors.Account, error) {
	role, err := roleOf(desired)
	if err != nil {
		return connectors.Account{}, err
	}
	login := current.UserName()
	if !strings.EqualFold(desired.UserName(), login) {
		return connectors.Account{}, &connectors.PermanentError{Message: "a GitHub login cannot be changed by the organization: the person renames their account, and Roster follows the new login once attributes[\"github\"] says it"}
	}
	m, _, err := t.client.Organizations.EditOrgMembership(ctx, login, t.org, &gh.Membership{Role: gh.Ptr(role)})
	if err != nil {
		return connectors.Account{}, classify(err)
	}
	if !current.Active {
		if _, err := t.client.Organizations.RemoveOutsideCollaborator(ctx, t.org, login); err != nil && !errors.Is(classify(err), connectors.ErrNotFound) {
			return connectors.Account{}, classify(err)
		}
	}
	t.noteRole(login, role)
	return membershipAccount(m), nil
}

// Deactivate removes the member (or cancels the invitation), or converts a member to
// an outside collaborator, per the leavers policy.
func (t *Target) Deactivate(ctx context.Context, current connectors.Account) (connectors.Account, error) {
	login := current.UserName()
	var err error
	if t.leavers == identityv1alpha1.GitHubLeaverOutsideCollaborator && current.Note == "" {
		_, err = t.client.Organizations.ConvertMemberToOutsideCollaborator(ctx, t.org, login)
	} else {
		_, err = t.client.Organizations.RemoveOrgMembership(ctx, login, t.org)
	}
	if err != nil && !errors.Is(classify(err), connectors.ErrNotFound) {
		return connectors.Account{}, classify(err)
	}
	out := current
	out.Active, out.Note = false, ""
	return out, nil
}

// Delete removes every tie to the organization: membership, invitation, outside
// collaboration.
func (t *Target) Delete(ctx context.Context, id string) error {
	if _, err := t.client.Organizations.RemoveOrgMembership(ctx, id, t.org); err != nil && !errors.Is(classify(err), connectors.ErrNotFound) {
		return classify(err)
	}
	if _, err := t.client.Organizations.RemoveOutsideCollaborator(ctx, t.org, id); err != nil && !errors.Is(classify(err), connectors.ErrNotFound) {
		return classify(err)
	}
	return nil
}
