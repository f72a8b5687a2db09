package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PreviewAction is what a previewed change does to one User.
// +kubebuilder:validation:Enum=Create;Update;Suspend;Delete;Skip
type PreviewAction string

const (
	// PreviewCreate: the change makes a User for a record that has none.
	PreviewCreate PreviewAction = "Create"
	// PreviewUpdate: the change alters a User's fields or labels.
	PreviewUpdate PreviewAction = "Update"
	// PreviewSuspend: the change's filter leaves the User's record out, and the
	// DirectorySync's vanished-users policy suspends it.
	PreviewSuspend PreviewAction = "Suspend"
	// PreviewDelete: as Suspend, under a policy that deletes.
	PreviewDelete PreviewAction = "Delete"
	// PreviewSkip: the changed mapping fails on the record; the User is left as it is.
	PreviewSkip PreviewAction = "Skip"
)

// DirectorySyncPreviewSpec is a proposed mapping and filter for a DirectorySync.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a preview cannot be changed; create another"
type DirectorySyncPreviewSpec struct {
	// directorySyncName names the DirectorySync, in this namespace, whose records the
	// proposal is evaluated over: the records the operator last read from its source.
	// The source is not read again.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DirectorySyncName string `json:"directorySyncName"`

	// mapping is the proposed mapping, as a DirectorySync's mapping.
	// +optional
	// +listType=map
	// +listMapKey=target
	// +kubebuilder:validation:MaxItems=64
	Mapping []ExpressionMapping `json:"mapping,omitempty"`

	// filter is the proposed filter, as a DirectorySync's filter; empty keeps every
	// record.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Filter string `json:"filter,omitempty"`
}

// PreviewedUser is one User a proposal changes.
type PreviewedUser struct {
	// name is the User's object name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// userName is the person's login.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	UserName string `json:"userName,omitempty"`

	// action is what the proposal does to the User.
	// +required
	Action PreviewAction `json:"action"`

	// patch is the change as a JSON merge patch (RFC 7386) of the User: its labels and
	// spec. For Create it is the whole User the DirectorySync would write.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Patch string `json:"patch,omitempty"`

	// message says why a record is skipped.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message,omitempty"`
}

// PreviewCounts count what a proposal changes.
type PreviewCounts struct {
	// records is how many source records the proposal was evaluated over.
	// +optional
	Records int32 `json:"records,omitempty"`
	// created is the number of Users made for records that have none.
	// +optional
	Created int32 `json:"created,omitempty"`
	// updated is the number of Users whose fields or labels change.
	// +optional
	Updated int32 `json:"updated,omitempty"`
	// suspended is the number of Users the filter leaves out, to be suspended.
	// +optional
	Suspended int32 `json:"suspended,omitempty"`
	// deleted is the number of Users to be deleted.
	// +optional
	Deleted int32 `json:"deleted,omitempty"`
	// skipped is the number of Users left as they are because the mapping fails on
	// their record.
	// +optional
	Skipped int32 `json:"skipped,omitempty"`
}

// DirectorySyncPreviewStatus is what the proposal would do.
type DirectorySyncPreviewStatus struct {
	CommonStatus `json:",inline"`

	// evaluatedTime is when the proposal was evaluated.
	// +optional
	EvaluatedTime *metav1.Time `json:"evaluatedTime,omitempty"`

	// counts are the Users per action.
	// +optional
	Counts PreviewCounts `json:"counts,omitempty"`

	// users are the Users the proposal changes, by name; the first 500 when there are
	// more (counts has them all).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=500
	Users []PreviewedUser `json:"users,omitempty"`

	// held says, when set, that the suspensions and deletions would exceed the
	// DirectorySync's safety threshold: the sync would hold them until approved.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Held string `json:"held,omitempty"`
}

// DirectorySyncPreview asks what a proposed mapping and filter would do to a
// DirectorySync's Users, before the change is made: the operator evaluates it over the
// records it holds, with the sync's own code, and answers in status. `kubectl roster
// diff` creates one per changed DirectorySync and deletes it once read; the operator
// deletes any left behind after ten minutes. Creating one needs the `preview` verb on
// that DirectorySync (a preview can map any attribute of the source's records).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,categories=roster,shortName=dspreview
// +kubebuilder:printcolumn:name="DirectorySync",type=string,JSONPath=`.spec.directorySyncName`
// +kubebuilder:printcolumn:name="Created",type=integer,JSONPath=`.status.counts.created`
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.counts.updated`
// +kubebuilder:printcolumn:name="Suspended",type=integer,JSONPath=`.status.counts.suspended`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DirectorySyncPreview struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the proposal.
	// +required
	Spec DirectorySyncPreviewSpec `json:"spec"`

	// status is what it would do.
	// +optional
	Status DirectorySyncPreviewStatus `json:"status,omitempty"`
}

// DirectorySyncPreviewList is a list of DirectorySyncPreviews.
// +kubebuilder:object:root=true
type DirectorySyncPreviewList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DirectorySyncPreview `json:"items"`
}

func init() {
	register(&DirectorySyncPreview{}, &DirectorySyncPreviewList{})
}
