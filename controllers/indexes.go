package controllers

import (
	"context"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
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

// assignmentsBy and usersBy return the AppAssignments and Users of a namespace whose field
// index holds value, and usersIn every User of a namespace, read-only (see readIndexed).
func assignmentsBy(ctx context.Context, r client.Reader, field, namespace, value string) ([]*identityv1alpha1.AppAssignment, error) {
	return readIndexed[*identityv1alpha1.AppAssignment](ctx, r, anAssignment, &identityv1alpha1.AppAssignmentList{},
		fieldIndexName(field), namespace+"/"+value, client.InNamespace(namespace), client.MatchingFields{field: value})
}

func usersBy(ctx context.Context, r client.Reader, field, namespace, value string) ([]*identityv1alpha1.User, error) {
	return readIndexed[*identityv1alpha1.User](ctx, r, aUser, &identityv1alpha1.UserList{},
		fieldIndexName(field), namespace+"/"+value, client.InNamespace(namespace), client.MatchingFields{field: value})
}

func usersIn(ctx context.Context, r client.Reader, namespace string) ([]*identityv1alpha1.User, error) {
	return readIndexed[*identityv1alpha1.User](ctx, r, aUser, &identityv1alpha1.UserList{},
		toolscache.NamespaceIndex, namespace, client.InNamespace(namespace))
}

// fieldIndexName is the name controller-runtime gives a field's index in an informer.
func fieldIndexName(field string) string { return "field:" + field }

// anAssignment and aUser name their kind's informer; nothing writes to them.
var (
	anAssignment = &identityv1alpha1.AppAssignment{}
	aUser        = &identityv1alpha1.User{}
)

// readIndexed returns the objects an informer's index holds under key, read-only: from
// an informer cache they are the cache's own objects, read from its index. A cache List
// makes a new object of the kind and a list of copies at every call, the largest source
// of garbage in a large sync's profile. Any other reader, or an index the informer does
// not hold by that name, is listed with opts.
func readIndexed[T client.Object](ctx context.Context, r client.Reader, kind client.Object, list client.ObjectList, index, key string, opts ...client.ListOption) ([]T, error) {
	if objs, ok := fromInformer(ctx, r, kind, index, key); ok {
		return objectsOf[T](objs), nil
	}
	if err := r.List(ctx, list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		return nil, err
	}
	objs, err := apimeta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	return objectsOf[T](objs), nil
}

func fromInformer(ctx context.Context, r client.Reader, kind client.Object, index, key string) ([]any, bool) {
	informers, ok := r.(cache.Informers)
	if !ok {
		return nil, false
	}
	informer, err := informers.GetInformer(ctx, kind)
	if err != nil {
		return nil, false
	}
	indexed, ok := informer.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return nil, false
	}
	objs, err := indexed.GetIndexer().ByIndex(index, key)
	return objs, err == nil
}

func objectsOf[T any, S ~[]E, E any](objs S) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := any(o).(T); ok {
			out = append(out, t)
		}
	}
	return out
}
