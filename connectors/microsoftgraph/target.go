// Package microsoftgraph provisions the users, groups and licences of a Microsoft Entra
// ID tenant (Microsoft 365) through Microsoft Graph v1.0, with an app registration's
// client credentials: a joiner is created, a mover patched with what changed, a leaver
// disabled with their sign-in sessions revoked, and groups' members changed twenty to
// a request, twenty requests to a batch.
package microsoftgraph

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// Graph's documented limits for identity and access, per app and tenant: writes 3,000
// per 150 seconds; reads are counted in resource units (3,500 to 8,000 per 10 seconds
// by the tenant's size), of which a user's read costs one or two.
const (
	defaultRequestsPerSecond = 150.0
	defaultWrites            = 3000
	defaultWritePeriod       = 150 * time.Second
	pageSize                 = 999
)

// Attribute paths of an Entra ID user that have no SCIM name.
const (
	// AttrUsageLocation is the user's two-letter usage location, which licences need.
	AttrUsageLocation = "usageLocation"
	// AttrLicenses are the SKU ids of the licences the user holds.
	AttrLicenses   = "licenses"
	attrGivenName  = "name.givenName"
	attrFamilyName = "name.familyName"
	attrTitle      = "title"
	attrDepartment = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
	attrNickname   = "mailNickname"
)

// userFields are the Graph properties Roster reads and writes, by canonical path.
var userFields = map[string]string{
	connectors.AttrUserName:   "userPrincipalName",
	"displayName":             "displayName",
	attrGivenName:             "givenName",
	attrFamilyName:            "surname",
	attrTitle:                 "jobTitle",
	attrDepartment:            "department",
	connectors.AttrExternalID: "employeeId",
	AttrUsageLocation:         "usageLocation",
}

const selectUsers = "id,mail,userPrincipalName,displayName,givenName,surname,jobTitle,department,employeeId,usageLocation,mailNickname,accountEnabled,assignedLicenses"

// NewFactory returns the TargetFactory for AppConnections with a microsoftGraph block.
func NewFactory() connectors.TargetFactory {
	return func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets connectors.SecretReader) (connectors.Target, error) {
		spec := conn.Spec.MicrosoftGraph
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the AppConnection has no microsoftGraph block"}
		}
		access, err := accessOf(ctx, spec.MicrosoftGraphApp, secrets, conn.Spec.RateLimit, conn.Namespace+"/"+conn.Name)
		if err != nil {
			return nil, err
		}
		return New(ctx, Config{Access: access, UsageLocation: spec.UsageLocation,
			MustChangePassword: spec.InitialPassword == identityv1alpha1.InitialPasswordRandomMustChange,
			RevokeSessions:     spec.LeaverSessions != identityv1alpha1.LeaverSessionsKeep})
	}
}

// Config configures a Target.
type Config struct {
	Access
	// UsageLocation is given to new users the mapping gives none.
	UsageLocation string
	// MustChangePassword sets forceChangePasswordNextSignIn on new users.
	MustChangePassword bool
	// RevokeSessions ends a disabled user's sign-in sessions.
	RevokeSessions bool
}

// Target provisions an Entra ID tenant.
type Target struct {
	*session
	usageLocation  string
	mustChange     bool
	revokeSessions bool
	// noSignInActivity is set once Graph refuses signInActivity (a tenant without
	// Entra ID P1, or no AuditLog.Read.All): listings then leave it out.
	noSignInActivity atomic.Bool
}

var (
	_ connectors.GroupTarget   = (*Target)(nil)
	_ connectors.DefaultMapper = (*Target)(nil)
)

// New returns a Target.
func New(ctx context.Context, cfg Config) (*Target, error) {
	s, err := connect(ctx, cfg.Access)
	if err != nil {
		return nil, err
	}
	return &Target{session: s, usageLocation: cfg.UsageLocation, mustChange: cfg.MustChangePassword, revokeSessions: cfg.RevokeSessions}, nil
}

// DefaultMapping: an Entra ID user is its userPrincipalName (the User's userName), a
// display name (Graph requires one), names, title, department and employee id, and the
// licence an assignment names.
func (t *Target) DefaultMapping() []identityv1alpha1.ExpressionMapping {
	m := []identityv1alpha1.ExpressionMapping{
		{Target: "displayName", Expression: `user.displayName != "" ? user.displayName : (user.name.givenName + " " + user.name.familyName).trim() != "" ? (user.name.givenName + " " + user.name.familyName).trim() : user.userName`},
		{Target: attrGivenName, Expression: `user.name.givenName != "" ? user.name.givenName : null`},
		{Target: attrFamilyName, Expression: `user.name.familyName != "" ? user.name.familyName : null`},
		{Target: AttrLicenses, Expression: `entitlements.license != "" ? dyn([entitlements.license]) : null`},
	}
	for _, path := range []string{"name.middleName", "userType", "roles",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"} {
		m = append(m, identityv1alpha1.ExpressionMapping{Target: path, Expression: "null"})
	}
	return m
}

// Validate reads the tenant's users, which checks the credentials and User.Read.All or
// User.ReadWrite.All.
func (t *Target) Validate(ctx context.Context) (connectors.Capabilities, error) {
	if err := t.send(ctx, http.MethodGet, "v1.0/users?$select=id&$top=1", nil, nil); err != nil {
		return connectors.Capabilities{}, fmt.Errorf("listing the tenant's users: %w", err)
	}
	return connectors.Capabilities{Groups: true, Patch: true, Filter: true, Bulk: true, CursorPaging: true,
		MaxResults: pageSize, MemberBatch: maxMembersPerBatch}, nil
}

// Lookup finds a user by userPrincipalName, mail or employee id.
func (t *Target) Lookup(ctx context.Context, key connectors.Key) (connectors.Account, error) {
	if key.Value == "" {
		return connectors.Account{}, connectors.ErrNotFound
	}
	var filter string
	switch key.Kind {
	case connectors.KeyExternalID:
		filter = "employeeId eq " + quote(key.Value)
	case connectors.KeyEmail:
		filter = "mail eq " + quote(key.Value)
	default:
		filter = "userPrincipalName eq " + quote(key.Value)
	}
	var page userPage
	if err := t.send(ctx, http.MethodGet, "v1.0/users?$select="+t.selectUsers()+"&$filter="+url.QueryEscape(filter), nil, &page); err != nil {
		return connectors.Account{}, err
	}
	for _, u := range page.Value {
		if a := t.account(u); key.Matches(a) {
			return a, nil
		}
	}
	return connectors.Account{}, connectors.ErrNotFound
}

// quote is an OData string literal.
func quote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// ListAccounts returns a page of the tenant's users; the cursor is Graph's nextLink.
func (t *Target) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	path := "v1.0/users?$select=" + t.selectUsers() + "&$top=" + fmt.Sprint(pageSize)
	if cursor != "" {
		path = cursor
	}
	var page userPage
	err := t.send(ctx, http.MethodGet, path, nil, &page)
	if cursor == "" && isSignInRefusal(err) && !t.noSignInActivity.Swap(true) {
		return t.ListAccounts(ctx, "") // the tenant does not give sign-ins: list without
	}
	if err != nil {
		return connectors.AccountPage{}, err
	}
	next, err := t.relative(page.NextLink)
	if err != nil {
		return connectors.AccountPage{}, err
	}
	out := connectors.AccountPage{Next: next}
	for _, u := range page.Value {
		out.Accounts = append(out.Accounts, t.account(u))
	}
	return out, nil
}

func (t *Target) selectUsers() string {
	if t.noSignInActivity.Load() {
		return selectUsers
	}
	return selectUsers + ",signInActivity"
}

// Create posts a user with a random password nobody is told, then the licence.
func (t *Target) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	body, err := t.newUser(desired)
	if err != nil {
		return connectors.Account{}, err
	}
	var created graphUser
	if err := t.send(ctx, http.MethodPost, "v1.0/users", body, &created); err != nil {
		return connectors.Account{}, err
	}
	if created.ID == "" {
		return connectors.Account{}, &connectors.TransientError{Err: errors.New("the user was created but the answer has no id")}
	}
	account := t.account(created)
	if want := licenses(desired.Attributes); len(want) > 0 {
		if err := t.assignLicenses(ctx, created.ID, want, nil); err != nil {
			return account, err // the user is there: the next pass assigns the licence
		}
		account.Attributes[AttrLicenses] = toAny(want)
	}
	return account, nil
}

func (t *Target) newUser(desired connectors.Account) (map[string]any, error) {
	upn := desired.UserName()
	local, _, ok := strings.Cut(upn, "@")
	if !ok || local == "" {
		return nil, &connectors.PermanentError{Message: fmt.Sprintf("an Entra ID user is its userPrincipalName, an address in one of the tenant's verified domains; %q is not one: map userName", upn)}
	}
	password, err := randomPassword()
	if err != nil {
		return nil, err
	}
	body := map[string]any{"accountEnabled": desired.Active, "mailNickname": nickname(local),
		"passwordProfile": map[string]any{"password": password, "forceChangePasswordNextSignIn": t.mustChange}}
	for path, field := range userFields {
		if v, ok := desired.Attributes[path].(string); ok && v != "" {
			body[field] = v
		}
	}
	if body["displayName"] == nil {
		body["displayName"] = upn
	}
	if mail := desired.Email(); mail != "" {
		body["mail"] = mail
	}
	if body["usageLocation"] == nil && t.usageLocation != "" {
		body["usageLocation"] = t.usageLocation
	}
	return body, nil
}

// nickname is a mailNickname from a UPN's local part: the characters Graph admits.
func nickname(local string) string {
	var b strings.Builder
	for _, r := range local {
		if r < 128 && r > 32 && !strings.ContainsRune(`@()\[]";:<>, `, r) {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "user" + randomID()[:8]
	}
	return b.String()
}

func randomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	// Entra ID wants three of four character classes: the suffix gives them.
	return base64.RawURLEncoding.EncodeToString(b) + "aA1!", nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Update patches what differs, and nothing else; a licence change is one assignLicense.
func (t *Target) Update(ctx context.Context, current, desired connectors.Account) (connectors.Account, error) {
	patch := map[string]any{}
	for _, path := range connectors.Differences(desired.Attributes, current.Attributes) {
		if field, ok := userFields[path]; ok {
			patch[field] = desired.Attributes[path] // nil clears it
		}
	}
	if mail := desired.Email(); mail != "" && !strings.EqualFold(mail, current.Email()) {
		patch["mail"] = mail
	}
	if desired.Active != current.Active {
		patch["accountEnabled"] = desired.Active
	}
	updated := current
	updated.Attributes = maps.Clone(current.Attributes)
	if len(patch) > 0 {
		if err := t.send(ctx, http.MethodPatch, "v1.0/users/"+url.PathEscape(current.ID), patch, nil); err != nil {
			return connectors.Account{}, err
		}
		for path, field := range userFields {
			if v, ok := patch[field]; ok {
				updated.Attributes[path] = v
			}
		}
		if mail, ok := patch["mail"].(string); ok {
			updated.Attributes[connectors.AttrEmails] = emails(mail)
		}
		updated.Active = desired.Active
	}
	if want, ok := desired.Attributes[AttrLicenses]; ok && want != nil {
		have := licenses(current.Attributes)
		add, remove := difference(licenses(desired.Attributes), have), difference(have, licenses(desired.Attributes))
		if len(add)+len(remove) > 0 {
			if err := t.assignLicenses(ctx, current.ID, add, remove); err != nil {
				return connectors.Account{}, err
			}
			updated.Attributes[AttrLicenses] = toAny(licenses(desired.Attributes))
		}
	}
	return updated, nil
}

func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y string) bool { return strings.EqualFold(x, y) }) {
			out = append(out, x)
		}
	}
	return out
}

// assignLicenses adds and removes licences by SKU id.
func (t *Target) assignLicenses(ctx context.Context, id string, add, remove []string) error {
	adds := make([]any, 0, len(add))
	for _, sku := range add {
		adds = append(adds, map[string]any{"skuId": sku, "disabledPlans": []any{}})
	}
	if remove == nil {
		remove = []string{}
	}
	return t.send(ctx, http.MethodPost, "v1.0/users/"+url.PathEscape(id)+"/assignLicense",
		map[string]any{"addLicenses": adds, "removeLicenses": remove}, nil)
}

// Deactivate disables the account and ends its sign-in sessions: the leaver is out of
// every app that signs in with Entra ID, open sessions included.
func (t *Target) Deactivate(ctx context.Context, current connectors.Account) (connectors.Account, error) {
	if current.Active {
		if err := t.send(ctx, http.MethodPatch, "v1.0/users/"+url.PathEscape(current.ID), map[string]any{"accountEnabled": false}, nil); err != nil {
			return connectors.Account{}, err
		}
	}
	if t.revokeSessions {
		if err := t.send(ctx, http.MethodPost, "v1.0/users/"+url.PathEscape(current.ID)+"/revokeSignInSessions", nil, nil); err != nil {
			return connectors.Account{}, fmt.Errorf("the account is disabled, but its sessions were not revoked: %w", err)
		}
	}
	current.Active = false
	return current, nil
}

// Delete deletes the user into the tenant's deleted items, restorable for 30 days.
func (t *Target) Delete(ctx context.Context, id string) error {
	err := t.send(ctx, http.MethodDelete, "v1.0/users/"+url.PathEscape(id), nil, nil)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	return err
}

// graphUser is the part of a Graph user Roster reads.
type graphUser struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
	GivenName         string `json:"givenName"`
	Surname           string `json:"surname"`
	JobTitle          string `json:"jobTitle"`
	Department        string `json:"department"`
	EmployeeID        string `json:"employeeId"`
	UsageLocation     string `json:"usageLocation"`
	MailNickname      string `json:"mailNickname"`
	Mail              string `json:"mail"`
	AccountEnabled    *bool  `json:"accountEnabled"`
	AssignedLicenses  []struct {
		SkuID string `json:"skuId"`
	} `json:"assignedLicenses"`
	SignInActivity *struct {
		LastSignInDateTime string `json:"lastSignInDateTime"`
	} `json:"signInActivity"`
}

type userPage struct {
	Value    []graphUser `json:"value"`
	NextLink string      `json:"@odata.nextLink"`
}

// account is a Graph user in Roster's canonical schema.
func (t *Target) account(u graphUser) connectors.Account {
	attrs := map[string]any{
		connectors.AttrUserName: u.UserPrincipalName, "displayName": u.DisplayName, attrGivenName: u.GivenName,
		attrFamilyName: u.Surname, attrTitle: u.JobTitle, attrDepartment: u.Department, connectors.AttrExternalID: u.EmployeeID,
		AttrUsageLocation: u.UsageLocation, attrNickname: u.MailNickname,
	}
	for path, v := range attrs {
		if v == "" {
			attrs[path] = nil // Graph's null and Roster's absent are one
		}
	}
	if u.Mail != "" {
		attrs[connectors.AttrEmails] = emails(u.Mail)
	}
	skus := make([]string, 0, len(u.AssignedLicenses))
	for _, l := range u.AssignedLicenses {
		skus = append(skus, l.SkuID)
	}
	attrs[AttrLicenses] = toAny(skus)
	acc := connectors.Account{ID: u.ID, Active: u.AccountEnabled == nil || *u.AccountEnabled, Attributes: attrs}
	if u.SignInActivity != nil {
		if at, err := time.Parse(time.RFC3339, u.SignInActivity.LastSignInDateTime); err == nil {
			acc.LastLogin = at
		}
	}
	return acc
}

func emails(mail string) []any {
	return []any{map[string]any{"value": mail, "type": "work", "primary": true}}
}

func licenses(attrs map[string]any) []string {
	var out []string
	switch v := attrs[AttrLicenses].(type) {
	case []string:
		out = v
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func toAny(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}
