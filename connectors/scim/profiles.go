package scim

import "fmt"

// Paging methods.
const (
	PagingAuto   = ""       // cursor when /ServiceProviderConfig offers it, else index
	PagingIndex  = "index"  // startIndex and count (RFC 7644 §3.4.2.4)
	PagingCursor = "cursor" // cursor and count (RFC 9865)
)

// Update methods.
const (
	UpdateAuto  = ""      // PATCH when /ServiceProviderConfig says it is supported, else PUT
	UpdatePatch = "patch" // PATCH with only the changed attributes
	UpdatePut   = "put"   // PUT of the whole resource, keeping every attribute and active
)

// Profile is what Roster knows about one app's SCIM service beyond what its
// /ServiceProviderConfig says: settings, not code paths. docs/connectors/scim.md
// describes each.
type Profile struct {
	Name string
	// MemberBatchSize is the most member changes sent in one group PATCH.
	MemberBatchSize int
	// PageSize is the count asked for when listing.
	PageSize int
	// Paging is PagingAuto, PagingIndex or PagingCursor.
	Paging string
	// Update is UpdateAuto, UpdatePatch or UpdatePut for attribute changes.
	Update string
	// DeactivatedNotFound: the app answers 404 for a deactivated account, so a 404 on a
	// known id means "inactive", not "gone".
	DeactivatedNotFound bool
	// TrustFilterCase: the app's eq filter ignores letter case as RFC 7643 says, so a
	// lookup that finds nothing is final. Otherwise Roster confirms a miss by listing.
	TrustFilterCase bool
	// SingleEmail: the app keeps one email per user; only the primary is sent.
	SingleEmail bool
	// RequestsPerSecond, Burst and MaxConcurrency are the default rate budget when the
	// AppConnection sets none.
	RequestsPerSecond float64
	Burst             int
	MaxConcurrency    int
	// WritesPerSecond and WriteBurst, when set, are a tighter budget for writes.
	WritesPerSecond float64
	WriteBurst      int
}

// Profiles are the built-in profiles by name.
var Profiles = map[string]Profile{
	"generic": {
		Name: "generic", MemberBatchSize: 100, PageSize: 100,
		RequestsPerSecond: 10, Burst: 10, MaxConcurrency: 4,
	},
	// Slack: 180 user writes a minute (burst 20) and 1,000 reads a minute per org,
	// shared by every SCIM app; pages of up to 1,000; DELETE only deactivates.
	"slack": {
		Name: "slack", MemberBatchSize: 100, PageSize: 1000, TrustFilterCase: true,
		RequestsPerSecond: 16, Burst: 50, MaxConcurrency: 4,
		WritesPerSecond: 3, WriteBurst: 20,
	},
	// GitHub Enterprise Managed Users: at most about 1,000 user provisionings an hour;
	// requests need a User-Agent; pages of up to 100.
	"github-emu": {
		Name: "github-emu", MemberBatchSize: 100, PageSize: 100, TrustFilterCase: true,
		RequestsPerSecond: 5, Burst: 10, MaxConcurrency: 2,
		WritesPerSecond: 0.27, WriteBurst: 20,
	},
	// Zoom: one request a second per endpoint; attribute updates by PUT, PATCH only for
	// active; filters only on userName and externalId.
	"zoom": {
		Name: "zoom", MemberBatchSize: 30, PageSize: 100, Update: UpdatePut,
		RequestsPerSecond: 1, Burst: 1, MaxConcurrency: 1,
	},
	// Atlassian: a deactivated user answers 404 until reactivated in Atlassian
	// administration; cursor paging where /ServiceProviderConfig offers it or says
	// nothing of paging; a single eq filter on userName or externalId.
	"atlassian": {
		Name: "atlassian", MemberBatchSize: 100, PageSize: 100, Paging: PagingCursor,
		DeactivatedNotFound: true, TrustFilterCase: true,
		RequestsPerSecond: 10, Burst: 10, MaxConcurrency: 4,
	},
	// AWS IAM Identity Center: at most 100 member changes per group PATCH, pages of at
	// most 50, one email per user, only eq (and and) in filters.
	"aws-identity-center": {
		Name: "aws-identity-center", MemberBatchSize: 100, PageSize: 50, SingleEmail: true, TrustFilterCase: true,
		RequestsPerSecond: 10, Burst: 10, MaxConcurrency: 4,
	},
}

// ProfileNamed returns a built-in profile.
func ProfileNamed(name string) (Profile, error) {
	if name == "" {
		name = "generic"
	}
	p, ok := Profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("no SCIM profile %q", name)
	}
	return p, nil
}
