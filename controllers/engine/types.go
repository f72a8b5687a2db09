// Package engine converges one app's accounts: desired accounts (from Users, Roles and
// AppAssignments, read from the informer caches) against observed accounts (from the
// app, listed page by page and kept current by the engine's own writes), as a plan that
// is published, checked against the safety threshold and applied under the app's rate
// budget, leavers first, group membership batched per group.
package engine

import (
	"time"

	"golang.org/x/time/rate"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/mapping"
)

// Config is what an engine is told by its AppConnection. A new Config replaces the old.
type Config struct {
	// App names the AppConnection, "namespace/name".
	App string
	// Generation is the AppConnection's metadata.generation the config comes from.
	Generation int64
	Target     connectors.Target
	Mapping    *mapping.Mappings
	MatchBy    connectors.KeyKind
	OnSuspend  identityv1alpha1.SuspendAction
	OnRemoval  identityv1alpha1.RemovalAction
	// DeleteAfter deletes an account deactivated this long ago; 0 keeps it.
	DeleteAfter time.Duration
	Unmanaged   identityv1alpha1.UnmanagedAccountsPolicy
	MaxCount    *int32
	MaxPercent  *int32
	// Window is how long a deprovision counts against MaxCount and MaxPercent.
	Window time.Duration
	// Counted is what the window held before (from status), read when the engine starts.
	Counted []identityv1alpha1.DeprovisionCount
	Mode    identityv1alpha1.ConnectionMode
	Paused  bool
	// ApprovedPlan is the id of a plan blocked by the safety threshold that an admin
	// approved.
	ApprovedPlan string
	// PlanApprover is who approved it, as the API server authenticated them.
	PlanApprover string
	// ResyncRequest is the AppConnection's resync annotation; a new value lists the app
	// now.
	ResyncRequest string
	Resync        time.Duration
	// Removing: the AppConnection is being deleted; every account is released by the
	// OnRemoval policy.
	Removing bool
	Workers  int
	// ManagedGroups are the groups Roster has put members in before (from status).
	ManagedGroups []string
	// UserEvents is the budget for Events about single Users that the engines of a
	// namespace share (NewUserEventBudget), so that a bulk change costs the API server
	// the same however many apps it reaches; nil gives the engine a budget of its own.
	// It is read when the engine starts.
	UserEvents *rate.Limiter
}

// Subject is one User as the engine needs it, read from the informer caches.
type Subject struct {
	User *identityv1alpha1.User
	// Active: the User's lifecycle allows accounts now (state Active, inside
	// activeFrom/activeUntil).
	Active bool
	// Deleting: the User is being deleted.
	Deleting bool
	// Assigned: some live AppAssignment gives the User this app.
	Assigned bool
	// Groups, AppRole and License are the union of those assignments' entitlements.
	Groups  []string
	AppRole string
	License string
	// NextChange is the next time the answers above may change by the clock alone
	// (activeFrom, activeUntil, validFrom, validUntil); zero if none.
	NextChange time.Time
	// Duplicate: another, older User in the namespace has the same userName; this one
	// is not provisioned.
	Duplicate bool
	// AssignmentUnknown: whether the User is assigned cannot be told (a Role's rule does not
	// compile); its account is left as it is.
	AssignmentUnknown bool
	// Manager is the manager User's name and userName, if any.
	Manager, ManagerUserName string
	// Recorded is what the User's status says of its account in this app, from before.
	Recorded *identityv1alpha1.UserAccount
}

// Subjects reads the Users of the engine's namespace.
type Subjects interface {
	// Names lists every User.
	Names() []string
	// Subject reads one User; false if it does not exist.
	Subject(name string) (Subject, bool)
	// Reports lists the Users whose manager is name.
	Reports(name string) []string
}

// Notifier hears of changes the controllers publish as status.
type Notifier interface {
	// UsersChanged: these Users' account in the app changed state.
	UsersChanged(app string, users []string)
	// AppChanged: the engine's Snapshot changed.
	AppChanged(app string)
}

// AccountStatus is one User's account in the app, for the User's status.
type AccountStatus struct {
	State              identityv1alpha1.AccountState
	ExternalID         string
	LastSyncTime       time.Time
	LastTransitionTime time.Time
	Message            string
	// LastLogin is when the person last signed in to the app, where the app tells.
	LastLogin time.Time
}

// Health is how the engine's connection to the app stands.
type Health string

const (
	HealthConnecting Health = "Connecting"
	HealthSyncing    Health = "Syncing"
	HealthReady      Health = "Ready"
	HealthFailing    Health = "Failing"
)

// Snapshot is the engine's state for the AppConnection's status.
type Snapshot struct {
	Generation   int64
	Health       Health
	Err          error // the last error talking to the app, when Health is Failing
	Capabilities connectors.Capabilities
	Managed      int
	Pending      int
	Failed       int
	// RateLimited counts the failed accounts whose last write the app answered with a
	// request to slow down; FailureSample is up to 3 failures, "user: error".
	RateLimited   int
	FailureSample []string
	Unmanaged     int
	// UnmanagedSample lists up to 50 unmanaged accounts by userName.
	UnmanagedSample []string
	LastFullSync    time.Time
	Plan            PlanSummary
	// Blocked is set while deprovisions wait for approval; BlockedMessage explains it.
	Blocked        bool
	BlockedMessage string
	// Converging: the engine has work it has not finished.
	Converging bool
	// Released: every account the engine managed is released (for a deleted
	// AppConnection): none active and linked, nothing pending.
	Released         bool
	ManagedGroups    []string
	QuarantinedUntil time.Time
	// RecentDeprovisions counts the deprovisions sent within the safety window.
	RecentDeprovisions []identityv1alpha1.DeprovisionCount
}

// PlanSummary counts the changes the engine has planned and not yet applied.
type PlanSummary struct {
	ID            string
	Creates       int
	Updates       int
	Deactivations int
	Deletions     int
	GroupChanges  int
	Sample        []string
}

// Deprovisions counts the plan's deactivations and deletions.
func (p PlanSummary) Deprovisions() int { return p.Deactivations + p.Deletions }

// Empty reports whether the plan changes nothing.
func (p PlanSummary) Empty() bool {
	return p.Creates+p.Updates+p.Deactivations+p.Deletions+p.GroupChanges == 0
}
