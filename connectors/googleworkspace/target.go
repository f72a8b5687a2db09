// Package googleworkspace provisions the users and groups of a Google Workspace (or
// Cloud Identity) account through Google's Admin SDK Directory API client, as a
// service account with domain-wide delegation acting for an admin: a joiner is
// inserted, a mover patched with what changed, a leaver suspended, and groups' members
// changed in batch requests of up to 1,000 calls.
package googleworkspace

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	admin "google.golang.org/api/admin/directory/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// Google's documented default quota for the Directory API: 2,400 queries a minute per
// user per Cloud project. Every call in a batch counts.
const (
	defaultRequestsPerSecond = 2400.0 / 60
	pageSize                 = 500
	defaultAPIURL            = "https://admin.googleapis.com/"
)

// Attribute paths of the Google user that have no SCIM name.
const (
	// AttrOrgUnitPath is the user's organizational unit ("/Engineering").
	AttrOrgUnitPath = "orgUnitPath"
	attrTitle       = "title"
	attrDepartment  = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
	attrGivenName   = "name.givenName"
	attrFamilyName  = "name.familyName"
	// attrOrganizations and attrExternalIDs keep what Google holds in the lists Roster
	// writes one entry of, so that a write keeps the others.
	attrOrganizations = "organizations"
	attrExternalIDs   = "externalIds"
)

// NewFactory returns the TargetFactory for AppConnections with a googleWorkspace block.
func NewFactory() connectors.TargetFactory {
	return func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets connectors.SecretReader) (connectors.Target, error) {
		spec := conn.Spec.GoogleWorkspace
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the AppConnection has no googleWorkspace block"}
		}
		access, err := accessOf(ctx, spec.GoogleServiceAccount, secrets, conn.Spec.RateLimit, conn.Namespace+"/"+conn.Name)
		if err != nil {
			return nil, err
		}
		return New(ctx, Config{Access: access, Domain: spec.Domain,
			MustChangePassword: spec.InitialPassword == identityv1alpha1.InitialPasswordRandomMustChange})
	}
}

// Config configures a Target.
type Config struct {
	Access
	// Domain names groups given without a domain.
	Domain string
	// MustChangePassword sets changePasswordAtNextLogin on new users.
	MustChangePassword bool
}

// Target provisions a Google Workspace account.
type Target struct {
	*session
	svc        *admin.Service
	domain     string
	mustChange bool

	// emails are users' primary emails by id: Google adds a member by email.
	mu     sync.Mutex
	emails map[string]string
}

var (
	_ connectors.GroupTarget   = (*Target)(nil)
	_ connectors.DefaultMapper = (*Target)(nil)
)

// New returns a Target.
func New(ctx context.Context, cfg Config) (*Target, error) {
	s, err := connect(ctx, cfg.Access, Scopes)
	if err != nil {
		return nil, err
	}
	svc, err := admin.NewService(ctx, s.options()...)
	if err != nil {
		return nil, &connectors.PermanentError{Message: err.Error()}
	}
	return &Target{session: s, svc: svc, domain: strings.ToLower(cfg.Domain), mustChange: cfg.MustChangePassword,
		emails: map[string]string{}}, nil
}

// DefaultMapping: a Google user is its primary email (the User's primary email, else
// its userName), a given and a family name, a title and department in its primary
// organization, and an org unit only where the AppConnection's mapping sets one.
func (t *Target) DefaultMapping() []identityv1alpha1.ExpressionMapping {
	m := []identityv1alpha1.ExpressionMapping{
		{Target: connectors.AttrUserName, Expression: `user.emails.exists(e, e.primary) ? user.emails.filter(e, e.primary)[0].value : user.userName`},
		{Target: AttrOrgUnitPath, Expression: "null"},
		// Google holds no empty name: a User without one leaves Google's as it is.
		{Target: attrGivenName, Expression: `user.name.givenName != "" ? user.name.givenName : null`},
		{Target: attrFamilyName, Expression: `user.name.familyName != "" ? user.name.familyName : null`},
	}
	for _, path := range []string{connectors.AttrEmails, "displayName", "name.middleName", "userType", "roles",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"} {
		m = append(m, identityv1alpha1.ExpressionMapping{Target: path, Expression: "null"})
	}
	return m
}

// Validate lists one user, which checks the key, the delegation, the scopes and the
// customer.
func (t *Target) Validate(ctx context.Context) (connectors.Capabilities, error) {
	if _, err := t.svc.Users.List().Customer(t.customer).MaxResults(1).Context(ctx).Do(); err != nil {
		return connectors.Capabilities{}, fmt.Errorf("listing the account's users: %w", t.classify(err))
	}
	return connectors.Capabilities{Groups: true, Patch: true, Filter: true, ETag: true, Bulk: true, CursorPaging: true,
		MaxResults: pageSize, MemberBatch: maxBatchCalls}, nil
}

// Lookup finds a user by primary email (userName or email) or by external id.
func (t *Target) Lookup(ctx context.Context, key connectors.Key) (connectors.Account, error) {
	if key.Value == "" {
		return connectors.Account{}, connectors.ErrNotFound
	}
	var found []*admin.User
	switch key.Kind {
	case connectors.KeyExternalID:
		users, err := t.svc.Users.List().Customer(t.customer).Query("externalId:" + quote(key.Value)).MaxResults(pageSize).Context(ctx).Do()
		if err != nil {
			return connectors.Account{}, t.classify(err)
		}
		found = users.Users
	default:
		if !strings.Contains(key.Value, "@") {
			return connectors.Account{}, connectors.ErrNotFound // Google knows users by email only
		}
		u, err := t.svc.Users.Get(key.Value).Context(ctx).Do()
		if err != nil {
			return connectors.Account{}, t.classify(err)
		}
		found = []*admin.User{u}
	}
	for _, u := range found {
		if a := t.account(u); key.Matches(a) {
			return a, nil
		}
	}
	return connectors.Account{}, connectors.ErrNotFound
}

// quote puts a value in single quotes for the users.list query, as Google's search
// syntax wants a value with spaces.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// ListAccounts returns a page of the customer's users.
func (t *Target) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	users, err := t.svc.Users.List().Customer(t.customer).MaxResults(pageSize).PageToken(cursor).Context(ctx).Do()
	if err != nil {
		return connectors.AccountPage{}, t.classify(err)
	}
	page := connectors.AccountPage{Next: users.NextPageToken}
	for _, u := range users.Users {
		page.Accounts = append(page.Accounts, t.account(u))
	}
	return page, nil
}

// Create inserts a user with a random password nobody is told.
func (t *Target) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	u, err := t.newUser(desired)
	if err != nil {
		return connectors.Account{}, err
	}
	created, err := t.svc.Users.Insert(u).Context(ctx).Do()
	if err != nil {
		return connectors.Account{}, t.classify(err)
	}
	return t.account(created), nil
}

func (t *Target) newUser(desired connectors.Account) (*admin.User, error) {
	given, family := str(desired.Attributes, attrGivenName), str(desired.Attributes, attrFamilyName)
	if given == "" || family == "" {
		return nil, &connectors.PermanentError{Message: "Google needs a given and a family name for a new user: set the User's name or map name.givenName and name.familyName"}
	}
	if !strings.Contains(desired.UserName(), "@") {
		return nil, &connectors.PermanentError{Message: fmt.Sprintf("a Google user is its primary email in one of the account's domains; %q is not an email: give the User a primary email or map userName", desired.UserName())}
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	u := &admin.User{PrimaryEmail: desired.UserName(), Name: &admin.UserName{GivenName: given, FamilyName: family},
		Password: password, ChangePasswordAtNextLogin: t.mustChange, Suspended: !desired.Active,
		OrgUnitPath: str(desired.Attributes, AttrOrgUnitPath)}
	u.Organizations = organizations(nil, desired.Attributes)
	u.ExternalIds = externalIDs(nil, desired.ExternalID())
	return u, nil
}

func randomPassword() (string, error) {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Update patches what differs, and nothing else.
func (t *Target) Update(ctx context.Context, current, desired connectors.Account) (connectors.Account, error) {
	patch, changed := &admin.User{}, false
	for _, path := range connectors.Differences(desired.Attributes, current.Attributes) {
		switch path {
		case connectors.AttrUserName:
			patch.PrimaryEmail = desired.UserName() // a rename: Google keeps the old address as an alias
		case attrGivenName, attrFamilyName:
			patch.Name = &admin.UserName{GivenName: cmp.Or(str(desired.Attributes, attrGivenName), str(current.Attributes, attrGivenName)),
				FamilyName: cmp.Or(str(desired.Attributes, attrFamilyName), str(current.Attributes, attrFamilyName))} // Google holds no empty name
		case attrTitle, attrDepartment:
			patch.Organizations = organizations(current.Attributes[attrOrganizations], merged(current.Attributes, desired.Attributes, attrTitle, attrDepartment))
		case connectors.AttrExternalID:
			patch.ExternalIds = externalIDs(current.Attributes[attrExternalIDs], desired.ExternalID())
		case AttrOrgUnitPath:
			patch.OrgUnitPath = str(desired.Attributes, AttrOrgUnitPath)
		default:
			continue // an attribute Google does not hold
		}
		changed = true
	}
	if desired.Active != current.Active {
		changed = true
		patch.Suspended = !desired.Active
		patch.ForceSendFields = append(patch.ForceSendFields, "Suspended")
	}
	if !changed {
		return current, nil
	}
	updated, err := t.svc.Users.Patch(current.ID, patch).Context(ctx).Do()
	if err != nil {
		return connectors.Account{}, t.classify(err)
	}
	return t.account(updated), nil
}

// merged is current's values of paths, overridden by desired's where desired has them.
func merged(current, desired map[string]any, paths ...string) map[string]any {
	out := map[string]any{}
	for _, p := range paths {
		if v, ok := desired[p]; ok {
			out[p] = v
		} else if v, ok := current[p]; ok {
			out[p] = v
		}
	}
	return out
}

// Deactivate suspends the user: they cannot sign in, and keep their data.
func (t *Target) Deactivate(ctx context.Context, current connectors.Account) (connectors.Account, error) {
	updated, err := t.svc.Users.Patch(current.ID, &admin.User{Suspended: true}).Context(ctx).Do()
	if err != nil {
		return connectors.Account{}, t.classify(err)
	}
	return t.account(updated), nil
}

// Delete deletes the user; Google keeps a deleted user restorable for 20 days.
func (t *Target) Delete(ctx context.Context, id string) error {
	err := t.svc.Users.Delete(id).Context(ctx).Do()
	if err = t.classify(err); errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	return err
}

// account is a Google user in Roster's canonical schema.
func (t *Target) account(u *admin.User) connectors.Account {
	attrs := map[string]any{
		connectors.AttrUserName: u.PrimaryEmail,
		connectors.AttrEmails:   []any{map[string]any{"value": u.PrimaryEmail, "type": "work", "primary": true}},
		AttrOrgUnitPath:         u.OrgUnitPath,
	}
	if u.Name != nil {
		attrs[attrGivenName], attrs[attrFamilyName] = u.Name.GivenName, u.Name.FamilyName
	}
	if org := primaryOrganization(u.Organizations); org != nil {
		attrs[attrTitle], _ = org["title"].(string)
		attrs[attrDepartment], _ = org["department"].(string)
		attrs[attrOrganizations] = u.Organizations
	}
	if ids, _ := u.ExternalIds.([]any); len(ids) > 0 {
		attrs[attrExternalIDs] = ids
		if id := organizationExternalID(ids); id != "" {
			attrs[connectors.AttrExternalID] = id
		}
	}
	t.mu.Lock()
	t.emails[u.Id] = u.PrimaryEmail
	t.mu.Unlock()
	acc := connectors.Account{ID: u.Id, Active: !u.Suspended, Version: u.Etag, Attributes: attrs}
	if at, err := time.Parse(time.RFC3339, u.LastLoginTime); err == nil && at.Year() > 1970 {
		acc.LastLogin = at // Google gives 1970-01-01 for a user who never signed in
	}
	return acc
}

func str(attrs map[string]any, path string) string {
	s, _ := attrs[path].(string)
	return s
}
