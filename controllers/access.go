package controllers

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/engine"
)

// Holding is one person's access to one app, as the operator evaluates it.
type Holding struct {
	App, User, UserName string
	// Active: the person's lifecycle allows accounts now; an inactive holder's account
	// is deprovisioned.
	Active bool
	// Groups, AppRole and License are what the assignments give together.
	Groups           []string
	AppRole, License string
	// Through are the AppAssignments that give it.
	Through []Grant
}

// Grant is one AppAssignment that gives an app, and where it comes from.
type Grant struct {
	// Assignment is the AppAssignment's name; Role the Role whose members it gives the
	// app (by roleRef or a grant), Request the AccessRequest that owns it.
	Assignment, Role, Request string
}

// Evaluate says who holds which app in one namespace, given its Users, Roles,
// AppAssignments and AppConnections as they are, or as a change would make them. It
// runs the operator's own evaluation over the objects in memory: Role membership
// (users, selector, directory groups, CEL rule), Role grants as AppAssignments,
// assignment subjects, lifecycle and validity at now. Objects of other kinds are left
// out; AppAssignments a Role's grants made are replaced by what its grants say now.
func Evaluate(scheme *runtime.Scheme, objs []client.Object, now time.Time) ([]Holding, error) {
	cache, roles, apps, namespace, err := memoryCache(scheme, objs)
	if err != nil {
		return nil, err
	}
	membership, err := NewMembership()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	users := func() ([]identityv1alpha1.User, error) {
		var list identityv1alpha1.UserList
		err := cache.List(ctx, &list, client.InNamespace(namespace))
		return list.Items, err
	}
	for i := range roles {
		if _, err := membership.SetRole(&roles[i], users); err != nil {
			return nil, fmt.Errorf("the Role %s: %w", roles[i].Name, err)
		}
	}
	people, err := users()
	if err != nil {
		return nil, err
	}
	var out []Holding
	for _, app := range apps {
		s := &subjects{cache: cache, membership: membership, namespace: namespace, app: app}
		assignments, err := assignmentsBy(ctx, cache, indexAssignmentApp, namespace, app)
		if err != nil {
			return nil, err
		}
		for _, u := range people {
			subj, ok := s.Subject(u.Name)
			if !ok || !subj.Assigned {
				continue
			}
			h := Holding{App: app, User: u.Name, UserName: u.Spec.UserName, Active: subj.Active && !subj.Duplicate,
				Groups: subj.Groups, AppRole: subj.AppRole, License: subj.License}
			s.granting(assignments, &engine.Subject{User: &u}, now, func(a *identityv1alpha1.AppAssignment) {
				g := Grant{Assignment: a.Name, Request: a.Labels[labelAccessRequest]}
				if a.Spec.RoleRef != nil {
					g.Role = a.Spec.RoleRef.Name
				}
				h.Through = append(h.Through, g)
			})
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].App != out[j].App {
			return out[i].App < out[j].App
		}
		return out[i].UserName < out[j].UserName
	})
	return out, nil
}

// memoryCache holds the objects in an in-memory client with the operator's indexes,
// the Roles' grants expanded into AppAssignments, and names the apps: the
// AppConnections, and any app an AppAssignment names.
func memoryCache(scheme *runtime.Scheme, objs []client.Object) (client.Client, []identityv1alpha1.Role, []string, string, error) {
	var keep []client.Object
	var roles []identityv1alpha1.Role
	apps := map[string]bool{}
	namespace := ""
	for _, obj := range objs {
		if namespace == "" {
			namespace = obj.GetNamespace()
		}
		if obj.GetNamespace() != namespace {
			return nil, nil, nil, "", fmt.Errorf("%s %s is in namespace %s, not %s: evaluate one namespace at a time",
				obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), obj.GetNamespace(), namespace)
		}
		switch o := obj.(type) {
		case *identityv1alpha1.Role:
			roles = append(roles, *o)
			keep = append(keep, o)
		case *identityv1alpha1.AppAssignment:
			if o.Labels[labelRole] == "" {
				keep = append(keep, o)
				apps[o.Spec.App] = true
			}
		case *identityv1alpha1.User:
			keep = append(keep, o)
		case *identityv1alpha1.AppConnection:
			apps[o.Name] = true
		}
	}
	for i := range roles {
		for _, a := range grantAssignments(&roles[i]) {
			keep = append(keep, &a)
			apps[a.Spec.App] = true
		}
	}
	builder := fake.NewClientBuilder().WithScheme(scheme).WithObjects(keep...)
	for _, i := range fieldIndexes() {
		builder = builder.WithIndex(i.obj, i.field, i.extract)
	}
	names := make([]string, 0, len(apps))
	for app := range apps {
		names = append(names, app)
	}
	sort.Strings(names)
	return builder.Build(), roles, names, namespace, nil
}
