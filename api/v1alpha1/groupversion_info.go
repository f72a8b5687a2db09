// Package v1alpha1 holds the identity.roster.dev/v1alpha1 API: the people, roles,
// app assignments, app connections and directory syncs that Roster converges.
//
// +kubebuilder:object:generate=true
// +groupName=identity.roster.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every Roster kind.
	GroupVersion = schema.GroupVersion{Group: "identity.roster.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Roster kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Roster kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
