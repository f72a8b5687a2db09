package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AppAssignmentSpec grants one app to one subject.
// +kubebuilder:validation:XValidation:rule="has(self.userRef) != has(self.roleRef)",message="set exactly one of userRef or roleRef"
// +kubebuilder:validation:XValidation:rule="has(self.userRef) == has(oldSelf.userRef) && (!has(self.userRef) || self.userRef.name == oldSelf.userRef.name) && (!has(self.roleRef) || self.roleRef.name == oldSelf.roleRef.name)",message="the subject (userRef or roleRef) cannot be changed; create a new AppAssignment"
// +kubebuilder:validation:XValidation:rule="!has(self.validFrom) || !has(self.validUntil) || self.validFrom < self.validUntil",message="validFrom must be before validUntil",fieldPath=".validFrom"
type AppAssignmentSpec struct {
	// userRef names the User who gets the app. Exactly one of userRef and roleRef is set.
	// +optional
	UserRef *LocalObjectReference `json:"userRef,omitempty"`

	// roleRef names the Role whose members get the app. Exactly one of userRef and
	// roleRef is set.
	// +optional
	RoleRef *LocalObjectReference `json:"roleRef,omitempty"`

	// app is the AppConnection (by name) the subject gets an account in. It cannot be
	// changed.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="app cannot be changed; create a new AppAssignment"
	App string `json:"app"`

	Entitlements `json:",inline"`

	// validFrom is when access starts (time-bound access). Unset means now.
	// +optional
	ValidFrom *metav1.Time `json:"validFrom,omitempty"`

	// validUntil is when access ends; the accounts are then deprovisioned per the app's
	// onRemoval policy.
	// +optional
	ValidUntil *metav1.Time `json:"validUntil,omitempty"`
}

// AssignmentFailure is one user the assignment could not be provisioned for.
type AssignmentFailure struct {
	// user is the User (object name).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	User string `json:"user"`

	// message says what went wrong.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message"`

	// lastAttemptTime is when Roster last tried.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`
}

// AppAssignmentStatus is what Roster observed about an AppAssignment.
type AppAssignmentStatus struct {
	CommonStatus `json:",inline"`

	// desired is the number of users who should hold an account through this assignment.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Desired int32 `json:"desired,omitempty"`

	// provisioned is the number of those whose account is in place.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Provisioned int32 `json:"provisioned,omitempty"`

	// failed is the number of those whose account could not be provisioned.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Failed int32 `json:"failed,omitempty"`

	// failures lists some of the failed users (at most 20) with the reason.
	// +optional
	// +listType=map
	// +listMapKey=user
	// +kubebuilder:validation:MaxItems=20
	Failures []AssignmentFailure `json:"failures,omitempty"`
}

// AppAssignment grants one app (an AppConnection) to a User or to every member of a Role.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=asgn
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.app`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.spec.*.name`
// +kubebuilder:printcolumn:name="Provisioned",type=integer,JSONPath=`.status.provisioned`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AppAssignment struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the grant.
	// +required
	Spec AppAssignmentSpec `json:"spec"`

	// status is what Roster observed.
	// +optional
	Status AppAssignmentStatus `json:"status,omitempty"`
}

// AppAssignmentList is a list of AppAssignments.
// +kubebuilder:object:root=true
type AppAssignmentList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AppAssignment `json:"items"`
}

func init() {
	register(&AppAssignment{}, &AppAssignmentList{})
}
