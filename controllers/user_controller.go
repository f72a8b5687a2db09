package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/controllers/engine"
	"github.com/rosterhq/roster/controllers/notify"
)

// UserReconciler keeps each User's lifecycle phase, accounts and conditions, and holds
// a deleted User until every app has deprovisioned its account.
type UserReconciler struct {
	client.Client
	Engines  *Engines
	Recorder recorder.EventRecorder
	// Notify tells Notifiers of joiners, movers and leavers; Membership names the
	// Roles they hold, for Notifiers' filters.
	Notify     *notify.Hub
	Membership *Membership
	// Shards is the part of the work this replica does. A named shard writes its apps'
	// accounts into Users' status and takes its finalizer off a deleted User once its
	// apps are done; the main shard writes the rest and puts every finalizer on.
	Shards    *Sharding
	progress  *progressThrottle
	ownWrites *ownWrites
	journeys  journeys
}

func (r *UserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	u := &identityv1alpha1.User{}
	if err := r.Get(ctx, req.NamespacedName, u); err != nil {
		if apierrors.IsNotFound(err) {
			r.progress.forget(req.NamespacedName)
			r.journeys.forget(req.NamespacedName)
			r.ownWrites.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.ownWrites.behind(u) {
		return waitForOwnWrite, nil
	}
	defer r.ownWrites.wrote(u, u.ResourceVersion)
	if u.DeletionTimestamp != nil && u.Annotations[identityv1alpha1.AnnotationOrphanAccounts] == "true" {
		return retryOnConflict(ctrl.Result{}, r.orphan(ctx, u))
	}
	stops := r.Engines.stops.Load()
	apps, err := r.appsOf(ctx, u.Namespace, u.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	main := r.Shards.main()
	if err := r.addFinalizers(ctx, u, apps, main); err != nil {
		return retryOnConflict(ctrl.Result{}, err)
	}
	before := u.DeepCopy()
	now := time.Now()
	u.Status.Accounts = r.accounts(u, apps)
	var settled bool
	var next time.Time
	if main {
		var phase identityv1alpha1.UserPhase
		phase, next = lifecycle(u, now)
		u.Status.Phase = phase
		settled = r.conditions(ctx, u, phase, apps, newConditions(&u.Status.CommonStatus, u.Generation))
		u.Status.ObservedGeneration = u.Generation
	}
	if wait := r.progress.hold(req.NamespacedName, before, u, now); wait > 0 && !equalJSON(u.Status, before.Status) {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if err := r.patchStatus(ctx, u, before, apps); err != nil {
		return retryOnConflict(ctrl.Result{}, err)
	}
	if main {
		// What was written is news, whatever follows: the next reconcile starts from it.
		r.tell(req.NamespacedName, before, u, apps, now)
	}
	if r.Engines.stops.Load() != stops {
		// An engine stopped while this ran: the status written may list an account of its
		// app, which the AppConnection's refresh of its Users, reading them before this
		// write, did not see. Look again.
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	if u.DeletionTimestamp != nil {
		return retryOnConflict(ctrl.Result{}, r.removeFinalizers(ctx, u, apps, main && settled))
	}
	if next.IsZero() {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: max(time.Until(next), time.Millisecond)}, nil
}

// orphan lets a User being deleted go without deprovisioning its accounts, as its
// orphan-accounts annotation asks: every engine of the namespace lets go of the
// account as it is, and an Event records which apps keep one.
func (r *UserReconciler) orphan(ctx context.Context, u *identityv1alpha1.User) error {
	main := r.Shards.main()
	var mine []string
	for _, shard := range r.Shards.running() {
		if f := shard.finalizer(); !shard.main() && controllerutil.ContainsFinalizer(u, f) {
			mine = append(mine, f)
		}
	}
	if main && controllerutil.ContainsFinalizer(u, identityv1alpha1.Finalizer) {
		mine = append(mine, identityv1alpha1.Finalizer)
	}
	if len(mine) == 0 {
		return nil
	}
	for _, e := range r.Engines.InNamespace(u.Namespace) {
		e.Release(u.Name)
	}
	for _, f := range mine {
		controllerutil.RemoveFinalizer(u, f)
	}
	if !main {
		return client.IgnoreNotFound(r.Update(ctx, u))
	}
	var kept []string
	for _, a := range u.Status.Accounts {
		if a.State != identityv1alpha1.AccountStateDeleted {
			kept = append(kept, fmt.Sprintf("%s (%s)", a.App, a.State))
		}
	}
	msg := "Deleted without deprovisioning (annotation " + identityv1alpha1.AnnotationOrphanAccounts + "); no account was recorded"
	if len(kept) > 0 {
		msg = fmt.Sprintf("Deleted without deprovisioning (annotation %s); these accounts stay as they are and are no longer managed: %s",
			identityv1alpha1.AnnotationOrphanAccounts, strings.Join(kept, ", "))
	}
	r.Recorder.Eventf(u, nil, corev1.EventTypeWarning, identityv1alpha1.EventAccountsOrphaned, "Delete", "%s", msg)
	logf.FromContext(ctx).Info("Orphaned a deleted User's accounts", "user", u.Name, "accounts", len(kept))
	return client.IgnoreNotFound(r.Update(ctx, u))
}

// app is an AppConnection of the User's namespace with its engine, if running, and
// what the engine knows of the User, read once per reconcile.
type app struct {
	conn   *identityv1alpha1.AppConnection
	engine *engine.Engine
	view   engine.UserView
}

func (r *UserReconciler) appsOf(ctx context.Context, namespace, user string) (map[string]app, error) {
	var conns identityv1alpha1.AppConnectionList
	// Read-only: a User's reconcile reads its apps' connections and never changes them.
	if err := r.List(ctx, &conns, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	engines := r.Engines.InNamespace(namespace)
	apps := make(map[string]app, len(conns.Items))
	for i := range conns.Items {
		c := &conns.Items[i]
		a := app{conn: c, engine: engines[c.Name]}
		if a.engine != nil {
			a.view = a.engine.User(user)
		}
		apps[c.Name] = a
	}
	return apps, nil
}

// accounts lists the User's account in each app. An app whose engine has not listed it
// yet, or not planned the User since, keeps what the status said; an app that is gone,
// or going, drops out.
func (r *UserReconciler) accounts(u *identityv1alpha1.User, apps map[string]app) []identityv1alpha1.UserAccount {
	previous := map[string]identityv1alpha1.UserAccount{}
	for _, a := range u.Status.Accounts {
		previous[a.App] = a
	}
	var out []identityv1alpha1.UserAccount
	for name, a := range apps {
		if a.engine == nil {
			if p, ok := previous[name]; ok && a.conn.DeletionTimestamp == nil {
				out = append(out, p)
			}
			continue
		}
		view := a.view
		if !view.Known {
			if p, known := previous[name]; known && !view.Planned {
				out = append(out, p)
			}
			continue
		}
		out = append(out, userAccount(name, view.Account, previous[name]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// userAccount keeps the previous timestamps when nothing but their precision differs.
func userAccount(app string, st engine.AccountStatus, prev identityv1alpha1.UserAccount) identityv1alpha1.UserAccount {
	a := identityv1alpha1.UserAccount{App: app, State: st.State, ExternalID: st.ExternalID, Message: truncate(st.Message, 1024)}
	a.LastSyncTime = timeOrPrevious(st.LastSyncTime, prev.LastSyncTime)
	a.LastTransitionTime = timeOrPrevious(st.LastTransitionTime, prev.LastTransitionTime)
	a.LastLoginTime = timeOrPrevious(st.LastLogin, prev.LastLoginTime)
	return a
}

func timeOrPrevious(t time.Time, prev *metav1.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	if prev != nil && prev.Time.Equal(t.Truncate(time.Second)) {
		return prev
	}
	mt := metav1.NewTime(t.Truncate(time.Second))
	return &mt
}

// conditions sets Ready (and Stalled, Reconciling) from the phase and the accounts, and
// reports whether a deleted User is settled in every app.
func (r *UserReconciler) conditions(ctx context.Context, u *identityv1alpha1.User, phase identityv1alpha1.UserPhase, apps map[string]app, cond conditions) bool {
	if u.DeletionTimestamp == nil && duplicateUserName(ctx, r.Client, u) {
		cond.stalled(identityv1alpha1.ReasonDuplicateUserName,
			fmt.Sprintf("another User in this namespace already has userName %q (compared ignoring letter case); this one gets no accounts until one of them changes", u.Spec.UserName))
		return false
	}
	if u.DeletionTimestamp != nil {
		waiting := r.waitingFor(apps, MainShard)
		for _, s := range r.shardsDeprovisioning(u, apps) {
			waiting = append(waiting, "the apps of shard "+s.String())
		}
		if len(waiting) > 0 {
			cond.progressing(identityv1alpha1.ReasonDeprovisioning, "deprovisioning before the User goes: "+strings.Join(waiting, "; "))
			return false
		}
		cond.progressing(identityv1alpha1.ReasonDeprovisioning, "every account is deprovisioned; the User goes now")
		return true
	}
	var failed, pending, active, inactive []string
	for _, a := range u.Status.Accounts {
		switch a.State {
		case identityv1alpha1.AccountStateFailed:
			failed = append(failed, fmt.Sprintf("%s: %s", a.App, a.Message))
		case identityv1alpha1.AccountStateActive:
			active = append(active, a.App)
		default:
			inactive = append(inactive, a.App)
		}
	}
	var unreachable []string
	reason := identityv1alpha1.ReasonConnectorError
	for _, name := range sortedApps(apps) {
		a := apps[name]
		if a.conn.Spec.Mode == identityv1alpha1.ModePlan {
			continue
		}
		if a.engine == nil {
			if !r.Shards.Owns(a.conn) && a.conn.DeletionTimestamp == nil && r.owedByShard(ctx, u, phase, a.conn) {
				pending = append(pending, name)
			}
			continue
		}
		view := a.view
		if !view.Pending {
			continue
		}
		if err := view.Unreachable; err != nil {
			if errors.Is(err, connectors.ErrUnauthorized) {
				reason = identityv1alpha1.ReasonCredentialsRejected
			}
			unreachable = append(unreachable, fmt.Sprintf("%s: %v (see the AppConnection)", name, err))
			continue
		}
		pending = append(pending, name)
	}
	switch {
	case len(unreachable) > 0:
		cond.notReady(reason, "cannot provision: "+strings.Join(unreachable, "; "))
	case len(failed) > 0:
		cond.notReady(identityv1alpha1.ReasonProvisioningFailed, strings.Join(failed, "; "))
	case len(pending) > 0:
		cond.progressing(identityv1alpha1.ReasonProgressing, "converging accounts in "+strings.Join(pending, ", "))
	case phase == identityv1alpha1.UserPhasePending:
		cond.ready(identityv1alpha1.ReasonNotYetActive, "accounts are created at "+u.Spec.ActiveFrom.UTC().Format(time.RFC3339))
	case phase == identityv1alpha1.UserPhaseSuspended:
		cond.ready(identityv1alpha1.ReasonSuspended, fmt.Sprintf("suspended; %d accounts deprovisioned", len(inactive)))
	case phase == identityv1alpha1.UserPhaseExpired:
		cond.ready(identityv1alpha1.ReasonExpired, fmt.Sprintf("expired at %s; %d accounts deprovisioned", u.Spec.ActiveUntil.UTC().Format(time.RFC3339), len(inactive)))
	default:
		cond.ready(identityv1alpha1.ReasonReconciled, fmt.Sprintf("%d accounts active", len(active)))
	}
	return false
}

// owedByShard says whether an app another shard runs still owes the User something, as
// far as its shard has recorded: an account it wrote Pending; for an active User, an
// account missing or inactive while the User is entitled to the app, or still active
// while the User is not and the app's policy deactivates or deletes it; for a suspended
// or expired User, an account still active that the app's policy deactivates or deletes.
func (r *UserReconciler) owedByShard(ctx context.Context, u *identityv1alpha1.User, phase identityv1alpha1.UserPhase, conn *identityv1alpha1.AppConnection) bool {
	state := accountState(u, conn.Name)
	switch {
	case state == identityv1alpha1.AccountStatePending:
		return true
	case phase == identityv1alpha1.UserPhaseSuspended || phase == identityv1alpha1.UserPhaseExpired:
		return state == identityv1alpha1.AccountStateActive && conn.Spec.Deprovision.OnSuspend != identityv1alpha1.SuspendIgnore
	case phase != identityv1alpha1.UserPhaseActive || state == identityv1alpha1.AccountStateFailed:
		return false
	case state == identityv1alpha1.AccountStateActive && conn.Spec.Deprovision.OnRemoval == identityv1alpha1.RemovalOrphan:
		return false
	}
	subj := engine.Subject{User: u}
	(&subjects{cache: r.Client, membership: r.Membership, namespace: u.Namespace, app: conn.Name, asIs: u}).entitle(ctx, &subj, time.Now())
	if state == identityv1alpha1.AccountStateActive {
		return !subj.Assigned && !subj.AssignmentUnknown
	}
	return subj.Assigned
}

func sortedApps(apps map[string]app) []string {
	names := make([]string, 0, len(apps))
	for n := range apps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// SetupWithManager watches Users (spec, labels, deletion) and the engines' news.
func (r *UserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.progress, r.ownWrites = newProgressThrottle(), newOwnWrites()
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.User{}, builder.WithPredicates(r.ownWrites.or(specOrLabelsChanged(), r.otherShardsWrote(mgr.GetCache())))).
		WatchesRawSource(source.Channel(r.Engines.userEvents, &handler.EnqueueRequestForObject{})).
		WatchesRawSource(r.Shards.onLead(mgr.GetCache(), &identityv1alpha1.UserList{})).
		Complete(r)
}

// journeys remembers, for the news of joiners, movers and leavers, what a User held
// when last ready and when they left.
type journeys struct {
	mu        sync.Mutex
	lastReady map[types.NamespacedName][]string
	leftAt    map[types.NamespacedName]time.Time
}

// step records what a reconcile of a User wrote (before → u) and returns what the User
// held when last ready (known: whether that is known) and when it left.
func (j *journeys) step(key types.NamespacedName, before, u *identityv1alpha1.User, leaving bool, now time.Time) ([]string, bool, time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.lastReady == nil {
		j.lastReady, j.leftAt = map[types.NamespacedName][]string{}, map[types.NamespacedName]time.Time{}
	}
	if _, known := j.leftAt[key]; leaving && !known && before.Status.Phase == identityv1alpha1.UserPhaseActive {
		j.leftAt[key] = now
	}
	if _, known := j.lastReady[key]; !known && len(before.Status.Conditions) == 0 {
		// Never reconciled before: nothing of it was ready, whatever its first status says.
		j.lastReady[key] = nil
	}
	lastReady, known := j.lastReady[key]
	leftAt := j.leftAt[key]
	if isReady(u.Status.Conditions) && u.Status.Phase == identityv1alpha1.UserPhaseActive {
		j.lastReady[key] = activeApps(u.Status.Accounts)
		delete(j.leftAt, key)
	}
	return lastReady, known, leftAt
}

func (j *journeys) forget(key types.NamespacedName) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.lastReady, key)
	delete(j.leftAt, key)
}

// tell publishes a User's news, if this reconcile made any.
func (r *UserReconciler) tell(key types.NamespacedName, before, u *identityv1alpha1.User, apps map[string]app, now time.Time) {
	leaving := u.Status.Phase != identityv1alpha1.UserPhaseActive && u.Status.Phase != identityv1alpha1.UserPhasePending
	lastReady, known, leftAt := r.journeys.step(key, before, u, leaving, now)
	offAt := map[string]time.Time{}
	for name, a := range apps {
		if t := a.view.Account.LastTransitionTime; leaving && a.engine != nil && !t.IsZero() {
			offAt[name] = t
		}
	}
	if e, ok := userNews(before, u, lastReady, known, leftAt, offAt); ok {
		e.Person = person(u, r.Membership)
		r.Notify.Publish(e)
	}
}
