// Package webhook provisions through a receiver a company runs for an app Roster has no
// API for: every change is one signed HTTPS request in Roster's webhook protocol, and a
// receiver that can list its accounts is observed like any other app. The protocol is
// documented in docs/connectors/webhook.md, with JSON Schemas in config/webhook/.
package webhook

import "github.com/rosterhq/roster/connectors"

// Version is the protocol version every request carries and every answer names.
const Version = "roster.webhook/v1"

// Request types: the changes, then the reads a receiver that lists implements.
const (
	TypeAccountCreate     = "account.create"
	TypeAccountUpdate     = "account.update"
	TypeAccountDeactivate = "account.deactivate"
	TypeAccountReactivate = "account.reactivate"
	TypeAccountDelete     = "account.delete"
	TypeGroupEnsure       = "group.ensure"
	TypeGroupMembers      = "group.members"

	TypeCapabilities   = "capabilities"
	TypeAccountsList   = "accounts.list"
	TypeAccountsLookup = "accounts.lookup"
	TypeGroupsList     = "groups.list"
)

// Headers of every request.
const (
	HeaderSignature      = "Roster-Signature"
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Request is the body of every request Roster sends.
type Request struct {
	Version string `json:"version"`
	Type    string `json:"type"`
	// IdempotencyKey is the same for every delivery of one change, and in the header.
	IdempotencyKey string `json:"idempotencyKey"`
	// App is the AppConnection, "namespace/name".
	App     string   `json:"app"`
	Account *Account `json:"account,omitempty"`
	// Changed lists the attribute paths an account.update changes.
	Changed []string `json:"changed,omitempty"`
	Group   *Group   `json:"group,omitempty"`
	Members *Members `json:"members,omitempty"`
	Cursor  string   `json:"cursor,omitempty"`
	Match   *Match   `json:"match,omitempty"`
}

// Account is an account in Roster's canonical attributes (SCIM 2.0 paths).
type Account struct {
	ID         string         `json:"id,omitempty"`
	Active     bool           `json:"active"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// Group is an app group; Members are account ids, in listings.
type Group struct {
	ID          string   `json:"id,omitempty"`
	DisplayName string   `json:"displayName"`
	Members     []string `json:"members,omitempty"`
}

// Members are the account ids a group.members change adds and removes.
type Members struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

// Match is what an accounts.lookup looks for: key userName, email or externalId,
// compared without regard to letter case.
type Match struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Answer is the body of a receiver's answer; each request type reads its own part.
type Answer struct {
	Version      string        `json:"version,omitempty"`
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	Account      *Account      `json:"account,omitempty"`
	Accounts     []Account     `json:"accounts,omitempty"`
	Group        *Group        `json:"group,omitempty"`
	Groups       []Group       `json:"groups,omitempty"`
	Next         string        `json:"next,omitempty"`
	// Error is what the receiver says went wrong, with a 4xx or 5xx.
	Error string `json:"error,omitempty"`
}

// Capabilities are what a receiver implements beyond the changes.
type Capabilities struct {
	// List: accounts.list, accounts.lookup and (with Groups) groups.list. A receiver
	// that cannot list is observed through what Roster sent it.
	List bool `json:"list"`
	// Groups: the app has groups, and group.ensure and group.members are implemented.
	Groups bool `json:"groups"`
}

// matchKeys names connectors' key kinds in the protocol.
var matchKeys = map[connectors.KeyKind]string{
	connectors.KeyUserName: "userName", connectors.KeyEmail: "email", connectors.KeyExternalID: "externalId",
}

func toAccount(a connectors.Account) *Account {
	return &Account{ID: a.ID, Active: a.Active, Attributes: a.Attributes}
}

func fromAccount(a Account) connectors.Account {
	return connectors.Account{ID: a.ID, Active: a.Active, Attributes: a.Attributes}
}
