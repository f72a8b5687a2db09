// Package connectors holds the contract between Roster's engine and the systems it
// provisions into (targets) or reads people from (sources), the typed errors the engine
// decides on, and the registry that maps an AppConnection's connector block or a
// DirectorySync's source block to the code that speaks to that system. Each system
// lives in its own package below.
package connectors

import (
	"context"
	"strings"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Target is an app Roster provisions accounts into; an app with groups Roster can
// manage is a GroupTarget as well.
//
// Observe calls (Lookup, ListAccounts, ListGroups) never change the app. Every call is
// idempotent: Create of an account that exists returns ErrConflict, so the engine can look
// it up and adopt it; Delete of a missing account succeeds. Update with Active true
// reactivates a deactivated account.
type Target interface {
	// Validate checks the endpoint and credentials and reports what the app supports.
	Validate(ctx context.Context) (Capabilities, error)

	// Lookup finds one account by key, comparing case-insensitively whatever the app's
	// own filter does. It returns ErrNotFound when there is none.
	Lookup(ctx context.Context, key Key) (Account, error)
	// ListAccounts returns one page of the app's accounts; pass the returned Next to get
	// the following page, "" to start. Next is "" on the last page.
	ListAccounts(ctx context.Context, cursor string) (AccountPage, error)
	// Create creates an account and returns it with the app's id.
	Create(ctx context.Context, desired Account) (Account, error)
	// Update changes current into desired (attributes and active state).
	Update(ctx context.Context, current, desired Account) (Account, error)
	// Deactivate disables an account and keeps it.
	Deactivate(ctx context.Context, current Account) (Account, error)
	// Delete deletes an account by id.
	Delete(ctx context.Context, id string) error
}

// GroupTarget is a Target whose groups Roster manages.
type GroupTarget interface {
	Target
	// ListGroups returns one page of the app's groups with their members.
	ListGroups(ctx context.Context, cursor string) (GroupPage, error)
	// EnsureGroup returns the group with this display name, creating it (with no
	// members) if it does not exist.
	EnsureGroup(ctx context.Context, displayName string) (Group, error)
	// ChangeMembers adds and removes members (account ids) of a group, in as few
	// requests as the app allows.
	ChangeMembers(ctx context.Context, group Group, add, remove []string) error
}

// DefaultMapper is a Target whose app holds its own part of the canonical account
// schema: its defaults apply over Roster's default mapping and under the
// AppConnection's own, so that what the app cannot hold (null) is never a difference.
type DefaultMapper interface {
	DefaultMapping() []identityv1alpha1.ExpressionMapping
}

// Journal keeps a target's own records across restarts, in the API server beside its
// AppConnection: what Roster sent to an app that cannot list its accounts.
type Journal interface {
	// Entries returns every record kept, by key.
	Entries(ctx context.Context) (map[string][]byte, error)
	// Put keeps a record under a key, replacing what the key held.
	Put(ctx context.Context, key string, value []byte) error
	// Remove forgets a key; a key not kept is no error.
	Remove(ctx context.Context, key string) error
}

// JournalKeeper is implemented by the SecretReader handed to a TargetFactory where the
// operator can keep a Journal for the AppConnection.
type JournalKeeper interface {
	Journal() Journal
}

// Source is a system Roster reads people from.
type Source interface {
	// Validate checks the endpoint and credentials.
	Validate(ctx context.Context) error
	// Snapshot reads every person and group.
	Snapshot(ctx context.Context) (Snapshot, error)
}

// IncrementalSource is a Source that can report what changed since a watermark it gave.
type IncrementalSource interface {
	Source
	// Changes returns what changed since watermark, and the new watermark.
	Changes(ctx context.Context, watermark string) (ChangeSet, error)
}

// WatchingSource is a Source that reports changes as they happen (LDAP syncrepl).
type WatchingSource interface {
	Source
	// Watch calls changed for every change until ctx ends or the connection fails.
	Watch(ctx context.Context, changed func(ChangeSet)) error
}

// Snapshot is everything a source holds, and a watermark to ask for changes after it.
type Snapshot struct {
	Records   []Record
	Groups    []SourceGroup
	Watermark string
}

// ChangeSet is what changed in a source since a watermark.
type ChangeSet struct {
	Changed []Record
	// Deleted are the ids of records or groups that are gone.
	Deleted []string
	// Groups are groups added or changed, each whole.
	Groups    []SourceGroup
	Watermark string
}

// Record is one person as a source holds it.
type Record struct {
	// ID is the source's immutable id for the person.
	ID string
	// Attributes are the source's attributes, available to mapping as `record`.
	Attributes map[string]any
	// Disabled is true when the source marks the person as disabled.
	Disabled bool
	// Annotations are written on the person's User, for sources that keep their own
	// state there (the inbound SCIM server keeps the resource an identity provider sent).
	Annotations map[string]string
	// Groups are the ids of the groups the person is a direct member of, for sources
	// that record membership on the person; membership recorded on groups
	// (SourceGroup.Members) counts as well.
	Groups []string
}

// SourceGroup is a directory group; members are record ids or other group ids.
type SourceGroup struct {
	ID      string
	Name    string
	Members []string
}

// Account is one account in an app. Attributes use Roster's canonical account schema,
// the SCIM 2.0 attribute paths ("userName", "name.givenName", "emails",
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"); each
// connector translates them to its app's own.
type Account struct {
	// ID is the app's id for the account, empty before it is created.
	ID string
	// Active is false for a deactivated account.
	Active bool
	// Version is the app's version tag (ETag), where it has one.
	Version string
	// Attributes are the account's attributes by canonical path.
	Attributes map[string]any
	// Note is what the app says of the account that a person should know, shown as the
	// account's status message (an invitation not accepted yet).
	Note string
	// LastLogin is when the person last signed in to the app, where the app tells;
	// zero when it does not, or they never have.
	LastLogin time.Time
}

// Canonical attribute paths the engine reads.
const (
	AttrUserName   = "userName"
	AttrExternalID = "externalId"
	AttrEmails     = "emails"
)

// UserName is the account's login.
func (a Account) UserName() string { return stringAttr(a.Attributes, AttrUserName) }

// ExternalID is the provisioning client's id for the account.
func (a Account) ExternalID() string { return stringAttr(a.Attributes, AttrExternalID) }

// Email is the account's primary email, or its first one.
func (a Account) Email() string {
	emails, _ := a.Attributes[AttrEmails].([]any)
	first := ""
	for _, e := range emails {
		m, _ := e.(map[string]any)
		value, _ := m["value"].(string)
		if primary, _ := m["primary"].(bool); primary {
			return value
		}
		if first == "" {
			first = value
		}
	}
	return first
}

// KeyValue is the account's value for a matching key.
func (a Account) KeyValue(kind KeyKind) string {
	switch kind {
	case KeyEmail:
		return a.Email()
	case KeyExternalID:
		return a.ExternalID()
	default:
		return a.UserName()
	}
}

func stringAttr(attrs map[string]any, path string) string {
	s, _ := attrs[path].(string)
	return s
}

// KeyKind is what a Key matches on.
type KeyKind string

const (
	KeyUserName   KeyKind = "UserName"
	KeyEmail      KeyKind = "Email"
	KeyExternalID KeyKind = "ExternalID"
)

// Key identifies an account by a matching key, compared case-insensitively.
type Key struct {
	Kind  KeyKind
	Value string
}

// Matches reports whether the account has this key, ignoring letter case.
func (k Key) Matches(a Account) bool {
	v := a.KeyValue(k.Kind)
	return v != "" && strings.EqualFold(v, k.Value)
}

// AccountPage is one page of accounts.
type AccountPage struct {
	Accounts []Account
	// Next fetches the following page; "" on the last page.
	Next string
}

// Group is a group in an app.
type Group struct {
	ID          string
	DisplayName string
	// Members are the account ids in the group.
	Members []string
	Version string
}

// GroupPage is one page of groups.
type GroupPage struct {
	Groups []Group
	Next   string
}

// Capabilities are what a target was found to support.
type Capabilities struct {
	Groups       bool // has groups Roster can manage
	Patch        bool // partial updates
	Filter       bool // lookups by filter
	ETag         bool // versioned writes
	Bulk         bool // bulk requests
	CursorPaging bool // cursor paging as well as or instead of index paging
	MaxResults   int  // the largest page the app serves, 0 if unknown
	// MemberBatch is the most member changes one ChangeMembers request carries; 0 if one
	// request carries any number.
	MemberBatch int
}

// Names lists the capabilities for status, in a fixed order.
func (c Capabilities) Names() []string {
	var names []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.Groups, "Groups"}, {c.Patch, "Patch"}, {c.Filter, "Filter"}, {c.ETag, "ETag"}, {c.Bulk, "Bulk"}, {c.CursorPaging, "CursorPaging"}} {
		if f.on {
			names = append(names, f.name)
		}
	}
	return names
}

// TargetFactory builds a Target for one AppConnection, with its credentials resolved.
type TargetFactory func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets SecretReader) (Target, error)

// SourceFactory builds a Source for one DirectorySync, with its credentials resolved.
type SourceFactory func(ctx context.Context, sync *identityv1alpha1.DirectorySync, secrets SecretReader) (Source, error)

// SecretReader reads one key of a Secret in the object's namespace.
type SecretReader interface {
	SecretValue(ctx context.Context, name, key string) ([]byte, error)
}

// ConfigMapReader reads one key of a ConfigMap in the object's namespace. The reader
// handed to a SourceFactory implements it as well.
type ConfigMapReader interface {
	ConfigMapValue(ctx context.Context, name, key string) ([]byte, error)
}
