package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// RoleReconciler keeps each Role's membership and member count, and turns its grants
// into AppAssignments it owns.
type RoleReconciler struct {
	client.Client
	Scheme     *runtime.Scheme
	Engines    *Engines
	Membership *Membership
	// Shards is the part of the work this replica does: every shard follows membership
	// for its apps; the main shard writes Roles' counts and grants.
	Shards *Sharding
	// ownWrites: this reconciler's status writes on their way to the cache.
	ownWrites *ownWrites
}

func (r *RoleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	role := &identityv1alpha1.Role{}
	if err := r.Get(ctx, req.NamespacedName, role); err != nil {
		if apierrors.IsNotFound(err) {
			r.Engines.roleMembersChanged(req.Namespace, req.Name, r.Membership.DeleteRole(req.Namespace, req.Name))
			r.ownWrites.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.ownWrites.behind(role) {
		return waitForOwnWrite, nil
	}
	defer r.ownWrites.wrote(role, role.ResourceVersion)
	before := role.DeepCopy()
	cond := newConditions(&role.Status.CommonStatus, role.Generation)
	var listErr error
	changed, ruleErr := r.Membership.SetRole(role, func() ([]identityv1alpha1.User, error) {
		var users identityv1alpha1.UserList
		listErr = r.List(ctx, &users, client.InNamespace(role.Namespace), client.UnsafeDisableDeepCopy)
		return users.Items, listErr
	})
	if listErr != nil {
		return ctrl.Result{}, listErr
	}
	r.Engines.roleMembersChanged(role.Namespace, role.Name, changed)
	if !r.Shards.main() {
		return ctrl.Result{}, nil
	}
	role.Status.MemberCount = int32(r.Membership.Count(role.Namespace, role.Name))

	grantErr := r.syncGrants(ctx, role)
	switch {
	case ruleErr != nil:
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, ruleErr.Error()+"; the members stay as they were until the rule is fixed")
	case grantErr != nil:
		cond.progressing(identityv1alpha1.ReasonProgressing, "could not write the AppAssignments of its grants, retrying: "+grantErr.Error())
	default:
		cond.ready(identityv1alpha1.ReasonReconciled, fmt.Sprintf("%d members", role.Status.MemberCount))
	}
	role.Status.ObservedGeneration = role.Generation
	// Locked: a replica that has just stopped leading must not overwrite what the new
	// leader wrote.
	statusErr := patchStatusLocked(ctx, r.Client, role, before, role.Status, before.Status)
	if apierrors.IsConflict(statusErr) || apierrors.IsAlreadyExists(grantErr) || apierrors.IsConflict(grantErr) {
		// The cache has not seen a write yet: look again shortly, without the error
		// backoff, which stretches to minutes while the API server is busy.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	if statusErr != nil {
		return ctrl.Result{}, statusErr
	}
	return ctrl.Result{}, grantErr
}

// syncGrants writes one AppAssignment per grant, owned by the Role, and deletes the
// ones whose grant is gone.
func (r *RoleReconciler) syncGrants(ctx context.Context, role *identityv1alpha1.Role) error {
	want := map[string]bool{}
	for _, g := range grantAssignments(role) {
		a := &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: g.Namespace, Name: g.Name}}
		want[a.Name] = true
		_, err := controllerutil.CreateOrUpdate(ctx, r.Client, a, func() error {
			if a.Labels == nil {
				a.Labels = map[string]string{}
			}
			a.Labels[labelRole] = role.Name
			a.Spec = g.Spec
			return controllerutil.SetControllerReference(role, a, r.Scheme)
		})
		if err != nil {
			return fmt.Errorf("grant for %s: %w", g.Spec.App, err)
		}
	}
	var owned identityv1alpha1.AppAssignmentList
	if err := r.List(ctx, &owned, client.InNamespace(role.Namespace), client.MatchingLabels{labelRole: role.Name}); err != nil {
		return err
	}
	for i := range owned.Items {
		a := &owned.Items[i]
		if !want[a.Name] && metav1.IsControlledBy(a, role) {
			if err := r.Delete(ctx, a); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	return nil
}

// grantAssignments are the AppAssignments a Role's grants stand for.
func grantAssignments(role *identityv1alpha1.Role) []identityv1alpha1.AppAssignment {
	out := make([]identityv1alpha1.AppAssignment, len(role.Spec.Grants))
	for i, g := range role.Spec.Grants {
		out[i] = identityv1alpha1.AppAssignment{
			ObjectMeta: metav1.ObjectMeta{Namespace: role.Namespace, Name: grantName(role.Name, g.App), Labels: map[string]string{labelRole: role.Name}},
			Spec: identityv1alpha1.AppAssignmentSpec{RoleRef: &identityv1alpha1.LocalObjectReference{Name: role.Name}, App: g.App,
				Entitlements: *g.Entitlements.DeepCopy()},
		}
	}
	return out
}

// grantName is the name of a grant's AppAssignment: "<role>-<app>".
func grantName(role, app string) string { return boundedName(role + "-" + app) }

// boundedName is a name Roster makes up from others', shortened with a hash when it is
// too long for an object name.
func boundedName(name string) string {
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(name[:240], "-.") + "-" + hex.EncodeToString(sum[:4])
}

// SetupWithManager watches Roles, the AppAssignments they own, and Users, whose changes
// are evaluated against the Roles one User at a time.
func (r *RoleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.ownWrites = newOwnWrites()
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.Role{}, builder.WithPredicates(r.ownWrites.or(specOrLabelsChanged()))).
		Owns(&identityv1alpha1.AppAssignment{}, builder.WithPredicates(specOrLabelsChanged())).
		Watches(&identityv1alpha1.User{}, r.Engines.usersToEngines(requeueRole), builder.WithPredicates(specOrLabelsChanged())).
		WatchesRawSource(r.Shards.onLead(mgr.GetCache(), &identityv1alpha1.RoleList{})).
		Complete(r)
}

// requeueRole reconciles a Role whose members changed, at most every countsEvery.
func requeueRole(q workqueue, namespace, role string) {
	q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: role}}, countsEvery)
}
