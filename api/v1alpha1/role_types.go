package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RoleMembers says who holds a Role. A User is a member when any of the parts matches.
// +kubebuilder:validation:XValidation:rule="has(self.users) || has(self.selector) || has(self.groups) || has(self.rule)",message="members needs at least one of users, selector, groups or rule"
type RoleMembers struct {
	// users names member Users (object names) explicitly.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1024
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Users []string `json:"users,omitempty"`

	// selector selects member Users by their labels.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`

	// groups selects Users that are in any of these directory groups (spec.groups).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Groups []string `json:"groups,omitempty"`

	// rule is a CEL expression over `user` (the User's spec fields, every one present and
	// empty when unset, and user.metadata.name, .labels and .annotations) that is true
	// for members, for example `user.department == "eng" && "oncall" in user.groups`.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Rule string `json:"rule,omitempty"`
}

// RoleGrant gives every member of the Role access to one app. Each grant becomes an
// AppAssignment owned by the Role.
type RoleGrant struct {
	// app is the AppConnection (by name) the members get an account in.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	App string `json:"app"`

	Entitlements `json:",inline"`
}

// RoleSpec declares who holds the Role and, optionally, what it grants.
type RoleSpec struct {
	// description says what the Role is for.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// members says who holds the Role.
	// +required
	Members RoleMembers `json:"members"`

	// grants are app accesses every member gets: a shorthand for AppAssignments with
	// this Role as subject, one per app.
	// +optional
	// +listType=map
	// +listMapKey=app
	// +kubebuilder:validation:MaxItems=64
	Grants []RoleGrant `json:"grants,omitempty"`

	// requestable lets people ask for the Role's grants for a time with an
	// AccessRequest, and says who approves. Unset: the Role cannot be requested.
	// +optional
	Requestable *RequestPolicy `json:"requestable,omitempty"`
}

// RoleStatus is what Roster observed about a Role.
type RoleStatus struct {
	CommonStatus `json:",inline"`

	// memberCount is the number of Users that hold the Role.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MemberCount int32 `json:"memberCount,omitempty"`
}

// Role is a set of Users, and optionally the apps they get. Use
// `kubectl get roles.identity.roster.dev` or the short name `rrole`: plain `roles` is
// Kubernetes RBAC.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=rrole
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.memberCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Role struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the Role.
	// +required
	Spec RoleSpec `json:"spec"`

	// status is what Roster observed.
	// +optional
	Status RoleStatus `json:"status,omitempty"`
}

// RoleList is a list of Roles.
// +kubebuilder:object:root=true
type RoleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Role `json:"items"`
}

func init() {
	register(&Role{}, &RoleList{})
}
