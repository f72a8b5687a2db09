package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UserState is the state an admin declares for a person.
// +kubebuilder:validation:Enum=Active;Suspended
type UserState string

const (
	// UserStateActive: the person should have their accounts.
	UserStateActive UserState = "Active"
	// UserStateSuspended: the kill switch. Every account is deprovisioned at once, per
	// each app's onSuspend policy.
	UserStateSuspended UserState = "Suspended"
)

// UserPhase summarises where a User is in its lifecycle.
// +kubebuilder:validation:Enum=Pending;Active;Suspended;Expired;Deprovisioning
type UserPhase string

const (
	// UserPhasePending: activeFrom is still in the future.
	UserPhasePending UserPhase = "Pending"
	// UserPhaseActive: the person has (or is getting) their accounts.
	UserPhaseActive UserPhase = "Active"
	// UserPhaseSuspended: state is Suspended; accounts are deprovisioned.
	UserPhaseSuspended UserPhase = "Suspended"
	// UserPhaseExpired: activeUntil has passed; accounts are deprovisioned.
	UserPhaseExpired UserPhase = "Expired"
	// UserPhaseDeprovisioning: the User is being deleted; its accounts go first.
	UserPhaseDeprovisioning UserPhase = "Deprovisioning"
)

// EmailType tells what an address is for.
// +kubebuilder:validation:Enum=work;home;other
type EmailType string

// Email is one of a person's addresses.
type Email struct {
	// value is the address.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=320
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^@[:space:]]+@[^@[:space:]]+$')",message="must be an email address such as ada@example.com"
	Value string `json:"value"`

	// type tells what the address is for: work, home or other.
	// +optional
	// +kubebuilder:default=work
	Type EmailType `json:"type,omitempty"`

	// primary marks the address apps should use first. At most one address is primary.
	// +optional
	Primary bool `json:"primary,omitempty"`
}

// PersonName is a person's name in parts, as SCIM carries it.
type PersonName struct {
	// givenName is the first name.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	GivenName string `json:"givenName,omitempty"`

	// middleName is the middle name or names.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	MiddleName string `json:"middleName,omitempty"`

	// familyName is the last name.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	FamilyName string `json:"familyName,omitempty"`
}

// UserSpec declares one person.
// +kubebuilder:validation:XValidation:rule="!has(self.activeFrom) || !has(self.activeUntil) || self.activeFrom < self.activeUntil",message="activeFrom must be before activeUntil",fieldPath=".activeFrom"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.externalID) || (has(self.externalID) && self.externalID == oldSelf.externalID)",message="externalID cannot be changed or removed once set",fieldPath=".externalID"
// +kubebuilder:validation:XValidation:rule="!has(self.emails) || self.emails.filter(e, has(e.primary) && e.primary).size() <= 1",message="at most one email can be primary",fieldPath=".emails"
type UserSpec struct {
	// userName is the person's login, the key apps match accounts by. It is unique per
	// namespace, compared case-insensitively. It may change (a rename becomes an update
	// in every app, which Roster links by the account id it recorded).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self == '' || self.matches('^[^[:space:]]+$')",message="userName must not contain whitespace"
	UserName string `json:"userName"`

	// externalID is the person's id in the source of truth (an HR employee number, a
	// directory objectGUID). It is set once and never changes.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ExternalID string `json:"externalID,omitempty"`

	// name is the person's name in parts.
	// +optional
	Name *PersonName `json:"name,omitempty"`

	// displayName is the name shown in apps; apps compose one from name when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// emails are the person's addresses.
	// +optional
	// +listType=map
	// +listMapKey=value
	// +kubebuilder:validation:MaxItems=16
	Emails []Email `json:"emails,omitempty"`

	// title is the job title.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Title string `json:"title,omitempty"`

	// department the person works in.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Department string `json:"department,omitempty"`

	// location is the office or region the person works from.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Location string `json:"location,omitempty"`

	// employeeType is the kind of employment, for example "Employee" or "Contractor".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	EmployeeType string `json:"employeeType,omitempty"`

	// manager is the User who manages this person.
	// +optional
	Manager *LocalObjectReference `json:"manager,omitempty"`

	// groups are the person's directory groups (for example from the identity
	// provider); Roles can select members by them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Groups []string `json:"groups,omitempty"`

	// attributes are custom attributes, available to attribute mappings and Role rules
	// as user.attributes.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 128 && self[k].size() <= 1024)",message="attribute names are at most 128 characters and values at most 1024"
	Attributes map[string]string `json:"attributes,omitempty"`

	// state is the kill switch: Suspended deprovisions every account at once, per each
	// app's onSuspend policy; Active restores them.
	// +optional
	// +kubebuilder:default=Active
	State UserState `json:"state,omitempty"`

	// activeFrom is when the person's accounts are created (scheduled onboarding).
	// Until then the User is Pending.
	// +optional
	ActiveFrom *metav1.Time `json:"activeFrom,omitempty"`

	// activeUntil is when the person's accounts are deprovisioned (contract end).
	// After it the User is Expired.
	// +optional
	ActiveUntil *metav1.Time `json:"activeUntil,omitempty"`
}

// AccountState is the state of one account in one app.
// +kubebuilder:validation:Enum=Pending;Active;Deactivated;Deleted;Failed
type AccountState string

const (
	// AccountStatePending: the account is planned but not written yet.
	AccountStatePending AccountState = "Pending"
	// AccountStateActive: the account exists and is active.
	AccountStateActive AccountState = "Active"
	// AccountStateDeactivated: the account exists and is deactivated.
	AccountStateDeactivated AccountState = "Deactivated"
	// AccountStateDeleted: the account was deleted.
	AccountStateDeleted AccountState = "Deleted"
	// AccountStateFailed: the last write failed; message says why.
	AccountStateFailed AccountState = "Failed"
)

// UserAccount is the person's account in one app.
type UserAccount struct {
	// app is the AppConnection the account lives in.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	App string `json:"app"`

	// state of the account.
	// +required
	State AccountState `json:"state"`

	// externalID is the id the app assigned to the account.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ExternalID string `json:"externalID,omitempty"`

	// lastSyncTime is when Roster last changed the account, or first found it as declared.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// lastTransitionTime is when the account entered its state; deleteAfter counts from
	// the time it was deactivated.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`

	// lastLoginTime is when the person last signed in to the app, where the app tells
	// (Google Workspace): what a review of unused accounts reads.
	// +optional
	LastLoginTime *metav1.Time `json:"lastLoginTime,omitempty"`

	// message explains a Failed state.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// UserStatus is what Roster observed about a User.
type UserStatus struct {
	CommonStatus `json:",inline"`

	// phase is where the User is in its lifecycle.
	// +optional
	Phase UserPhase `json:"phase,omitempty"`

	// accounts lists the person's account in each app.
	// +optional
	// +listType=map
	// +listMapKey=app
	// +kubebuilder:validation:MaxItems=256
	Accounts []UserAccount `json:"accounts,omitempty"`
}

// User is one person whose accounts Roster manages.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=ruser
// +kubebuilder:printcolumn:name="Username",type=string,JSONPath=`.spec.userName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Department",type=string,JSONPath=`.spec.department`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(self.spec.manager) || self.spec.manager.name != self.metadata.name",message="a user cannot be their own manager",fieldPath=".spec.manager.name"
type User struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the person.
	// +required
	Spec UserSpec `json:"spec"`

	// status is what Roster observed.
	// +optional
	Status UserStatus `json:"status,omitempty"`
}

// UserList is a list of Users.
// +kubebuilder:object:root=true
type UserList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []User `json:"items"`
}

func init() {
	register(&User{}, &UserList{})
}
