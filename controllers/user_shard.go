package controllers

import (
	"context"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// conflictRetry is how soon a reconcile that lost a write to another replica's looks
// again, once its cache has the other write.
const conflictRetry = 50 * time.Millisecond

// retryOnConflict turns a conflict (another shard wrote the object first) into a
// quick retry rather than an error and its backoff.
func retryOnConflict(res ctrl.Result, err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	return res, err
}

// writeShardAccounts is a named shard's part of a User's reconcile: its apps' accounts
// in the status, and its finalizer, kept while its engines may hold an account of the
// User and removed once they are done with it.
func (r *UserReconciler) writeShardAccounts(ctx context.Context, u *identityv1alpha1.User) (ctrl.Result, error) {
	finalizer := r.Shard.finalizer()
	apps, err := r.appsOf(ctx, u.Namespace, u.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	if u.DeletionTimestamp == nil && runsAny(apps) && controllerutil.AddFinalizer(u, finalizer) {
		if err := r.Update(ctx, u); err != nil {
			return ctrl.Result{}, err
		}
	}
	before := u.DeepCopy()
	stops := r.Engines.stops.Load()
	u.Status.Accounts = r.accounts(u, apps)
	key := client.ObjectKeyFromObject(u)
	if wait := r.progress.hold(key, before, u, time.Now()); wait > 0 && !equalJSON(u.Status, before.Status) {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	if err := patchStatusLocked(ctx, r.Client, u, before, u.Status, before.Status); err != nil {
		return ctrl.Result{}, err
	}
	if r.Engines.stops.Load() != stops {
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil
	}
	if u.DeletionTimestamp != nil && controllerutil.ContainsFinalizer(u, finalizer) && len(waitingFor(apps)) == 0 {
		controllerutil.RemoveFinalizer(u, finalizer)
		return ctrl.Result{}, client.IgnoreNotFound(r.Update(ctx, u))
	}
	return ctrl.Result{}, nil
}

// patchStatus writes a User's status. While other shards write their apps' accounts
// into it too, the write is refused (a conflict) if the User changed since it was read,
// so that no shard puts back what another just wrote.
func (r *UserReconciler) patchStatus(ctx context.Context, u, before *identityv1alpha1.User, apps map[string]app) error {
	for _, a := range apps {
		if !r.Shard.owns(a.conn) {
			return patchStatusLocked(ctx, r.Client, u, before, u.Status, before.Status)
		}
	}
	return patchStatus(ctx, r.Client, u, before, u.Status, before.Status)
}

// otherShardsWrote passes, to the main shard, an update of a User's accounts in apps
// other shards run: its Ready condition counts them, and the other shards' status
// writes are no change of spec it would otherwise see.
func (r *UserReconciler) otherShardsWrote(cache client.Reader) predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*identityv1alpha1.User)
		n, ok2 := e.ObjectNew.(*identityv1alpha1.User)
		if !r.Shard.main() || !ok1 || !ok2 {
			return false
		}
		for _, app := range changedAccounts(o.Status.Accounts, n.Status.Accounts) {
			conn := &identityv1alpha1.AppConnection{}
			err := cache.Get(context.Background(), types.NamespacedName{Namespace: n.Namespace, Name: app}, conn, client.UnsafeDisableDeepCopy)
			if err == nil && !r.Shard.owns(conn) {
				return true
			}
		}
		return false
	}}
}

// changedAccounts are the apps whose account entry differs between two statuses.
func changedAccounts(before, after []identityv1alpha1.UserAccount) []string {
	was := make(map[string]identityv1alpha1.UserAccount, len(before))
	for _, a := range before {
		was[a.App] = a
	}
	var out []string
	for _, a := range after {
		if b, ok := was[a.App]; !ok || b.State != a.State || b.Message != a.Message || b.ExternalID != a.ExternalID {
			out = append(out, a.App)
		}
		delete(was, a.App)
	}
	for app := range was {
		out = append(out, app)
	}
	return out
}

// runsAny says whether this replica runs an engine among a namespace's apps.
func runsAny(apps map[string]app) bool {
	for _, a := range apps {
		if a.engine != nil {
			return true
		}
	}
	return false
}

// waitingFor says what this replica's engines still wait for before they are done
// with a User going away, app by app.
func waitingFor(apps map[string]app) []string {
	var waiting []string
	for _, name := range sortedApps(apps) {
		if a := apps[name]; a.engine != nil && a.view.Waiting != "" {
			waiting = append(waiting, a.view.Waiting)
		}
	}
	return waiting
}

// shardsDeprovisioning are the named shards whose finalizer a User still carries and
// that still run an app of its namespace.
func shardsDeprovisioning(u *identityv1alpha1.User, apps map[string]app) []Shard {
	var out []Shard
	for _, f := range u.Finalizers {
		if name, ok := strings.CutPrefix(f, identityv1alpha1.ShardFinalizerPrefix); ok && shardHasApps(Shard(name), apps) {
			out = append(out, Shard(name))
		}
	}
	return out
}

// staleShardFinalizers are the finalizers of shards that run no app of the User's
// namespace any more (their apps moved or went): nothing of theirs is left to wait for.
func staleShardFinalizers(u *identityv1alpha1.User, apps map[string]app) []string {
	var out []string
	for _, f := range u.Finalizers {
		if name, ok := strings.CutPrefix(f, identityv1alpha1.ShardFinalizerPrefix); ok && !shardHasApps(Shard(name), apps) {
			out = append(out, f)
		}
	}
	return out
}

func shardHasApps(s Shard, apps map[string]app) bool {
	for _, a := range apps {
		if s.owns(a.conn) {
			return true
		}
	}
	return false
}

// accountState is the state a User's status records for its account in an app.
func accountState(u *identityv1alpha1.User, app string) identityv1alpha1.AccountState {
	i := slices.IndexFunc(u.Status.Accounts, func(a identityv1alpha1.UserAccount) bool { return a.App == app })
	if i < 0 {
		return ""
	}
	return u.Status.Accounts[i].State
}
