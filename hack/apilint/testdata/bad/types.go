// Package bad breaks each rule once.
package bad

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Widget has a status but no status subresource.
// +kubebuilder:object:root=true
type Widget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is fine.
	// +required
	Spec WidgetSpec `json:"spec"`

	// status is fine.
	// +optional
	Status WidgetStatus `json:"status,omitempty"`
}

// WidgetSpec breaks a rule per field.
type WidgetSpec struct {
	// The size, said the wrong way round.
	// +optional
	// +kubebuilder:validation:MaxLength=10
	Size string `json:"size,omitempty"`

	// color is neither optional nor required.
	// +kubebuilder:validation:MaxLength=10
	Color string `json:"color,omitempty"`

	// shape is required and a pointer.
	// +required
	// +kubebuilder:validation:MaxLength=10
	Shape *string `json:"shape,omitempty"`

	// enabled is a bool.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// name has no bound.
	// +optional
	Name string `json:"name,omitempty"`

	// tags have no bounds.
	// +optional
	Tags []string `json:"tags,omitempty"`

	// labels have no bound.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// WidgetStatus has conditions without their markers.
type WidgetStatus struct {
	// conditions lack listType and listMapKey.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}
