package controllers

import (
	"context"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// addFinalizers has the main replica put on a User, in one write, its own finalizer and
// that of every other shard with an app in the User's namespace, so that a deleted User
// stays until each has let it go. Other replicas put none on: on three replicas the
// leader, busiest with Users, came to most of them last, and each replica adding its
// own made a new User three racing writes.
func (r *UserReconciler) addFinalizers(ctx context.Context, u *identityv1alpha1.User, apps map[string]app, main bool) error {
	if !main || u.DeletionTimestamp != nil {
		return nil
	}
	conns := make([]*identityv1alpha1.AppConnection, 0, len(apps))
	for _, a := range apps {
		conns = append(conns, a.conn)
	}
	added := false
	for _, f := range append([]string{identityv1alpha1.Finalizer}, r.Shards.finalizersOf(conns)...) {
		added = controllerutil.AddFinalizer(u, f) || added
	}
	if !added {
		return nil
	}
	return r.Update(ctx, u)
}

// removeFinalizers takes off a deleted User the finalizers of the shards this replica
// runs whose apps are done with the User, and, once the main shard's work is settled,
// the main finalizer with those of shards that no longer run any app of the namespace.
func (r *UserReconciler) removeFinalizers(ctx context.Context, u *identityv1alpha1.User, apps map[string]app, mainSettled bool) error {
	removed := false
	for _, shard := range r.Shards.running() {
		if !shard.main() && len(r.waitingFor(apps, shard)) == 0 && controllerutil.RemoveFinalizer(u, shard.finalizer()) {
			removed = true
		}
	}
	if mainSettled {
		for _, f := range append(r.staleShardFinalizers(u, apps), identityv1alpha1.Finalizer) {
			if controllerutil.RemoveFinalizer(u, f) {
				removed = true
			}
		}
	}
	if !removed {
		return nil
	}
	return client.IgnoreNotFound(r.Update(ctx, u))
}

// patchStatus writes a User's status. While other shards write their apps' accounts
// into it too, the write is refused (a conflict) if the User changed since it was read,
// so that no shard puts back what another just wrote.
func (r *UserReconciler) patchStatus(ctx context.Context, u, before *identityv1alpha1.User, apps map[string]app) error {
	alone := r.Shards.main()
	for _, a := range apps {
		alone = alone && r.Shards.Owns(a.conn)
	}
	patch := statusPatch(before, u.Status, before.Status, !alone)
	// A User being deleted takes the whole answer: its finalizers' write follows from it.
	if patch == nil || u.DeletionTimestamp != nil {
		return sendStatus(ctx, r.Client, u, patch)
	}
	return patchUserStatusForMetadata(ctx, r.Client, u, patch)
}

// patchUserStatusForMetadata writes a User's status and has the API server answer with
// the User's metadata alone, which it takes (the resourceVersion its own write made,
// for ownWrites): the status is the one sent, and the spec is as read, so it is for a
// reconcile that writes the User no more. A User's status is the write made most often
// (once or more per User in every sync), and encoding and decoding the whole User in
// the answer cost the API server and the operator more than the write.
func patchUserStatusForMetadata(ctx context.Context, c client.Client, u *identityv1alpha1.User, patch client.Patch) error {
	data, err := patch.Data(u)
	if err != nil {
		return err
	}
	answer := &metav1.PartialObjectMetadata{}
	answer.SetGroupVersionKind(identityv1alpha1.GroupVersion.WithKind("User"))
	answer.Namespace, answer.Name = u.Namespace, u.Name
	if err := c.Status().Patch(ctx, answer, client.RawPatch(patch.Type(), data)); err != nil {
		return err
	}
	u.ObjectMeta = answer.ObjectMeta
	return nil
}

// otherShardsWrote passes, to the main shard, an update of a User's accounts in apps
// other shards run: its Ready condition counts them, and the other shards' status
// writes are no change of spec it would otherwise see.
func (r *UserReconciler) otherShardsWrote(cache client.Reader) predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*identityv1alpha1.User)
		n, ok2 := e.ObjectNew.(*identityv1alpha1.User)
		if !r.Shards.main() || !ok1 || !ok2 {
			return false
		}
		for _, app := range changedAccounts(o.Status.Accounts, n.Status.Accounts) {
			conn := &identityv1alpha1.AppConnection{}
			err := cache.Get(context.Background(), types.NamespacedName{Namespace: n.Namespace, Name: app}, conn, client.UnsafeDisableDeepCopy)
			if err == nil && !r.Shards.Owns(conn) {
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

// waitingFor says what this replica's engines (of one shard, or of all for "")
// still wait for before they are done with a User going away, app by app.
func (r *UserReconciler) waitingFor(apps map[string]app, shard Shard) []string {
	var waiting []string
	for _, name := range sortedApps(apps) {
		a := apps[name]
		if a.engine != nil && a.view.Waiting != "" && (shard.main() || r.Shards.of(a.conn) == shard) {
			waiting = append(waiting, a.view.Waiting)
		}
	}
	return waiting
}

// shardsDeprovisioning are the shards, other than those this replica runs, whose
// finalizer a User still carries and that still run an app of its namespace.
func (r *UserReconciler) shardsDeprovisioning(u *identityv1alpha1.User, apps map[string]app) []Shard {
	var out []Shard
	for _, shard := range shardFinalizers(u) {
		if !r.Shards.runs(shard) && r.shardHasApps(shard, apps) {
			out = append(out, shard)
		}
	}
	return out
}

// staleShardFinalizers are the finalizers of shards that run no app of the User's
// namespace any more (their apps moved or went): nothing of theirs is left to wait for.
func (r *UserReconciler) staleShardFinalizers(u *identityv1alpha1.User, apps map[string]app) []string {
	var out []string
	for _, shard := range shardFinalizers(u) {
		if !r.shardHasApps(shard, apps) {
			out = append(out, shard.finalizer())
		}
	}
	return out
}

// shardFinalizers are the named shards whose finalizer a User carries.
func shardFinalizers(u *identityv1alpha1.User) []Shard {
	var out []Shard
	for _, f := range u.Finalizers {
		if name, ok := strings.CutPrefix(f, identityv1alpha1.ShardFinalizerPrefix); ok {
			out = append(out, Shard(name))
		}
	}
	return out
}

func (r *UserReconciler) shardHasApps(shard Shard, apps map[string]app) bool {
	for _, a := range apps {
		if r.Shards.of(a.conn) == shard {
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
