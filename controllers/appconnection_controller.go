package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/controllers/engine"
	"github.com/rosterhq/roster/controllers/notify"
)

// AppConnectionReconciler validates each AppConnection, runs its engine and reports
// the engine's state; deleting an AppConnection first releases its accounts.
type AppConnectionReconciler struct {
	client.Client
	// APIReader reads Secrets straight from the API server.
	APIReader client.Reader
	Registry  *connectors.Registry
	Engines   *Engines
	Recorder  recorder.EventRecorder
	// Notify tells Notifiers of failing and recovered apps, held plans and unmanaged
	// accounts.
	Notify *notify.Hub
	// Shards is the part of the work this replica does: it runs the engines of its
	// shard's AppConnections only.
	Shards *Sharding

	mu    sync.Mutex
	built map[types.NamespacedName]*built
	// accounts is each app's number of managed accounts at its last snapshot, which
	// sets how often the engine's news take another.
	accounts sync.Map // types.NamespacedName → int
	// written spaces the writes of a snapshot whose counts move while a sync runs.
	written countsThrottle
	// ownWrites: this reconciler's status writes on their way to the cache.
	ownWrites *ownWrites
}

// built is an AppConnection's connector and mapping, kept until its spec or a Secret
// it reads changes.
type built struct {
	generation int64
	secrets    map[string]string // Secret name → resourceVersion read
	target     connectors.Target
	mapping    *mapping.Mappings
	err        error
}

func (r *AppConnectionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	conn := &identityv1alpha1.AppConnection{}
	if err := r.Get(ctx, req.NamespacedName, conn); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(ctx, req.NamespacedName)
			r.ownWrites.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.ownWrites.behind(conn) {
		return waitForOwnWrite, nil
	}
	defer r.ownWrites.wrote(conn, conn.ResourceVersion)
	if !r.Shards.Owns(conn) {
		// Another shard's: let go of it if this replica ran it until its label changed.
		if r.Engines.Get(req.NamespacedName) != nil {
			r.forget(ctx, req.NamespacedName)
		}
		return r.Shards.reportUnled(ctx, r.Client, r.Recorder, conn, &conn.Status.CommonStatus)
	}
	if conn.DeletionTimestamp != nil {
		return r.finalize(ctx, conn)
	}
	if controllerutil.AddFinalizer(conn, identityv1alpha1.Finalizer) {
		if err := r.Update(ctx, conn); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := conn.DeepCopy()
	cond := newConditions(&conn.Status.CommonStatus, conn.Generation)
	conn.Status.Connector = conn.Spec.ConnectorName()

	b := r.build(ctx, conn)
	if b.err != nil {
		r.buildFailed(conn, cond, b.err)
		return r.finish(ctx, conn, before, retryAfterBuild(b.err))
	}
	e, err := r.Engines.Ensure(ctx, req.NamespacedName, func() bool { return r.Shards.Owns(conn) }, configOf(conn, b))
	if errors.Is(err, errNotOurs) {
		return ctrl.Result{}, nil // its shard went to another replica meanwhile
	}
	if wait, crashed := crashed(cond, err); crashed {
		return r.finish(ctx, conn, before, wait)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	snap := e.Snapshot()
	r.accounts.Store(req.NamespacedName, snap.Managed)
	r.summarize(conn, snap, cond)
	return r.finish(ctx, conn, before, 0)
}

func (r *AppConnectionReconciler) finish(ctx context.Context, conn, before *identityv1alpha1.AppConnection, requeue time.Duration) (ctrl.Result, error) {
	conn.Status.ObservedGeneration = conn.Generation
	key := client.ObjectKeyFromObject(conn)
	if !equality.Semantic.DeepEqual(conn.Status, before.Status) {
		if wait := r.written.hold(key, &before.Status.CommonStatus, &conn.Status.CommonStatus, time.Now()); wait > 0 {
			return ctrl.Result{RequeueAfter: sooner(requeue, wait)}, nil
		}
	}
	r.announce(conn, before)
	if err := patchStatus(ctx, r.Client, conn, before, conn.Status, before.Status); err != nil {
		return ctrl.Result{}, err
	}
	for _, e := range appNews(before, conn) {
		r.Notify.Publish(e)
	}
	reportConditions("AppConnection", key, conn.Status.Conditions)
	q := 0.0
	if u := conn.Status.QuarantinedUntil; u != nil && u.After(time.Now()) {
		q = 1
	}
	quarantined.WithLabelValues(key.String()).Set(q)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// announce records an event when the Ready condition changes reason.
func (r *AppConnectionReconciler) announce(conn, before *identityv1alpha1.AppConnection) {
	now := meta.FindStatusCondition(conn.Status.Conditions, identityv1alpha1.ConditionReady)
	was := meta.FindStatusCondition(before.Status.Conditions, identityv1alpha1.ConditionReady)
	if now == nil || (was != nil && was.Reason == now.Reason && was.Status == now.Status) {
		return
	}
	kind := corev1.EventTypeNormal
	if now.Status != metav1.ConditionTrue && now.Reason != identityv1alpha1.ReasonProgressing {
		kind = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(conn, nil, kind, now.Reason, "Reconcile", "%s", now.Message)
}

// build makes the AppConnection's connector and compiles its mapping, once per
// generation and set of Secret versions.
func (r *AppConnectionReconciler) build(ctx context.Context, conn *identityv1alpha1.AppConnection) *built {
	key := types.NamespacedName{Namespace: conn.Namespace, Name: conn.Name}
	r.mu.Lock()
	prev := r.built[key]
	r.mu.Unlock()
	if prev != nil && prev.generation == conn.Generation && secretsUnchanged(ctx, r.APIReader, conn.Namespace, prev.secrets) {
		return prev
	}
	b := &built{generation: conn.Generation}
	secrets := newSecretReader(r.APIReader, conn.Namespace)
	b.secrets = secrets.versions
	factory, err := r.Registry.Target(conn.Spec.ConnectorName())
	if err == nil {
		journal := appJournal{client: r.Client, live: r.APIReader, key: key, uid: conn.UID}
		b.target, err = factory(ctx, conn, journaledSecrets{secrets, journal})
	} else {
		err = fmt.Errorf("%w: %v", errInvalidSpec, err)
	}
	if err == nil {
		b.mapping, err = compileMapping(b.target, conn.Spec.Mapping)
	}
	b.err = err
	r.mu.Lock()
	if r.built == nil {
		r.built = map[types.NamespacedName]*built{}
	}
	r.built[key] = b
	r.mu.Unlock()
	return b
}

var errInvalidSpec = errors.New("invalid configuration")

// compileMapping compiles Roster's default mapping, the target's own defaults and the
// AppConnection's mapping, in that order.
func compileMapping(target connectors.Target, overrides []identityv1alpha1.ExpressionMapping) (*mapping.Mappings, error) {
	env, err := mapping.NewEnv(mapping.AccountVars...)
	if err != nil {
		return nil, err
	}
	defaults := mapping.DefaultAccountMapping
	if m, ok := target.(connectors.DefaultMapper); ok {
		defaults = append(slices.Clone(defaults), m.DefaultMapping()...)
	}
	compiled, err := env.CompileMappings(defaults, overrides)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalidSpec, err)
	}
	return compiled, nil
}

// DefaultSecretRecheck is how often the Secrets an object reads are read again, by
// name from the API server: Roster does not list or watch Secrets, and notices a
// rotated or deleted credential (a revoked inbound SCIM token included) within this
// interval.
const DefaultSecretRecheck = 30 * time.Second

// secretRecheck is DefaultSecretRecheck unless Options.SecretRecheck says otherwise.
var secretRecheck = DefaultSecretRecheck

// secretsUnchanged compares the Secrets' resourceVersions with those read, reading
// each Secret's metadata by name from the API server. A Secret deleted, changed or no
// longer readable by Roster is a change (a revoked credential fails closed); a read that
// fails otherwise (a busy API server, a timeout) is not: the connector that works is
// kept and the next recheck reads again, since a new connector makes its engine connect
// and list the whole app again.
func secretsUnchanged(ctx context.Context, api client.Reader, namespace string, versions map[string]string) bool {
	for name, version := range versions {
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		err := api.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, meta)
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || (err == nil && meta.ResourceVersion != version) {
			return false
		}
	}
	return true
}

// forget stops the AppConnection's engine and tells the Users that had an account
// through it, so that their status drops the app.
func (r *AppConnectionReconciler) forget(ctx context.Context, key types.NamespacedName) {
	forgetConditions("AppConnection", key)
	quarantined.DeleteLabelValues(key.String())
	r.Engines.Stop(key)
	r.accounts.Delete(key)
	r.written.forget(key)
	r.mu.Lock()
	delete(r.built, key)
	r.mu.Unlock()
	r.refreshUsers(ctx, key)
}

func (r *AppConnectionReconciler) buildFailed(conn *identityv1alpha1.AppConnection, cond conditions, err error) {
	switch {
	case errors.Is(err, connectors.ErrSecretNotFound):
		cond.stalled(identityv1alpha1.ReasonSecretNotFound, err.Error())
	case errors.Is(err, errInvalidSpec) || connectors.IsPermanent(err):
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, err.Error())
	default:
		cond.notReady(identityv1alpha1.ReasonConnectorError, err.Error())
	}
}

func retryAfterBuild(err error) time.Duration {
	if errors.Is(err, errInvalidSpec) {
		return 0 // a change to the object brings it back
	}
	return secretRecheck // a Secret may be created or mended meanwhile
}

// recheckSecrets is when to read an object's Secrets again: secretRecheck if it reads
// any.
func recheckSecrets(secrets map[string]string) time.Duration {
	if len(secrets) > 0 {
		return secretRecheck
	}
	return 0
}

// configOf turns an AppConnection into its engine's configuration.
func configOf(conn *identityv1alpha1.AppConnection, b *built) engine.Config {
	s := conn.Spec
	cfg := engine.Config{
		App:        conn.Namespace + "/" + conn.Name,
		Generation: conn.Generation,
		Target:     b.target,
		Mapping:    b.mapping,
		MatchBy:    connectors.KeyKind(s.MatchBy),
		OnSuspend:  s.Deprovision.OnSuspend,
		OnRemoval:  s.Deprovision.OnRemoval,
		Unmanaged:  s.UnmanagedAccounts,
		Mode:       s.Mode,
		Paused:     conn.Annotations[identityv1alpha1.AnnotationPaused] == "true",
		// An approval annotation names the plan it approves; a stale one matches nothing.
		ApprovedPlan:  conn.Annotations[identityv1alpha1.AnnotationApprovePlan],
		PlanApprover:  conn.Annotations[identityv1alpha1.AnnotationPlanApprovedBy],
		ResyncRequest: conn.Annotations[identityv1alpha1.AnnotationResync],
		Resync:        time.Hour,
		Workers:       4,
		ManagedGroups: conn.Status.ManagedGroups,
		Counted:       conn.Status.RecentDeprovisions,
		Window:        s.SafetyThreshold.WindowOrDefault(),
		Removing:      conn.DeletionTimestamp != nil,
	}
	if cfg.MatchBy == "" {
		cfg.MatchBy = connectors.KeyUserName
	}
	if cfg.OnSuspend == "" {
		cfg.OnSuspend = identityv1alpha1.SuspendDeactivate
	}
	if cfg.OnRemoval == "" {
		cfg.OnRemoval = identityv1alpha1.RemovalDeactivate
	}
	if cfg.Mode == "" {
		cfg.Mode = identityv1alpha1.ModeEnforce
	}
	if d := s.Deprovision.DeleteAfter; d != nil {
		cfg.DeleteAfter = d.Duration
	}
	if t := s.SafetyThreshold; t != nil {
		cfg.MaxCount, cfg.MaxPercent = t.MaxCount, t.MaxPercent
	}
	if s.ResyncInterval != nil {
		cfg.Resync = s.ResyncInterval.Duration
	}
	if rl := s.RateLimit; rl != nil && rl.MaxConcurrency != nil {
		cfg.Workers = int(*rl.MaxConcurrency)
	}
	return cfg
}

// summarize puts a snapshot of the engine's state into the AppConnection's status.
func (r *AppConnectionReconciler) summarize(conn *identityv1alpha1.AppConnection, snap engine.Snapshot, cond conditions) {
	st := &conn.Status
	before := st.DeepCopy()
	st.Capabilities = snap.Capabilities.Names()
	st.Accounts = identityv1alpha1.AccountCounts{
		Managed: int32(snap.Managed), Pending: int32(snap.Pending), Failed: int32(snap.Failed), Unmanaged: int32(snap.Unmanaged),
	}
	st.UnmanagedAccounts = nil
	if conn.Spec.UnmanagedAccounts == identityv1alpha1.UnmanagedReport {
		st.UnmanagedAccounts = snap.UnmanagedSample
	}
	st.ManagedGroups = snap.ManagedGroups
	st.RecentDeprovisions = snap.RecentDeprovisions
	st.Plan = nil
	if !snap.Plan.Empty() {
		st.Plan = &identityv1alpha1.PlanSummary{
			ID: snap.Plan.ID, Creates: int32(snap.Plan.Creates), Updates: int32(snap.Plan.Updates),
			Deactivations: int32(snap.Plan.Deactivations), Deletions: int32(snap.Plan.Deletions),
			GroupChanges: int32(snap.Plan.GroupChanges), Sample: snap.Plan.Sample,
		}
	}
	st.QuarantinedUntil = nil
	if q := snap.QuarantinedUntil; !q.IsZero() && time.Now().Before(q) {
		t := metav1.NewTime(q)
		st.QuarantinedUntil = &t
	}
	r.conditionsFor(conn, snap, cond)
	// The full sync time is written with other changes, not on its own: a steady resync
	// writes nothing (roster_last_full_sync_timestamp_seconds is always current).
	if !snap.LastFullSync.IsZero() && (st.LastFullSyncTime == nil || !statusEqualButSync(before, st)) {
		t := metav1.NewTime(snap.LastFullSync.Truncate(time.Second))
		st.LastFullSyncTime = &t
	}
}

func statusEqualButSync(a, b *identityv1alpha1.AppConnectionStatus) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	x.LastFullSyncTime, y.LastFullSyncTime = nil, nil
	for i := range x.Conditions {
		x.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	for i := range y.Conditions {
		y.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	return equalJSON(x, y)
}

func (r *AppConnectionReconciler) conditionsFor(conn *identityv1alpha1.AppConnection, snap engine.Snapshot, cond conditions) {
	app := conn.Name
	switch {
	case conn.Annotations[identityv1alpha1.AnnotationPaused] == "true":
		cond.notReady(identityv1alpha1.ReasonPaused, fmt.Sprintf("paused by the %s annotation; nothing is written to %s until it is removed", identityv1alpha1.AnnotationPaused, app))
	case snap.Health == engine.HealthFailing:
		connectorFailed(cond, snap.Err)
	case snap.Health != engine.HealthReady:
		cond.progressing(identityv1alpha1.ReasonProgressing, fmt.Sprintf("connecting to %s and listing its accounts", app))
	case snap.Blocked:
		cond.stalled(identityv1alpha1.ReasonSafetyThresholdExceeded, snap.BlockedMessage)
	case conn.Spec.Mode == identityv1alpha1.ModePlan:
		cond.ready(identityv1alpha1.ReasonPlanOnly, fmt.Sprintf("Plan mode: %s; nothing is written to %s (see status.plan)", describePlan(snap.Plan), app))
	case snap.Failed > 0:
		reason := identityv1alpha1.ReasonProvisioningFailed
		if snap.RateLimited == snap.Failed {
			reason = identityv1alpha1.ReasonRateLimited
		}
		cond.notReady(reason, fmt.Sprintf("%d of %d accounts failed (%d rate limited), retrying where it can help; first: %s",
			snap.Failed, snap.Managed+snap.Failed, snap.RateLimited, strings.Join(snap.FailureSample, "; ")))
	default:
		cond.ready(identityv1alpha1.ReasonReconciled, fmt.Sprintf("%d accounts managed, %d unmanaged", snap.Managed, snap.Unmanaged))
		if snap.Converging {
			cond.set(identityv1alpha1.ConditionReconciling, metav1.ConditionTrue, identityv1alpha1.ReasonProgressing,
				fmt.Sprintf("%s planned", describePlan(snap.Plan)))
		}
	}
}

// connectorFailed maps a connector error to a reason a person can act on.
func connectorFailed(cond conditions, err error) {
	msg := fmt.Sprint(err)
	switch {
	case errors.Is(err, connectors.ErrUnauthorized):
		cond.stalled(identityv1alpha1.ReasonCredentialsRejected, "the app rejected the credentials: "+msg)
	case errors.Is(err, connectors.ErrSecretNotFound):
		cond.stalled(identityv1alpha1.ReasonSecretNotFound, msg)
	default:
		if _, limited := connectors.RetryAfter(err); limited {
			cond.notReady(identityv1alpha1.ReasonRateLimited, msg)
			return
		}
		if connectors.IsPermanent(err) {
			cond.stalled(identityv1alpha1.ReasonConnectorError, msg)
			return
		}
		cond.notReady(identityv1alpha1.ReasonConnectorError, msg+"; retrying")
	}
}

func describePlan(p engine.PlanSummary) string {
	if p.Empty() {
		return "no changes"
	}
	return fmt.Sprintf("%d to create, %d to update, %d to deactivate, %d to delete, %d group changes",
		p.Creates, p.Updates, p.Deactivations, p.Deletions, p.GroupChanges)
}

// finalize releases the AppConnection's accounts by its onRemoval policy, then lets it go.
func (r *AppConnectionReconciler) finalize(ctx context.Context, conn *identityv1alpha1.AppConnection) (ctrl.Result, error) {
	key := types.NamespacedName{Namespace: conn.Namespace, Name: conn.Name}
	if !controllerutil.ContainsFinalizer(conn, identityv1alpha1.Finalizer) {
		r.forget(ctx, key)
		return ctrl.Result{}, nil
	}
	before := conn.DeepCopy()
	cond := newConditions(&conn.Status.CommonStatus, conn.Generation)
	done := conn.Spec.Deprovision.OnRemoval == identityv1alpha1.RemovalOrphan || conn.Spec.Mode == identityv1alpha1.ModePlan
	if !done {
		b := r.build(ctx, conn)
		if b.err != nil {
			r.buildFailed(conn, cond, b.err)
			return r.finish(ctx, conn, before, retryAfterBuild(b.err))
		}
		e, err := r.Engines.Ensure(ctx, key, func() bool { return r.Shards.Owns(conn) }, configOf(conn, b))
		if errors.Is(err, errNotOurs) {
			return ctrl.Result{}, nil
		}
		if err != nil {
			return ctrl.Result{}, err
		}
		if snap := e.Snapshot(); !snap.Released {
			r.summarize(conn, snap, cond)
			if meta.IsStatusConditionTrue(conn.Status.Conditions, identityv1alpha1.ConditionReady) {
				cond.progressing(identityv1alpha1.ReasonDeprovisioning,
					fmt.Sprintf("releasing %d accounts (onRemoval: %s) before the AppConnection goes", snap.Managed, conn.Spec.Deprovision.OnRemoval))
			}
			return r.finish(ctx, conn, before, 0)
		}
	}
	r.forget(ctx, key)
	controllerutil.RemoveFinalizer(conn, identityv1alpha1.Finalizer)
	return ctrl.Result{}, r.Update(ctx, conn)
}

// refreshUsers reconciles the Users whose status still lists an account in the app. It
// reads their status from the API server, not the cache: a User reconcile that wrote
// the app's account just before the engine stopped has its write there already (one
// that writes after requeues itself).
func (r *AppConnectionReconciler) refreshUsers(ctx context.Context, conn types.NamespacedName) {
	var users identityv1alpha1.UserList
	if err := r.APIReader.List(ctx, &users, client.InNamespace(conn.Namespace)); err != nil {
		logf.FromContext(ctx).Error(err, "Could not list Users to refresh their status")
		return
	}
	for i := range users.Items {
		for _, a := range users.Items[i].Status.Accounts {
			if a.App == conn.Name {
				r.Engines.userEvents <- event.GenericEvent{Object: &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: conn.Namespace, Name: users.Items[i].Name}}}
			}
		}
	}
}

// SetupWithManager watches AppConnections, the Secrets they read, the engines' news,
// and passes changes to AppAssignments on to the engines (the Role controller passes
// changes to Users on, once it has evaluated them against the Roles).
// snapshotEvery is how often, at most, an engine's news reconcile its AppConnection,
// whose status is a snapshot of every account the engine holds. It takes no lock: the
// engine may send its news while it holds its own.
func (r *AppConnectionReconciler) snapshotEvery(key types.NamespacedName) time.Duration {
	accounts, _ := r.accounts.Load(key)
	n, _ := accounts.(int)
	return time.Duration(n) * snapshotEveryAccount
}

func (r *AppConnectionReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.ownWrites = newOwnWrites()
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.AppConnection{}, builder.WithPredicates(r.ownWrites.or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		WatchesRawSource(source.Channel(r.Engines.appEvents, coalescedBySize(r.snapshotEvery))).
		Watches(&identityv1alpha1.AppAssignment{}, r.Engines.assignmentsToEngines(), builder.WithPredicates(specOrLabelsChanged())).
		Complete(r)
}
