package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/event"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/notify"
	"github.com/rosterhq/roster/test/testenv"
)

// laggingUsers serves Users as a cache that has not yet seen the latest writes: the
// copy it holds, while it holds one.
type laggingUsers struct {
	mu   sync.Mutex
	held *identityv1alpha1.User
}

func (l *laggingUsers) hold(u *identityv1alpha1.User) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = u
}

func (l *laggingUsers) get(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	l.mu.Lock()
	held := l.held
	l.mu.Unlock()
	if u, ok := obj.(*identityv1alpha1.User); ok && held != nil && client.ObjectKeyFromObject(held) == key {
		held.DeepCopyInto(u)
		return nil
	}
	return c.Get(ctx, key, obj, opts...)
}

// TestAUserReconcileWaitsForTheCacheToHoldItsOwnWrite: a reconcile writes a User's
// status (not yet active: its activeFrom is ahead), and the next one, once activeFrom
// has passed, reads the User from a cache that has not seen that write. Computing from
// the stale copy would find little to change and leave the written phase Pending for
// good, as a User was once left converging in an app that had long finished; the
// reconcile waits for the cache instead, the write's arrival in the cache queues the
// User again, and it turns Active.
func TestAUserReconcileWaitsForTheCacheToHoldItsOwnWrite(t *testing.T) {
	// An API server of its own: the suite's operator reconciles every User of its own
	// and would write the right status over the one this test watches for.
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	live, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	cache := &laggingUsers{}
	membership, err := NewMembership()
	if err != nil {
		t.Fatal(err)
	}
	r := &UserReconciler{
		Client:  interceptor.NewClient(live, interceptor.Funcs{Get: cache.get}),
		Engines: NewEngines(live, nil, membership, logr.Discard()), Notify: notify.NewHub(), Membership: membership,
		Shards: NewSharding(MainShard, 0), progress: newProgressThrottle(), ownWrites: newOwnWrites(),
	}
	ns := env.Namespace(t)
	u := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}, Spec: identityv1alpha1.UserSpec{UserName: "ada"}}
	env.Create(t, u)
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(u)}
	reconcile := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	phase := func() identityv1alpha1.UserPhase {
		t.Helper()
		if err := live.Get(ctx, req.NamespacedName, u); err != nil {
			t.Fatal(err)
		}
		return u.Status.Phase
	}
	reconcile()
	if p := phase(); p != identityv1alpha1.UserPhaseActive {
		t.Fatalf("phase %q after the first reconcile, want Active", p)
	}

	activeFrom := metav1.NewTime(time.Now().Add(time.Second).Truncate(time.Second).Add(time.Second))
	u.Spec.ActiveFrom = &activeFrom
	if err := live.Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	cache.hold(u.DeepCopy()) // the cache gets the new spec, and nothing after it
	reconcile()
	if p := phase(); p != identityv1alpha1.UserPhasePending {
		t.Fatalf("phase %q before activeFrom, want Pending", p)
	}
	written := u.ResourceVersion

	time.Sleep(time.Until(activeFrom.Time)) // activeFrom passes
	reconcile()
	if err := live.Get(ctx, req.NamespacedName, u); err != nil {
		t.Fatal(err)
	}
	if u.ResourceVersion != written {
		t.Errorf("a reconcile that read the User from a cache behind its own last write wrote it (resourceVersion %s, then %s)", written, u.ResourceVersion)
	}
	stale := u.DeepCopy()
	stale.ResourceVersion = "1"
	if !r.ownWrites.arrived().Update(event.UpdateEvent{ObjectOld: stale, ObjectNew: u}) {
		t.Error("the write a reconcile waits for, reaching the cache, does not queue the User again")
	}
	cache.hold(nil) // the cache catches up
	reconcile()
	if p := phase(); p != identityv1alpha1.UserPhaseActive {
		t.Fatalf("phase %q once activeFrom has passed and the cache has caught up, want Active", p)
	}
	if r.ownWrites.arrived().Update(event.UpdateEvent{ObjectOld: stale, ObjectNew: u}) {
		t.Error("a write no reconcile waits for queues the User again")
	}
}

// TestEveryStatusReconcilerWaitsForTheCacheToHoldItsOwnWrite: each reconciler that
// computes a status from its cache (and skips a write equal to the cached one), reading
// an object older than its own last write to it, writes nothing and waits for the write,
// whose arrival in the cache queues the object again.
func TestEveryStatusReconcilerWaitsForTheCacheToHoldItsOwnWrite(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	ns := env.Namespace(t)
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	for _, c := range []struct {
		obj       client.Object
		reconcile func(*ownWrites) func(context.Context, ctrl.Request) (ctrl.Result, error)
	}{
		{&identityv1alpha1.AppConnection{ObjectMeta: meta("app"), Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}}},
			func(w *ownWrites) func(context.Context, ctrl.Request) (ctrl.Result, error) {
				return (&AppConnectionReconciler{Client: env.Client, ownWrites: w}).Reconcile
			}},
		{&identityv1alpha1.AppAssignment{ObjectMeta: meta("grant"), Spec: identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: "ada"}, App: "app"}},
			func(w *ownWrites) func(context.Context, ctrl.Request) (ctrl.Result, error) {
				return (&AppAssignmentReconciler{Client: env.Client, ownWrites: w}).Reconcile
			}},
		{&identityv1alpha1.Role{ObjectMeta: meta("eng"), Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Users: []string{"ada"}}}},
			func(w *ownWrites) func(context.Context, ctrl.Request) (ctrl.Result, error) {
				return (&RoleReconciler{Client: env.Client, ownWrites: w}).Reconcile
			}},
		{&identityv1alpha1.DirectorySync{ObjectMeta: meta("idp"), Spec: identityv1alpha1.DirectorySyncSpec{SCIM: &identityv1alpha1.SCIMSource{TokenSecretRef: identityv1alpha1.SecretKeySelector{Name: "idp", Key: "token"}}}},
			func(w *ownWrites) func(context.Context, ctrl.Request) (ctrl.Result, error) {
				return (&DirectorySyncReconciler{Client: env.Client, ownWrites: w}).Reconcile
			}},
		{&identityv1alpha1.Notifier{ObjectMeta: meta("hook"), Spec: identityv1alpha1.NotifierSpec{Webhook: &identityv1alpha1.WebhookChannel{URL: "https://hooks.example.com/roster", SigningSecretRef: identityv1alpha1.LocalObjectReference{Name: "hook"}}}},
			func(w *ownWrites) func(context.Context, ctrl.Request) (ctrl.Result, error) {
				return (&NotifierReconciler{Client: env.Client, ownWrites: w}).Reconcile
			}},
	} {
		kind := fmt.Sprintf("%T", c.obj)
		env.Create(t, c.obj)
		read := c.obj.GetResourceVersion()
		// The reconciler's last write is ahead of what its cache (here the API server,
		// as it was read) holds.
		ahead := c.obj.DeepCopyObject().(client.Object)
		ahead.SetResourceVersion(read + "0")
		w := newOwnWrites()
		w.wrote(ahead, read)
		res, err := c.reconcile(w)(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(c.obj)})
		if err != nil || res != waitForOwnWrite {
			t.Errorf("%s read behind its own last write: reconcile returned %+v, %v; want it to wait for the write", kind, res, err)
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(c.obj), c.obj); err != nil {
			t.Fatal(err)
		}
		if c.obj.GetResourceVersion() != read {
			t.Errorf("%s read behind its own last write was written (resourceVersion %s, then %s)", kind, read, c.obj.GetResourceVersion())
		}
		if !w.arrived().Update(event.UpdateEvent{ObjectOld: c.obj, ObjectNew: ahead}) {
			t.Errorf("the write a %s reconcile waits for, reaching the cache, does not queue it again", kind)
		}
	}
}
