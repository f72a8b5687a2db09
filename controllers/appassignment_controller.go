package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/engine"
)

const maxFailures = 20

// AppAssignmentReconciler reports, for each AppAssignment, whether its subject exists,
// whether it is in its validity window, and how many of its accounts are in place.
type AppAssignmentReconciler struct {
	client.Client
	Engines    *Engines
	Membership *Membership
	// Shards is the part of the work this replica does: it reports the assignments of
	// its shard's apps, whose engines it runs.
	Shards *Sharding
	// members is each assignment's number of members at its last count, which sets how
	// often engine news count it again.
	members sync.Map // types.NamespacedName → int
	// written spaces the writes of counts that move while a sync runs.
	written countsThrottle
	// ownWrites: this reconciler's status writes on their way to the cache.
	ownWrites *ownWrites
}

func (r *AppAssignmentReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &identityv1alpha1.AppAssignment{}
	if err := r.Get(ctx, req.NamespacedName, a); err != nil {
		if apierrors.IsNotFound(err) {
			r.members.Delete(req.NamespacedName)
			r.written.forget(req.NamespacedName)
			r.ownWrites.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.ownWrites.behind(a) {
		return waitForOwnWrite, nil
	}
	defer r.ownWrites.wrote(a, a.ResourceVersion)
	before := a.DeepCopy()
	cond := newConditions(&a.Status.CommonStatus, a.Generation)
	now := time.Now()
	valid, next := validity(a, now)
	a.Status.Desired, a.Status.Provisioned, a.Status.Failed, a.Status.Failures = 0, 0, 0, nil

	conn := &identityv1alpha1.AppConnection{}
	connErr := r.Get(ctx, types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.App}, conn)
	if (connErr == nil || apierrors.IsNotFound(connErr)) && !r.Shards.Owns(conn) {
		// The app's shard reports it; the main shard reports an app that is missing
		// (an object not found has no labels).
		return ctrl.Result{}, nil
	}
	missing, err := r.missingSubject(ctx, a)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case missing != "":
		cond.notReady(identityv1alpha1.ReasonSubjectNotFound, missing+" does not exist; the assignment grants nothing until it does")
	case apierrors.IsNotFound(connErr):
		cond.notReady(identityv1alpha1.ReasonAppNotFound, fmt.Sprintf("the AppConnection %s does not exist; the assignment grants nothing until it does", a.Spec.App))
	case connErr != nil:
		return ctrl.Result{}, connErr
	case !valid && next.IsZero():
		cond.ready(identityv1alpha1.ReasonExpired, "access ended at "+a.Spec.ValidUntil.UTC().Format(time.RFC3339))
	case !valid:
		cond.ready(identityv1alpha1.ReasonNotYetActive, "access starts at "+a.Spec.ValidFrom.UTC().Format(time.RFC3339))
	default:
		r.count(a, conn, cond, now)
	}
	a.Status.ObservedGeneration = a.Generation
	var requeue time.Duration
	if !next.IsZero() {
		requeue = max(time.Until(next), time.Millisecond)
	}
	if !equality.Semantic.DeepEqual(a.Status, before.Status) {
		if wait := r.written.hold(req.NamespacedName, &before.Status.CommonStatus, &a.Status.CommonStatus, now); wait > 0 {
			return ctrl.Result{RequeueAfter: sooner(requeue, wait)}, nil
		}
	}
	if err := patchStatus(ctx, r.Client, a, before, a.Status, before.Status); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// missingSubject names the User or Role the assignment names, if it does not exist.
func (r *AppAssignmentReconciler) missingSubject(ctx context.Context, a *identityv1alpha1.AppAssignment) (string, error) {
	var obj client.Object
	var name, kind string
	switch {
	case a.Spec.UserRef != nil:
		obj, name, kind = &identityv1alpha1.User{}, a.Spec.UserRef.Name, "User"
	case a.Spec.RoleRef != nil:
		obj, name, kind = &identityv1alpha1.Role{}, a.Spec.RoleRef.Name, "Role"
	default:
		return "", nil
	}
	err := r.Get(ctx, types.NamespacedName{Namespace: a.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("the %s %s", kind, name), nil
	}
	return "", err
}

// count fills desired, provisioned and failed from the app's engine.
func (r *AppAssignmentReconciler) count(a *identityv1alpha1.AppAssignment, conn *identityv1alpha1.AppConnection, cond conditions, now time.Time) {
	e := r.Engines.Get(types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.App})
	active, members := activeSubjects(r.Membership, a, now)
	r.members.Store(client.ObjectKeyFromObject(a), members)
	a.Status.Desired = int32(len(active))
	if e != nil {
		e.Accounts(active, func(name string, st engine.AccountStatus) {
			switch st.State {
			case identityv1alpha1.AccountStateActive:
				a.Status.Provisioned++
			case identityv1alpha1.AccountStateFailed:
				a.Status.Failed++
				a.Status.Failures = firstFailures(a.Status.Failures, name, st)
			}
		})
	}
	failures := make([]string, len(a.Status.Failures))
	for i, f := range a.Status.Failures {
		failures[i] = f.User + ": " + f.Message
	}
	switch {
	case conn.Spec.Mode == identityv1alpha1.ModePlan:
		cond.ready(identityv1alpha1.ReasonPlanOnly, fmt.Sprintf("%s is in Plan mode: %d of %d accounts in place, the rest planned", a.Spec.App, a.Status.Provisioned, a.Status.Desired))
	case a.Status.Failed > 0:
		cond.notReady(identityv1alpha1.ReasonProvisioningFailed, fmt.Sprintf("%d of %d accounts failed: %s", a.Status.Failed, a.Status.Desired, strings.Join(failures, "; ")))
	case a.Status.Provisioned < a.Status.Desired:
		cond.progressing(identityv1alpha1.ReasonProgressing, fmt.Sprintf("%d of %d accounts provisioned", a.Status.Provisioned, a.Status.Desired))
	default:
		cond.ready(identityv1alpha1.ReasonReconciled, fmt.Sprintf("%d accounts provisioned", a.Status.Provisioned))
	}
}

// firstFailures keeps the first maxFailures failures by User name, whatever order the
// Users are visited in, so that the same failures read the same.
func firstFailures(first []identityv1alpha1.AssignmentFailure, user string, st engine.AccountStatus) []identityv1alpha1.AssignmentFailure {
	i, _ := slices.BinarySearchFunc(first, user, func(f identityv1alpha1.AssignmentFailure, user string) int { return strings.Compare(f.User, user) })
	if i == maxFailures {
		return first
	}
	t := metav1.NewTime(st.LastSyncTime.Truncate(time.Second))
	first = slices.Insert(first, i, identityv1alpha1.AssignmentFailure{User: user, Message: truncate(st.Message, 1024), LastAttemptTime: &t})
	return first[:min(len(first), maxFailures)]
}

// activeSubjects lists, in no order, the Users an AppAssignment's subject holds whose
// lifecycle allows accounts at now, and how many Users it holds in all.
func activeSubjects(m *Membership, a *identityv1alpha1.AppAssignment, now time.Time) (active []string, held int) {
	switch {
	case a.Spec.UserRef != nil:
		return m.Active(a.Namespace, []string{a.Spec.UserRef.Name}, now), 1
	case a.Spec.RoleRef != nil:
		return m.ActiveMembers(a.Namespace, a.Spec.RoleRef.Name, now)
	}
	return nil, 0
}

// countEvery is how often, at most, the engines' news count an assignment again.
func (r *AppAssignmentReconciler) countEvery(key types.NamespacedName) time.Duration {
	members, _ := r.members.Load(key)
	n, _ := members.(int)
	return max(countsEvery, time.Duration(n)*countEveryPerMember)
}

// SetupWithManager watches AppAssignments and what they depend on: their User or Role,
// their AppConnection, and the engines' news about their Users.
func (r *AppAssignmentReconciler) SetupWithManager(mgr ctrl.Manager) error {
	byField := func(field string, value func(client.Object) string) handler.EventHandler {
		return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
			var list identityv1alpha1.AppAssignmentList
			if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{field: value(obj)}); err != nil {
				return nil
			}
			reqs := make([]reconcile.Request, len(list.Items))
			for i, a := range list.Items {
				reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: a.Namespace, Name: a.Name}}
			}
			return reqs
		})
	}
	name := func(obj client.Object) string { return obj.GetName() }
	r.ownWrites = newOwnWrites()
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.AppAssignment{}, builder.WithPredicates(r.ownWrites.or(specOrLabelsChanged()))).
		Watches(&identityv1alpha1.User{}, byField(indexAssignmentUser, name), builder.WithPredicates(specOrLabelsChanged())).
		Watches(&identityv1alpha1.Role{}, byField(indexAssignmentRole, name), builder.WithPredicates(specOrLabelsChanged())).
		Watches(&identityv1alpha1.AppConnection{}, byField(indexAssignmentApp, name), builder.WithPredicates(specOrLabelsChanged())).
		WatchesRawSource(source.Channel(r.Engines.assignmentEvents, coalescedBySize(r.countEvery))).
		Complete(r)
}
