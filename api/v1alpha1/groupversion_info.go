// Package v1alpha1 holds the identity.roster.dev/v1alpha1 API: the people, roles,
// app assignments, app connections and directory syncs that Roster converges.
//
// +kubebuilder:object:generate=true
// +groupName=identity.roster.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every Roster kind.
	GroupVersion = schema.GroupVersion{Group: "identity.roster.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Roster kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Roster kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme

	// kinds are the objects of every kind, registered by each kind's file.
	kinds []runtime.Object
)

// register adds a kind and its list to the API.
func register(objects ...runtime.Object) { kinds = append(kinds, objects...) }

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, kinds...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
