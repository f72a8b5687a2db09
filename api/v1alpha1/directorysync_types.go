package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LDAPIncrementalMode is how an LDAP source catches changes between full syncs.
// +kubebuilder:validation:Enum=Auto;SyncRepl;DirSync;ModifyTimestamp;None
type LDAPIncrementalMode string

const (
	// IncrementalAuto picks SyncRepl, DirSync or ModifyTimestamp by what the server offers.
	IncrementalAuto LDAPIncrementalMode = "Auto"
	// IncrementalSyncRepl follows RFC 4533 refreshAndPersist.
	IncrementalSyncRepl LDAPIncrementalMode = "SyncRepl"
	// IncrementalDirSync uses Active Directory's DirSync control.
	IncrementalDirSync LDAPIncrementalMode = "DirSync"
	// IncrementalModifyTimestamp polls for entries changed since the last look.
	IncrementalModifyTimestamp LDAPIncrementalMode = "ModifyTimestamp"
	// IncrementalNone reads only at full syncs.
	IncrementalNone LDAPIncrementalMode = "None"
)

// GoogleWorkspaceSource reads the users and groups of a Google Workspace (or Cloud
// Identity) account through the Admin SDK Directory API, as a service account with
// domain-wide delegation acting for an admin (scopes admin.directory.user.readonly and
// admin.directory.group.readonly; with admin.reports.audit.readonly as well, changes
// are followed every 30 seconds between full syncs through the Reports API).
type GoogleWorkspaceSource struct {
	GoogleServiceAccount `json:",inline"`

	// domain limits the read to the users and groups of one of the account's domains;
	// unset reads the whole account.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$`
	Domain string `json:"domain,omitempty"`
}

// MicrosoftGraphSource reads the users and groups of a Microsoft Entra ID tenant through
// Microsoft Graph's delta queries, with the application permission Directory.Read.All
// (or User.Read.All and GroupMember.Read.All): a full read, then every 30 seconds only
// what changed since.
type MicrosoftGraphSource struct {
	MicrosoftGraphApp `json:",inline"`
}

// LDAPSource reads people and groups from OpenLDAP or Active Directory.
type LDAPSource struct {
	LDAPConnection `json:",inline"`

	// flavor picks defaults for filters and attribute names: OpenLDAP (uid,
	// inetOrgPerson, groupOfNames) or ActiveDirectory (sAMAccountName, user, group,
	// userAccountControl, memberOf).
	// +optional
	// +kubebuilder:default=OpenLDAP
	Flavor LDAPFlavor `json:"flavor,omitempty"`

	// baseDN is where the search starts, for example dc=example,dc=com.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BaseDN string `json:"baseDN"`

	// userFilter selects user entries; unset uses the flavor's default.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('(') && self.endsWith(')')",message="userFilter must be an LDAP filter in parentheses, such as (objectClass=inetOrgPerson)"
	UserFilter string `json:"userFilter,omitempty"`

	// groupFilter selects group entries; unset uses the flavor's default.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('(') && self.endsWith(')')",message="groupFilter must be an LDAP filter in parentheses, such as (objectClass=groupOfNames)"
	GroupFilter string `json:"groupFilter,omitempty"`

	// pageSize is the number of entries asked for per page (RFC 2696 paged search).
	// +optional
	// +kubebuilder:default=500
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	PageSize int32 `json:"pageSize,omitempty"`

	// attributes names the directory attributes Roster reads; unset ones take the
	// flavor's defaults.
	// +optional
	Attributes *LDAPAttributes `json:"attributes,omitempty"`

	// incremental is how changes are caught between full syncs: Auto picks SyncRepl
	// (RFC 4533) where the server offers it, DirSync on Active Directory, and
	// ModifyTimestamp polling otherwise.
	// +optional
	// +kubebuilder:default=Auto
	Incremental LDAPIncrementalMode `json:"incremental,omitempty"`
}

// LDAPAttributes names the directory attributes Roster reads. Every attribute of an entry
// is also available to the mapping as record.<name>.
type LDAPAttributes struct {
	// id is the immutable id of an entry: entryUUID (OpenLDAP) or objectGUID (Active
	// Directory). User object names derive from it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id,omitempty"`

	// userName is the login: uid (OpenLDAP) or sAMAccountName (Active Directory).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	UserName string `json:"userName,omitempty"`

	// groupName is a group's name: cn.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	GroupName string `json:"groupName,omitempty"`

	// groupMember lists a group's members by DN: member (groupOfNames, Active
	// Directory) or uniqueMember (groupOfUniqueNames).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	GroupMember string `json:"groupMember,omitempty"`
}

// SCIMSource serves a SCIM 2.0 endpoint that an identity provider (Okta, Entra ID,
// OneLogin) pushes users and groups to. The endpoint's URL is in status.endpoint.
type SCIMSource struct {
	// tokenSecretRef names the Secret key holding the bearer token the identity provider
	// must send.
	// +required
	TokenSecretRef SecretKeySelector `json:"tokenSecretRef"`
}

// HRISFormat is the format of an HR export.
// +kubebuilder:validation:Enum=CSV;JSON
type HRISFormat string

// HRISSource reads people from an HR system's export, CSV or JSON, over HTTPS or from a
// ConfigMap or Secret.
// +kubebuilder:validation:XValidation:rule="[has(self.url), has(self.configMapRef), has(self.secretRef)].filter(x, x).size() == 1",message="set exactly one of url, configMapRef or secretRef"
type HRISSource struct {
	// format of the export: CSV (a header row, then one person per row) or JSON (an
	// array of objects).
	// +required
	Format HRISFormat `json:"format"`

	// url serves the export.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https']",message="url must be an http or https URL"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[^:/?#]+://[^/?#]*@')",message="url must not carry a user name or password: put credentials in a Secret"
	URL string `json:"url,omitempty"`

	// headers are sent with the request to url (for example an API key from a Secret).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`

	// configMapRef names the ConfigMap key holding the export.
	// +optional
	ConfigMapRef *ConfigMapKeySelector `json:"configMapRef,omitempty"`

	// idField is the field holding each person's immutable id (an employee number);
	// User names derive from it.
	// +optional
	// +kubebuilder:default=id
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	IDField string `json:"idField,omitempty"`

	// secretRef names the Secret key holding the export, for exports that are sensitive.
	// +optional
	SecretRef *SecretKeySelector `json:"secretRef,omitempty"`

	// tls adjusts certificate verification for url.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`
}

// VanishedUserAction is what happens to a User whose record vanishes from the source or
// is disabled there.
// +kubebuilder:validation:Enum=Suspend;Delete
type VanishedUserAction string

const (
	// VanishedSuspend suspends the User at once and keeps it (deleteAfter may delete it
	// later).
	VanishedSuspend VanishedUserAction = "Suspend"
	// VanishedDelete deletes the User at once.
	VanishedDelete VanishedUserAction = "Delete"
)

// VanishedUsersPolicy is what happens to Users whose record vanishes from the source or
// is disabled there.
type VanishedUsersPolicy struct {
	// action is Suspend (at once; the User is kept) or Delete (at once).
	// +optional
	// +kubebuilder:default=Suspend
	Action VanishedUserAction `json:"action,omitempty"`

	// deleteAfter deletes a suspended User once its record has been gone this long.
	// Unset keeps suspended Users.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s') && duration(self) <= duration('87600h')",message="deleteAfter must be a duration from 1s to 87600h (10 years), such as 720h"
	DeleteAfter *metav1.Duration `json:"deleteAfter,omitempty"`
}

// DeletionPolicy is what happens to a DirectorySync's Users when it is deleted.
// +kubebuilder:validation:Enum=Orphan;Delete
type DeletionPolicy string

const (
	// DeletionOrphan keeps the Users and releases them from the DirectorySync.
	DeletionOrphan DeletionPolicy = "Orphan"
	// DeletionDelete deletes the Users, within the safety threshold.
	DeletionDelete DeletionPolicy = "Delete"
)

// GroupRoleMirror makes one Role per directory group.
type GroupRoleMirror struct {
	// namePrefix starts the name of every mirrored Role.
	// +optional
	// +kubebuilder:default="group-"
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([a-z0-9][-a-z0-9]*)?$`
	NamePrefix string `json:"namePrefix,omitempty"`
}

// DirectorySyncSpec declares one source of truth for people.
// +kubebuilder:validation:XValidation:rule="[has(self.ldap), has(self.scim), has(self.hris), has(self.googleWorkspace), has(self.microsoftGraph)].filter(x, x).size() == 1",message="set exactly one source: ldap, scim, hris, googleWorkspace or microsoftGraph"
// +kubebuilder:validation:XValidation:rule="has(self.ldap) == has(oldSelf.ldap) && has(self.scim) == has(oldSelf.scim) && has(self.hris) == has(oldSelf.hris) && has(self.googleWorkspace) == has(oldSelf.googleWorkspace) && has(self.microsoftGraph) == has(oldSelf.microsoftGraph)",message="the source cannot be changed; create a new DirectorySync"
type DirectorySyncSpec struct {
	// ldap reads from OpenLDAP or Active Directory.
	// +optional
	LDAP *LDAPSource `json:"ldap,omitempty"`

	// scim serves an endpoint identity providers push to.
	// +optional
	SCIM *SCIMSource `json:"scim,omitempty"`

	// hris reads an HR system's export.
	// +optional
	HRIS *HRISSource `json:"hris,omitempty"`

	// googleWorkspace reads a Google Workspace account's users and groups.
	// +optional
	GoogleWorkspace *GoogleWorkspaceSource `json:"googleWorkspace,omitempty"`

	// microsoftGraph reads a Microsoft Entra ID tenant's users and groups.
	// +optional
	MicrosoftGraph *MicrosoftGraphSource `json:"microsoftGraph,omitempty"`

	// mapping sets User fields and labels from each source record with CEL expressions
	// over `record`; it adds to and overrides the source's defaults. Targets are User
	// spec fields ("userName", "department", "name.givenName", "externalID"),
	// "labels.<key>" and "attributes.<key>".
	// +optional
	// +listType=map
	// +listMapKey=target
	// +kubebuilder:validation:MaxItems=64
	Mapping []ExpressionMapping `json:"mapping,omitempty"`

	// filter is a CEL expression over `record`; only records for which it is true
	// become Users.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`

	// interval is how often the whole source is read; sources that report changes are
	// followed between full syncs.
	// +optional
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="interval must be a duration from 1m to 168h, such as 15m"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// vanishedUsers is what happens to Users whose record vanishes from the source or is
	// disabled there.
	// +optional
	// +kubebuilder:default={}
	VanishedUsers VanishedUsersPolicy `json:"vanishedUsers,omitempty"`

	// safetyThreshold stops a sync that would suspend or delete more than this many Users
	// until an admin approves it. A full sync that finds no record at all while Users
	// exist (an outage, a filter that matches nobody) is stopped whatever the threshold.
	// +optional
	// +kubebuilder:default={maxCount: 25}
	SafetyThreshold *SafetyThreshold `json:"safetyThreshold,omitempty"`

	// deletionPolicy is what happens to this DirectorySync's Users when it is deleted:
	// Orphan keeps them (no longer owned by any DirectorySync); Delete deletes them,
	// within the safety threshold (beyond it the DirectorySync waits, Stalled, for
	// approval).
	// +optional
	// +kubebuilder:default=Orphan
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// mirrorGroupsAsRoles makes, when set, one Role per directory group, so that an
	// AppAssignment can target everyone in that group.
	// +optional
	MirrorGroupsAsRoles *GroupRoleMirror `json:"mirrorGroupsAsRoles,omitempty"`
}

// SyncCounts count what the last sync did.
type SyncCounts struct {
	// seen is the number of records the source returned.
	// +optional
	Seen int32 `json:"seen,omitempty"`
	// created is the number of Users created.
	// +optional
	Created int32 `json:"created,omitempty"`
	// updated is the number of Users changed.
	// +optional
	Updated int32 `json:"updated,omitempty"`
	// suspended is the number of Users suspended.
	// +optional
	Suspended int32 `json:"suspended,omitempty"`
	// deleted is the number of Users deleted.
	// +optional
	Deleted int32 `json:"deleted,omitempty"`
	// skipped is the number of records not turned into Users; skippedReasons says why.
	// +optional
	Skipped int32 `json:"skipped,omitempty"`
	// expandedGroups is the number of group memberships added by expanding nested groups.
	// +optional
	ExpandedGroups int32 `json:"expandedGroups,omitempty"`
}

// SkipReason counts records skipped for one reason.
type SkipReason struct {
	// reason records were skipped for, for example "MissingUserName".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Reason string `json:"reason"`
	// count of records skipped for it.
	// +required
	Count int32 `json:"count"`
	// example is one record's id, to look it up at the source.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Example string `json:"example,omitempty"`
}

// RecordProblem is a source record Roster could not take as it is: data for the people
// who keep the source to fix.
type RecordProblem struct {
	// reason names the problem: MissingUserName, InvalidUserName, MappingError,
	// Rejected, UnknownManager, DuplicateUserName or NameCollision.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`
	// record is the record's id at the source.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Record string `json:"record"`
	// message says what is wrong with it.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
}

// DirectorySyncStatus is what Roster observed about a DirectorySync.
type DirectorySyncStatus struct {
	CommonStatus `json:",inline"`

	// source is the kind of source in use (ldap, scim, hris).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Source string `json:"source,omitempty"`

	// endpoint is the URL path identity providers push to, for a scim source.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint,omitempty"`

	// lastSyncTime is when the last full sync finished, as of the last change to this
	// status: a full sync that finds nothing to change writes nothing, so the
	// roster_directory_last_sync_timestamp_seconds metric is the one that is always
	// current.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// lastSyncDuration is how long it took.
	// +optional
	LastSyncDuration *metav1.Duration `json:"lastSyncDuration,omitempty"`

	// counts are what the last sync did.
	// +optional
	Counts SyncCounts `json:"counts,omitempty"`

	// skippedReasons says why records were skipped.
	// +optional
	// +listType=map
	// +listMapKey=reason
	// +kubebuilder:validation:MaxItems=16
	SkippedReasons []SkipReason `json:"skippedReasons,omitempty"`

	// users is the number of Users this DirectorySync owns.
	// +optional
	Users int32 `json:"users,omitempty"`

	// problems lists source records Roster could not take as they are (at most 50,
	// by reason and record id); problemCount counts them all.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	Problems []RecordProblem `json:"problems,omitempty"`

	// problemCount is how many source records have a problem.
	// +optional
	ProblemCount int32 `json:"problemCount,omitempty"`

	// heldSuspensions lists Users a person suspended that the source still has as
	// active: the suspension wins until a person sets the User Active again.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	HeldSuspensions []string `json:"heldSuspensions,omitempty"`

	// recentDeprovisions counts the suspensions and deletions of Users made within the safety threshold's
	// window, in slices, so that the threshold holds across restarts of Roster.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	RecentDeprovisions []DeprovisionCount `json:"recentDeprovisions,omitempty"`
}

// DirectorySync mirrors a source of truth (a directory, an identity provider, an HR
// system) into Users, and optionally Roles per directory group.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=dsync
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.status.source`
// +kubebuilder:printcolumn:name="Users",type=integer,JSONPath=`.status.users`
// +kubebuilder:printcolumn:name="Last Sync",type=date,JSONPath=`.status.lastSyncTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DirectorySync struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the source.
	// +required
	Spec DirectorySyncSpec `json:"spec"`

	// status is what Roster observed.
	// +optional
	Status DirectorySyncStatus `json:"status,omitempty"`
}

// DirectorySyncList is a list of DirectorySyncs.
// +kubebuilder:object:root=true
type DirectorySyncList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DirectorySync `json:"items"`
}

func init() {
	register(&DirectorySync{}, &DirectorySyncList{})
}

// SourceName is the name of the source block that is set ("ldap", "scim", "hris",
// "googleWorkspace", "microsoftGraph"), or "" when none is.
func (s *DirectorySyncSpec) SourceName() string {
	switch {
	case s.LDAP != nil:
		return "ldap"
	case s.SCIM != nil:
		return "scim"
	case s.HRIS != nil:
		return "hris"
	case s.GoogleWorkspace != nil:
		return "googleWorkspace"
	case s.MicrosoftGraph != nil:
		return "microsoftGraph"
	}
	return ""
}
