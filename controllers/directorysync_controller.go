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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/controllers/directory"
	"github.com/rosterhq/roster/controllers/notify"
	"github.com/rosterhq/roster/controllers/safety"
)

// DirectorySyncReconciler runs each DirectorySync's source through a syncer that
// writes its Users, and reports what the last sync did.
type DirectorySyncReconciler struct {
	client.Client
	APIReader client.Reader
	Registry  *connectors.Registry
	Syncers   *Syncers
	Inbound   *InboundSCIM // nil when the binary serves no inbound SCIM
	Recorder  recorder.EventRecorder
	// Notify tells Notifiers of held plans.
	Notify *notify.Hub
	// Shards is the part of the work this replica does: it runs the syncers of its
	// shard's DirectorySyncs only.
	Shards *Sharding

	mu    sync.Mutex
	built map[types.NamespacedName]*builtSource
	// ownWrites: this reconciler's status writes on their way to the cache.
	ownWrites *ownWrites
}

type builtSource struct {
	generation int64
	secrets    map[string]string
	source     connectors.Source
	mapping    *mapping.Mappings
	filter     *mapping.Program
	err        error
	// exportVersion is the resourceVersion of the ConfigMap holding the HR export, as
	// the last reconcile saw it.
	exportVersion string
}

func (r *DirectorySyncReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ds := &identityv1alpha1.DirectorySync{}
	if err := r.Get(ctx, req.NamespacedName, ds); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			r.ownWrites.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if r.ownWrites.behind(ds) {
		return waitForOwnWrite, nil
	}
	defer r.ownWrites.wrote(ds, ds.ResourceVersion)
	if !r.Shards.Owns(ds) {
		// Another shard's: stop its syncer if this replica ran it until its label
		// changed. Inbound SCIM keeps serving it, as every replica does.
		r.letGo(req.NamespacedName)
		return r.Shards.reportUnled(ctx, r.Client, r.Recorder, ds, &ds.Status.CommonStatus)
	}
	if ds.DeletionTimestamp != nil {
		return r.finalize(ctx, ds)
	}
	if controllerutil.AddFinalizer(ds, identityv1alpha1.Finalizer) {
		if err := r.Update(ctx, ds); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := ds.DeepCopy()
	cond := newConditions(&ds.Status.CommonStatus, ds.Generation)
	ds.Status.Source = ds.Spec.SourceName()
	ds.Status.Endpoint = ""
	if ds.Spec.SCIM != nil {
		ds.Status.Endpoint = fmt.Sprintf("/scim/v2/%s/%s", ds.Namespace, ds.Name)
	}
	b := r.build(ctx, ds)
	if b.err != nil {
		r.buildFailed(cond, b.err)
		return r.finish(ctx, ds, before, retryAfterBuild(b.err))
	}
	syncer, err := r.Syncers.Ensure(ctx, req.NamespacedName, func() bool { return r.Shards.Owns(ds) }, r.configOf(ds, b))
	if errors.Is(err, errNotOurs) {
		return ctrl.Result{}, nil // its shard went to another replica meanwhile
	}
	if wait, crashed := crashed(cond, err); crashed {
		return r.finish(ctx, ds, before, wait)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if r.exportChanged(ctx, ds, b) {
		syncer.SyncNow()
	}
	r.summarize(ds, syncer.Status(), cond)
	return r.finish(ctx, ds, before, recheckSecrets(b.secrets))
}

func (r *DirectorySyncReconciler) finish(ctx context.Context, ds, before *identityv1alpha1.DirectorySync, requeue time.Duration) (ctrl.Result, error) {
	ds.Status.ObservedGeneration = ds.Generation
	if err := patchStatus(ctx, r.Client, ds, before, ds.Status, before.Status); err != nil {
		return ctrl.Result{}, err
	}
	if e, ok := syncNews(before, ds); ok {
		r.Notify.Publish(e)
	}
	reportConditions("DirectorySync", client.ObjectKeyFromObject(ds), ds.Status.Conditions)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// finalize stops the DirectorySync's syncer and lets its Users and Roles go by its
// deletionPolicy: Orphan releases them, Delete deletes them within the safety threshold
// (beyond it the DirectorySync stays, Stalled, until the deletion is approved).
func (r *DirectorySyncReconciler) finalize(ctx context.Context, ds *identityv1alpha1.DirectorySync) (ctrl.Result, error) {
	r.forget(types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name})
	if !controllerutil.ContainsFinalizer(ds, identityv1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	written, err := r.written(ctx, ds)
	if err != nil {
		return ctrl.Result{}, err
	}
	if ds.Spec.DeletionPolicy == identityv1alpha1.DeletionDelete {
		if wait, err := r.deleteWritten(ctx, ds, written); err != nil || wait != nil {
			return *wait, err
		}
	} else if err := r.release(ctx, ds, written); err != nil {
		return ctrl.Result{}, err
	}
	controllerutil.RemoveFinalizer(ds, identityv1alpha1.Finalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, ds))
}

// written lists the Users and Roles a DirectorySync wrote that are not being deleted.
func (r *DirectorySyncReconciler) written(ctx context.Context, ds *identityv1alpha1.DirectorySync) ([]client.Object, error) {
	mine := []client.ListOption{client.InNamespace(ds.Namespace), client.MatchingLabels{directory.LabelDirectorySync: ds.Name}}
	var users identityv1alpha1.UserList
	if err := r.List(ctx, &users, mine...); err != nil {
		return nil, err
	}
	var roles identityv1alpha1.RoleList
	if err := r.List(ctx, &roles, mine...); err != nil {
		return nil, err
	}
	var out []client.Object
	for i := range users.Items {
		if users.Items[i].DeletionTimestamp == nil {
			out = append(out, &users.Items[i])
		}
	}
	for i := range roles.Items {
		if roles.Items[i].DeletionTimestamp == nil {
			out = append(out, &roles.Items[i])
		}
	}
	return out, nil
}

// release makes the Users and Roles a deleted DirectorySync wrote its no longer: they
// stay, without its label and without an owner reference to it.
func (r *DirectorySyncReconciler) release(ctx context.Context, ds *identityv1alpha1.DirectorySync, written []client.Object) error {
	for _, obj := range written {
		before := obj.DeepCopyObject().(client.Object)
		labels := obj.GetLabels()
		delete(labels, directory.LabelDirectorySync)
		obj.SetLabels(labels)
		var refs []metav1.OwnerReference
		for _, ref := range obj.GetOwnerReferences() {
			if ref.UID != ds.UID {
				refs = append(refs, ref)
			}
		}
		obj.SetOwnerReferences(refs)
		if err := r.Patch(ctx, obj, client.MergeFrom(before)); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("releasing %s: %w", obj.GetName(), err)
		}
	}
	if len(written) > 0 {
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, identityv1alpha1.EventOrphaned, "Delete",
			"Released %d Users and Roles (deletionPolicy Orphan): they stay, owned by no DirectorySync", len(written))
	}
	return nil
}

// deleteWritten deletes the Users and Roles a deleted DirectorySync wrote, unless the
// Users, with those suspended or deleted within the safety window, exceed the
// threshold and the deletion is not approved: then it returns how long to wait.
func (r *DirectorySyncReconciler) deleteWritten(ctx context.Context, ds *identityv1alpha1.DirectorySync, written []client.Object) (*ctrl.Result, error) {
	var users []string
	for _, obj := range written {
		if _, ok := obj.(*identityv1alpha1.User); ok {
			users = append(users, obj.GetName())
		}
	}
	sort.Strings(users)
	now := time.Now()
	window := safety.NewWindow(ds.Spec.SafetyThreshold.WindowOrDefault(), ds.Status.RecentDeprovisions)
	made, id := window.Count(now), safety.PlanID(users)
	before := ds.DeepCopy()
	cond := newConditions(&ds.Status.CommonStatus, ds.Generation)
	var maxCount, maxPercent *int32
	if t := ds.Spec.SafetyThreshold; t != nil {
		maxCount, maxPercent = t.MaxCount, t.MaxPercent
	}
	if len(users) > 0 && safety.Exceeds(made+len(users), len(users)+made, maxCount, maxPercent) && ds.Annotations[identityv1alpha1.AnnotationApprovePlan] != id {
		msg := fmt.Sprintf("deleting this DirectorySync would delete its %d Users (deletionPolicy Delete), with %d already suspended or deleted in the last %s, over the safety threshold; "+
			"none was deleted. Approve it with: %s, or set deletionPolicy: Orphan to keep them",
			len(users), made, window.Span(), fmt.Sprintf(identityv1alpha1.ApproveCommand, "directorysync", ds.Name, id))
		cond.stalled(identityv1alpha1.ReasonSafetyThresholdExceeded, msg)
		if !meta.IsStatusConditionTrue(before.Status.Conditions, identityv1alpha1.ConditionStalled) {
			r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, identityv1alpha1.ReasonSafetyThresholdExceeded, "Delete", "%s", msg)
		}
		wait := time.Duration(0)
		if made > 0 {
			wait = time.Until(window.NextExpiry())
		}
		res, err := r.finish(ctx, ds, before, wait)
		return &res, err
	}
	for _, obj := range written {
		if err := r.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
			return &ctrl.Result{}, fmt.Errorf("deleting %s: %w", obj.GetName(), err)
		}
	}
	window.Add(now, len(users))
	ds.Status.RecentDeprovisions = window.Counted(now)
	if err := patchStatus(ctx, r.Client, ds, before, ds.Status, before.Status); client.IgnoreNotFound(err) != nil {
		return &ctrl.Result{}, err
	}
	if len(written) > 0 {
		r.Recorder.Eventf(ds, nil, corev1.EventTypeNormal, identityv1alpha1.EventDeleted, "Delete", "Deleted %d Users and Roles (deletionPolicy Delete)", len(written))
	}
	return nil, nil
}

func (r *DirectorySyncReconciler) forget(key types.NamespacedName) {
	r.letGo(key)
	if r.Inbound != nil {
		r.Inbound.Forget(key)
	}
}

// letGo stops a DirectorySync's syncer and forgets what was built for it.
func (r *DirectorySyncReconciler) letGo(key types.NamespacedName) {
	forgetConditions("DirectorySync", key)
	r.Syncers.Stop(key)
	r.mu.Lock()
	delete(r.built, key)
	r.mu.Unlock()
}

// build makes the DirectorySync's source and compiles its mapping and filter, once per
// generation and set of Secret versions.
func (r *DirectorySyncReconciler) build(ctx context.Context, ds *identityv1alpha1.DirectorySync) *builtSource {
	key := types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}
	r.mu.Lock()
	prev := r.built[key]
	r.mu.Unlock()
	if prev != nil && prev.generation == ds.Generation && secretsUnchanged(ctx, r.APIReader, ds.Namespace, prev.secrets) {
		return prev
	}
	b := &builtSource{generation: ds.Generation}
	refs := newSecretReader(r.APIReader, ds.Namespace)
	b.secrets = refs.versions
	b.err = func() error {
		kind := ds.Spec.SourceName()
		var err error
		if b.mapping, b.filter, err = recordRules(kind, ds.Spec.Mapping, ds.Spec.Filter); err != nil {
			return err
		}
		factory, err := r.Registry.Source(kind)
		if err != nil {
			return fmt.Errorf("%w: %v", errInvalidSpec, err)
		}
		b.source, err = factory(ctx, ds, refs)
		return err
	}()
	r.mu.Lock()
	if r.built == nil {
		r.built = map[types.NamespacedName]*builtSource{}
	}
	r.built[key] = b
	r.mu.Unlock()
	return b
}

// recordRules compiles a DirectorySync's mapping, over its source's defaults, and its
// filter (nil when empty).
func recordRules(source string, mappings []identityv1alpha1.ExpressionMapping, filter string) (*mapping.Mappings, *mapping.Program, error) {
	env, err := mapping.NewEnv("record")
	if err != nil {
		return nil, nil, err
	}
	compiled, err := env.CompileMappings(directory.DefaultMapping(source), mappings)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errInvalidSpec, err)
	}
	if filter == "" {
		return compiled, nil, nil
	}
	program, err := env.Compile(filter)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: filter does not compile: %v", errInvalidSpec, err)
	}
	return compiled, program, nil
}

func (r *DirectorySyncReconciler) buildFailed(cond conditions, err error) {
	switch {
	case errors.Is(err, connectors.ErrSecretNotFound):
		cond.stalled(identityv1alpha1.ReasonSecretNotFound, err.Error())
	case errors.Is(err, errInvalidSpec) || connectors.IsPermanent(err):
		cond.stalled(identityv1alpha1.ReasonInvalidSpec, err.Error())
	default:
		cond.notReady(identityv1alpha1.ReasonConnectorError, err.Error())
	}
}

func (r *DirectorySyncReconciler) configOf(ds *identityv1alpha1.DirectorySync, b *builtSource) directory.Config {
	s := ds.Spec
	cfg := directory.Config{
		Name: ds.Name, Namespace: ds.Namespace, UID: ds.UID, Generation: ds.Generation,
		Source: b.source, Mapping: b.mapping, Filter: b.filter,
		Interval:       15 * time.Minute,
		VanishedAction: s.VanishedUsers.Action,
		ApprovedPlan:   ds.Annotations[identityv1alpha1.AnnotationApprovePlan],
		PlanApprover:   ds.Annotations[identityv1alpha1.AnnotationPlanApprovedBy],
		ResyncRequest:  ds.Annotations[identityv1alpha1.AnnotationResync],
		Window:         s.SafetyThreshold.WindowOrDefault(),
		Counted:        ds.Status.RecentDeprovisions,
		Finalizers:     func() []string { return r.shardFinalizers(ds.Namespace) },
	}
	if s.Interval != nil {
		cfg.Interval = s.Interval.Duration
	}
	if s.VanishedUsers.DeleteAfter != nil {
		cfg.DeleteAfter = s.VanishedUsers.DeleteAfter.Duration
	}
	if t := s.SafetyThreshold; t != nil {
		cfg.MaxCount, cfg.MaxPercent = t.MaxCount, t.MaxPercent
	}
	if m := s.MirrorGroupsAsRoles; m != nil {
		prefix := m.NamePrefix
		cfg.MirrorPrefix = &prefix
	}
	return cfg
}

// shardFinalizers are the finalizers of the shards, other than the main one, that run
// an AppConnection of a namespace: each waits for its apps before a User goes.
func (r *DirectorySyncReconciler) shardFinalizers(namespace string) []string {
	var conns identityv1alpha1.AppConnectionList
	if err := r.List(context.Background(), &conns, client.InNamespace(namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	all := make([]*identityv1alpha1.AppConnection, len(conns.Items))
	for i := range conns.Items {
		all[i] = &conns.Items[i]
	}
	return r.Shards.finalizersOf(all)
}

// summarize puts the syncer's state into the DirectorySync's status.
func (r *DirectorySyncReconciler) summarize(ds *identityv1alpha1.DirectorySync, st directory.Status, cond conditions) {
	before := ds.Status.DeepCopy()
	ds.Status.Counts = st.Counts
	ds.Status.SkippedReasons = st.Skipped
	ds.Status.Users = int32(st.Users)
	ds.Status.RecentDeprovisions = st.RecentDeprovisions
	r.announceHeldSuspensions(ds, before.HeldSuspensions, st.HeldSuspensions)
	r.announceProblems(ds, before, st)
	source := ds.Spec.SourceName()
	switch {
	case st.Err != nil:
		connectorFailed(cond, st.Err)
	case !st.Synced && st.Records > 0:
		cond.progressing(identityv1alpha1.ReasonProgressing, fmt.Sprintf("%d %s records read; %d of their Users in step so far", st.Records, source, st.InStep))
	case !st.Synced:
		cond.progressing(identityv1alpha1.ReasonProgressing, "reading the "+source+" source")
	case st.Blocked:
		cond.stalled(identityv1alpha1.ReasonSafetyThresholdExceeded, st.BlockedMessage)
	default:
		msg := fmt.Sprintf("%d Users from %d %s records", st.Users, st.Records, source)
		if st.ProblemCount > 0 {
			msg += "; " + problemSummary(st.ProblemCount, st.Problems)
		}
		if n := len(st.HeldSuspensions); n > 0 {
			msg += fmt.Sprintf("; %d suspended by a person and held against the source (status.heldSuspensions)", n)
		}
		cond.ready(identityv1alpha1.ReasonReconciled, msg)
	}
	// The sync time is written with other changes, not on its own: a full sync that
	// changes nothing writes nothing (roster_directory_last_sync_timestamp_seconds is
	// always current).
	if !st.LastSync.IsZero() && (ds.Status.LastSyncTime == nil || !syncStatusEqual(before, &ds.Status)) {
		t := metav1.NewTime(st.LastSync.Truncate(time.Second))
		d := metav1.Duration{Duration: st.LastDuration.Round(time.Millisecond)}
		ds.Status.LastSyncTime, ds.Status.LastSyncDuration = &t, &d
	}
}

// announceProblems records the source records with problems in status and, when they
// change, says so in an Event for the people who keep the source.
func (r *DirectorySyncReconciler) announceProblems(ds *identityv1alpha1.DirectorySync, before *identityv1alpha1.DirectorySyncStatus, st directory.Status) {
	ds.Status.Problems, ds.Status.ProblemCount = st.Problems, int32(st.ProblemCount)
	if st.ProblemCount == 0 || (before.ProblemCount == ds.Status.ProblemCount && equalJSON(before.Problems, ds.Status.Problems)) || r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, identityv1alpha1.EventSourceProblems, "Sync", "%s", problemSummary(st.ProblemCount, st.Problems))
}

// problemSummary counts source problems by reason, naming the first records.
func problemSummary(total int, listed []identityv1alpha1.RecordProblem) string {
	counts := map[string]int{}
	var reasons, examples []string
	for _, p := range listed {
		if counts[p.Reason] == 0 {
			reasons = append(reasons, p.Reason)
		}
		counts[p.Reason]++
		if len(examples) < 5 {
			examples = append(examples, p.Reason+" "+p.Record)
		}
	}
	parts := make([]string, len(reasons))
	for i, reason := range reasons {
		parts[i] = fmt.Sprintf("%s %d", reason, counts[reason])
	}
	return fmt.Sprintf("%d source records have problems (%s; for example %s): see status.problems and fix them at the source",
		total, strings.Join(parts, ", "), strings.Join(examples, ", "))
}

// announceHeldSuspensions records the suspensions held against the source in status (at
// most 100 listed) and says, in an Event, which are newly held.
func (r *DirectorySyncReconciler) announceHeldSuspensions(ds *identityv1alpha1.DirectorySync, before, now []string) {
	was := map[string]bool{}
	for _, name := range before {
		was[name] = true
	}
	for _, name := range now {
		if !was[name] && r.Recorder != nil {
			r.Recorder.Eventf(ds, nil, corev1.EventTypeWarning, identityv1alpha1.EventSuspensionHeld, "Sync",
				"User %s was suspended by a person while the source has it active; it stays suspended until a person sets spec.state to Active", name)
		}
	}
	if len(now) > 100 {
		now = now[:100]
	}
	ds.Status.HeldSuspensions = now
}

// syncStatusEqual compares two statuses but for their sync times.
func syncStatusEqual(a, b *identityv1alpha1.DirectorySyncStatus) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	x.LastSyncTime, y.LastSyncTime, x.LastSyncDuration, y.LastSyncDuration = nil, nil, nil, nil
	return equalJSON(x, y)
}

// SetupWithManager watches DirectorySyncs, the Secrets and ConfigMaps they read, and
// the syncers' news.
func (r *DirectorySyncReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.ownWrites = newOwnWrites()
	return ctrl.NewControllerManagedBy(mgr).
		For(&identityv1alpha1.DirectorySync{}, builder.WithPredicates(r.ownWrites.or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.syncsOfConfigMap)).
		WatchesRawSource(source.Channel(r.Syncers.events, coalesced(countsEvery))).
		Complete(r)
}

// syncsOfConfigMap maps a changed ConfigMap to the DirectorySyncs that read their HR
// export from it.
func (r *DirectorySyncReconciler) syncsOfConfigMap(ctx context.Context, obj client.Object) []reconcile.Request {
	var list identityv1alpha1.DirectorySyncList
	if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{indexConfigMaps: obj.GetName()}); err != nil {
		return nil
	}
	return requestsFor(list.Items)
}

// exportChanged reports whether the ConfigMap holding a DirectorySync's HR export
// changed since the last reconcile looked, so that its syncer reads it at once rather
// than at the next interval.
func (r *DirectorySyncReconciler) exportChanged(ctx context.Context, ds *identityv1alpha1.DirectorySync, b *builtSource) bool {
	h := ds.Spec.HRIS
	if h == nil || h.ConfigMapRef == nil {
		return false
	}
	cm := &metav1.PartialObjectMetadata{}
	cm.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	version := "absent"
	if err := r.Get(ctx, types.NamespacedName{Namespace: ds.Namespace, Name: h.ConfigMapRef.Name}, cm); err == nil {
		version = cm.ResourceVersion
	} else if !apierrors.IsNotFound(err) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := b.exportVersion
	b.exportVersion = version
	return seen != "" && seen != version
}

func requestsFor(items []identityv1alpha1.DirectorySync) []reconcile.Request {
	reqs := make([]reconcile.Request, len(items))
	for i, ds := range items {
		reqs[i] = reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ds.Namespace, Name: ds.Name}}
	}
	return reqs
}
