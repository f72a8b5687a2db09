package controllers

import (
	"context"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// Field indexes over the informer caches.
const (
	indexAssignmentApp  = "spec.app"
	indexAssignmentUser = "spec.userRef.name"
	indexAssignmentRole = "spec.roleRef.name"
	// indexAssignmentGrantee finds an app's assignments to one User, and to Roles.
	indexAssignmentGrantee = "grantee"
	indexUserManager       = "spec.manager.name"
	indexUserName          = "userName.lower"
	indexConfigMaps        = "configMapRefs"
	indexRequestUser       = "spec.userRef.name"
	labelRole              = "identity.roster.dev/role"
)

// fieldIndex is one field index over the informer caches.
type fieldIndex struct {
	obj     client.Object
	field   string
	extract client.IndexerFunc
}

// fieldIndexes are the indexes the controllers read by, and the evaluation of access
// (Evaluate) builds over objects given to it.
func fieldIndexes() []fieldIndex {
	return []fieldIndex{
		{&identityv1alpha1.AppAssignment{}, indexAssignmentApp, func(o client.Object) []string {
			return []string{o.(*identityv1alpha1.AppAssignment).Spec.App}
		}},
		{&identityv1alpha1.AppAssignment{}, indexAssignmentUser, func(o client.Object) []string {
			if ref := o.(*identityv1alpha1.AppAssignment).Spec.UserRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}},
		{&identityv1alpha1.AppAssignment{}, indexAssignmentRole, func(o client.Object) []string {
			if ref := o.(*identityv1alpha1.AppAssignment).Spec.RoleRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}},
		{&identityv1alpha1.AppAssignment{}, indexAssignmentGrantee, func(o client.Object) []string {
			a := o.(*identityv1alpha1.AppAssignment)
			switch {
			case a.Spec.UserRef != nil:
				return []string{userGrantee(a.Spec.App, a.Spec.UserRef.Name)}
			case a.Spec.RoleRef != nil:
				return []string{rolesGrantee(a.Spec.App)}
			}
			return nil
		}},
		{&identityv1alpha1.AccessRequest{}, indexRequestUser, func(o client.Object) []string {
			return []string{o.(*identityv1alpha1.AccessRequest).Spec.UserRef.Name}
		}},
		{&identityv1alpha1.User{}, indexUserManager, func(o client.Object) []string {
			if m := o.(*identityv1alpha1.User).Spec.Manager; m != nil {
				return []string{m.Name}
			}
			return nil
		}},
		{&identityv1alpha1.User{}, indexUserName, func(o client.Object) []string {
			return []string{strings.ToLower(o.(*identityv1alpha1.User).Spec.UserName)}
		}},
		{&identityv1alpha1.DirectorySync{}, indexConfigMaps, func(o client.Object) []string {
			if h := o.(*identityv1alpha1.DirectorySync).Spec.HRIS; h != nil && h.ConfigMapRef != nil {
				return []string{h.ConfigMapRef.Name}
			}
			return nil
		}},
	}
}

func addIndexes(ctx context.Context, mgr manager.Manager) error {
	for _, i := range fieldIndexes() {
		if err := mgr.GetFieldIndexer().IndexField(ctx, i.obj, i.field, i.extract); err != nil {
			return err
		}
	}
	return nil
}

// userGrantee and rolesGrantee are the keys of indexAssignmentGrantee.
func userGrantee(app, user string) string { return app + "/user/" + user }

func rolesGrantee(app string) string { return app + "/roles" }
