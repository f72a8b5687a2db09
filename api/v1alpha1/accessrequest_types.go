package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManagerApproval says whether the requesting person's manager is among the approvers.
// +kubebuilder:validation:Enum=Approves;None
type ManagerApproval string

const (
	// ManagerApproves: the manager of the User the access is for (spec.manager) may approve.
	ManagerApproves ManagerApproval = "Approves"
	// ManagerNone: the manager approves only when named otherwise.
	ManagerNone ManagerApproval = "None"
)

// RequestApprovers say who may approve a request. A person is matched to their
// Kubernetes identity by the User's userName (with the operator's identity prefix).
type RequestApprovers struct {
	// manager is Approves (the default) when the manager of the User the access is for
	// may approve, or None.
	// +optional
	// +kubebuilder:default=Approves
	Manager ManagerApproval `json:"manager,omitempty"`

	// users names Users (object names) who may approve.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Users []string `json:"users,omitempty"`

	// roles names Roles whose members may approve.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Roles []string `json:"roles,omitempty"`
}

// RequestPolicy says that an app or a Role may be requested, by whom it is approved and
// for how long at most.
type RequestPolicy struct {
	// approvers may approve, deny and revoke requests. Nobody approves a request they
	// made or one for themselves.
	// +optional
	// +kubebuilder:default={}
	Approvers RequestApprovers `json:"approvers,omitempty"`

	// approvals is how many different approvers must approve. A single denial denies.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	Approvals int32 `json:"approvals,omitempty"`

	// maxDuration is the longest access a request may ask for.
	// +optional
	// +kubebuilder:default="168h"
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m') && duration(self) <= duration('8760h')",message="maxDuration must be a duration from 1m to 8760h, such as 72h"
	MaxDuration *metav1.Duration `json:"maxDuration,omitempty"`

	// autoApprove is a CEL expression over `user` (the User the access is for, as in
	// Role rules) and `request` (app, role, groups, appRole, license, duration as a CEL
	// duration, requester, justification) that, when true, approves a request without a
	// person, for example `request.duration <= duration("24h") && user.department == "eng"`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	AutoApprove string `json:"autoApprove,omitempty"`
}

// AppRequestPolicy is an app's RequestPolicy with what of the app may be asked for.
type AppRequestPolicy struct {
	RequestPolicy `json:",inline"`

	// groups are the app groups a request may ask for; a request for any other is
	// denied. Unset: the account alone, no groups.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Groups []string `json:"groups,omitempty"`

	// appRoles are the app roles a request may ask for.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	AppRoles []string `json:"appRoles,omitempty"`

	// licenses are the licenses a request may ask for.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Licenses []string `json:"licenses,omitempty"`
}

// Decision is what an approver, or the requester, says about a request.
// +kubebuilder:validation:Enum=Approve;Deny;Revoke;Withdraw
type Decision string

const (
	// DecisionApprove counts towards the approvals the policy asks for.
	DecisionApprove Decision = "Approve"
	// DecisionDeny denies a pending request.
	DecisionDeny Decision = "Deny"
	// DecisionRevoke ends granted access early.
	DecisionRevoke Decision = "Revoke"
	// DecisionWithdraw is the requester taking the request back, granted or not.
	DecisionWithdraw Decision = "Withdraw"
)

// AccessDecision is one decision added to a request. The access-requests admission
// policy lets a person add only decisions under their own Kubernetes user name, and
// Approve, Deny and Revoke only with the approve verb on accessrequests/approval.
type AccessDecision struct {
	// by is the Kubernetes user name of the person deciding: their own, as
	// `kubectl auth whoami` prints it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	By string `json:"by"`

	// decision is Approve, Deny, Revoke or Withdraw.
	// +required
	Decision Decision `json:"decision"`

	// comment says why.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Comment string `json:"comment,omitempty"`
}

// AccessRequestSpec asks for an app, or a Role, for one User for a bounded time. Only
// decisions may be added once it exists.
// +kubebuilder:validation:XValidation:rule="has(self.app) != has(self.roleRef)",message="set exactly one of app or roleRef"
// +kubebuilder:validation:XValidation:rule="has(self.app) || !(has(self.groups) || has(self.appRole) || has(self.license))",message="groups, appRole and license are requested with app; a Role's grants come with the Role"
// +kubebuilder:validation:XValidation:rule="self.userRef == oldSelf.userRef && self.requester == oldSelf.requester && self.duration == oldSelf.duration && self.justification == oldSelf.justification && has(self.app) == has(oldSelf.app) && (!has(self.app) || self.app == oldSelf.app) && has(self.roleRef) == has(oldSelf.roleRef) && (!has(self.roleRef) || self.roleRef == oldSelf.roleRef) && has(self.groups) == has(oldSelf.groups) && (!has(self.groups) || self.groups == oldSelf.groups) && has(self.appRole) == has(oldSelf.appRole) && (!has(self.appRole) || self.appRole == oldSelf.appRole) && has(self.license) == has(oldSelf.license) && (!has(self.license) || self.license == oldSelf.license)",message="a request cannot be changed once made, only decided on; make a new one"
type AccessRequestSpec struct {
	// userRef names the User the access is for.
	// +required
	UserRef LocalObjectReference `json:"userRef"`

	// requester is the Kubernetes user name of the person asking, their own: the
	// access-requests admission policy refuses any other.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Requester string `json:"requester"`

	// app is the AppConnection (by name) asked for, with the entitlements below. Exactly
	// one of app and roleRef is set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	App string `json:"app,omitempty"`

	// roleRef names a Role asked for: its grants, for the duration.
	// +optional
	RoleRef *LocalObjectReference `json:"roleRef,omitempty"`

	Entitlements `json:",inline"`

	// duration is how long the access lasts once approved, at most the policy's
	// maxDuration.
	// +required
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s')",message="duration must be a positive duration such as 8h"
	Duration metav1.Duration `json:"duration"`

	// justification says why the access is needed.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Justification string `json:"justification"`

	// decisions are added, one per person and step, by approvers (Approve, Deny,
	// Revoke) and the requester (Withdraw). They are never changed or removed.
	// +optional
	// +listType=atomic
	// +kubebuilder:default={}
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="oldSelf.all(d, d in self)",message="decisions are only added, never changed or removed"
	Decisions []AccessDecision `json:"decisions,omitempty"`
}

// AccessRequestPhase is where a request is in its life.
// +kubebuilder:validation:Enum=Pending;Approved;Active;Denied;Expired;Revoked;Withdrawn
type AccessRequestPhase string

const (
	// AccessRequestPending waits for approvals.
	AccessRequestPending AccessRequestPhase = "Pending"
	// AccessRequestApproved is approved; the access is being granted.
	AccessRequestApproved AccessRequestPhase = "Approved"
	// AccessRequestActive has its access in place until expiresAt.
	AccessRequestActive AccessRequestPhase = "Active"
	// AccessRequestDenied was denied, by an approver or by the policy.
	AccessRequestDenied AccessRequestPhase = "Denied"
	// AccessRequestExpired reached the end of its duration; the access was removed.
	AccessRequestExpired AccessRequestPhase = "Expired"
	// AccessRequestRevoked was ended early by an approver; the access was removed.
	AccessRequestRevoked AccessRequestPhase = "Revoked"
	// AccessRequestWithdrawn was taken back by the requester.
	AccessRequestWithdrawn AccessRequestPhase = "Withdrawn"
)

// RecordedDecision is a decision as Roster took it, with when.
type RecordedDecision struct {
	// by is who decided: the Kubernetes user name the API server authenticated, or
	// `requestable.autoApprove` for the policy's rule.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	By string `json:"by"`

	// decision is Approve, Deny, Revoke or Withdraw.
	// +required
	Decision Decision `json:"decision"`

	// time is when Roster took the decision into account.
	// +required
	Time metav1.Time `json:"time"`

	// comment is the decider's comment, or why Roster did not count the decision.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Comment string `json:"comment,omitempty"`
}

// AccessRequestStatus is what Roster made of a request.
type AccessRequestStatus struct {
	CommonStatus `json:",inline"`

	// phase is Pending, Approved, Active, Denied, Expired, Revoked or Withdrawn.
	// +optional
	Phase AccessRequestPhase `json:"phase,omitempty"`

	// userName is the userName of the User the access is for: their Kubernetes
	// identity, who may not approve.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	UserName string `json:"userName,omitempty"`

	// approvers are the Kubernetes user names that may approve, per the policy (at
	// most 64 listed). Namespace admins granted the approve verb may too.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	Approvers []string `json:"approvers,omitempty"`

	// approvals is the count of approvals against the count needed, as "1/2".
	// +optional
	// +kubebuilder:validation:MaxLength=16
	Approvals string `json:"approvals,omitempty"`

	// decisions are the decisions Roster took into account, with when.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=33
	Decisions []RecordedDecision `json:"decisions,omitempty"`

	// assignments are the time-bound AppAssignments the request owns.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Assignments []string `json:"assignments,omitempty"`

	// approvedTime is when the request was approved.
	// +optional
	ApprovedTime *metav1.Time `json:"approvedTime,omitempty"`

	// expiryTime is when the access ends.
	// +optional
	ExpiryTime *metav1.Time `json:"expiryTime,omitempty"`

	// endTime is when the request ended (denied, expired, revoked or withdrawn); it is
	// deleted the operator's retention period later.
	// +optional
	EndTime *metav1.Time `json:"endTime,omitempty"`
}

// AccessRequest asks for an app, or a Role, for one User for a bounded time. Approvers
// named by the app's or Role's requestable policy approve it; Roster then grants the
// access with an AppAssignment the request owns and removes it when the time is up.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=areq
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.spec.userRef.name`
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.app`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.roleRef.name`,priority=1
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Approvals",type=string,JSONPath=`.status.approvals`
// +kubebuilder:printcolumn:name="Expires",type=date,JSONPath=`.status.expiryTime`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the request and the decisions on it.
	// +required
	Spec AccessRequestSpec `json:"spec"`

	// status is what Roster made of it.
	// +optional
	Status AccessRequestStatus `json:"status,omitempty"`
}

// AccessRequestList is a list of AccessRequests.
// +kubebuilder:object:root=true
type AccessRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessRequest `json:"items"`
}

func init() {
	register(&AccessRequest{}, &AccessRequestList{})
}
