package controllers

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/httpx"
	"github.com/rosterhq/roster/controllers/engine"
)

// Engines runs one engine per AppConnection for as long as the manager (and its leader
// election) runs, and carries the engines' news to the controllers.
type Engines struct {
	cache    client.Reader
	recorder recorder.EventRecorder
	log      logr.Logger

	running *workers[*engine.Engine]
	// stops counts the engines stopped, so that a User reconcile that saw an engine can
	// tell, after writing the User's status, that it may have written a stopped app's
	// account.
	stops atomic.Uint64

	// Channels the controllers watch.
	userEvents       chan event.GenericEvent
	stopped          chan struct{} // closed once Start returns
	appEvents        chan event.GenericEvent
	assignmentEvents chan event.GenericEvent
	membership       *Membership
	// shards is the part of the work this replica does (nil: all of it).
	shards *Sharding

	// userEventBudgets: each namespace's budget for Events about single Users, shared
	// by its engines.
	budgetsMu        sync.Mutex
	userEventBudgets map[string]*rate.Limiter
}

// NewEngines returns an empty set of engines reading Users, Roles and AppAssignments
// from cache: the manager's informer cache, whose indexes they read without copies, or
// any reader.
func NewEngines(cache client.Reader, rec recorder.EventRecorder, membership *Membership, log logr.Logger) *Engines {
	es := &Engines{
		cache: cache, recorder: rec, membership: membership, log: log,
		userEvents:       make(chan event.GenericEvent, 4096),
		appEvents:        make(chan event.GenericEvent, 256),
		assignmentEvents: make(chan event.GenericEvent, 1024),
		userEventBudgets: map[string]*rate.Limiter{},
		stopped:          make(chan struct{}),
	}
	es.running = newWorkers[*engine.Engine]("engine", log, func(app types.NamespacedName) { es.AppChanged(app.String()) })
	return es
}

// Start runs until ctx ends, then stops every engine. It runs only on the leader.
func (es *Engines) Start(ctx context.Context) error {
	defer close(es.stopped)
	es.running.run(ctx)
	return nil
}

// NeedLeaderElection: only the leader writes to apps.
func (es *Engines) NeedLeaderElection() bool { return true }

// Ensure starts the engine of an AppConnection with cfg, or reconfigures it, while ours
// says its shard is this replica's (errNotOurs when not).
func (es *Engines) Ensure(ctx context.Context, app types.NamespacedName, ours func() bool, cfg engine.Config) (*engine.Engine, error) {
	cfg.UserEvents = es.userEventBudget(app.Namespace)
	return es.running.ensure(ctx, app, ours, func(e *engine.Engine) { e.Configure(cfg) }, func() *engine.Engine {
		subjects := &subjects{cache: es.cache, membership: es.membership, namespace: app.Namespace, app: app.Name}
		return engine.New(cfg, subjects, es, es, es.log.WithValues("appconnection", app.String()))
	})
}

// userEventBudget returns the budget for Events about single Users that the engines of
// a namespace share.
func (es *Engines) userEventBudget(namespace string) *rate.Limiter {
	es.budgetsMu.Lock()
	defer es.budgetsMu.Unlock()
	b := es.userEventBudgets[namespace]
	if b == nil {
		b = engine.NewUserEventBudget()
		es.userEventBudgets[namespace] = b
	}
	return b
}

// Get returns the engine of an AppConnection, nil if it has none.
func (es *Engines) Get(app types.NamespacedName) *engine.Engine {
	e, _ := es.running.get(app)
	return e
}

// Stop stops an AppConnection's engine.
func (es *Engines) Stop(app types.NamespacedName) {
	if es.running.stop(app) {
		es.stops.Add(1)
		engine.ForgetMetrics(app.String())
		httpx.ForgetMetrics(app.String())
	}
}

// StopWhere stops the engines of the AppConnections that match, and has the Users of
// their namespaces reconciled: what they said of those Users is no longer this
// replica's to say.
func (es *Engines) StopWhere(match func(types.NamespacedName) bool) {
	namespaces := map[string]bool{}
	for _, app := range es.running.stopWhere(match) {
		es.stops.Add(1)
		engine.ForgetMetrics(app.String())
		httpx.ForgetMetrics(app.String())
		namespaces[app.Namespace] = true
	}
	for ns := range namespaces {
		go es.reconcileUsers(client.InNamespace(ns))
	}
}

// reconcileUsers has every User (of a namespace) reconciled.
func (es *Engines) reconcileUsers(opts ...client.ListOption) {
	var users identityv1alpha1.UserList
	if err := es.cache.List(context.Background(), &users, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		es.log.Error(err, "Could not list Users to reconcile them")
		return
	}
	for i := range users.Items {
		select {
		case es.userEvents <- event.GenericEvent{Object: &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: users.Items[i].Namespace, Name: users.Items[i].Name}}}:
		case <-es.stopped: // the User controller, which reads them, has stopped too
			return
		}
	}
}

// InNamespace returns the engines of a namespace by AppConnection name.
func (es *Engines) InNamespace(namespace string) map[string]*engine.Engine {
	return es.running.inNamespace(namespace)
}

// UsersChanged (engine.Notifier) reconciles the Users and the AppAssignments whose
// account state changed.
func (es *Engines) UsersChanged(app string, users []string) {
	namespace, appName, _ := strings.Cut(app, "/")
	for _, u := range users {
		es.userEvents <- event.GenericEvent{Object: &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: u}}}
	}
	for _, a := range assignmentsOfApp(context.Background(), es.cache, es.membership, namespace, appName, users) {
		es.assignmentEvents <- event.GenericEvent{Object: &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: a}}}
	}
}

// AppChanged (engine.Notifier) reconciles the AppConnection.
func (es *Engines) AppChanged(app string) {
	namespace, name, _ := strings.Cut(app, "/")
	es.appEvents <- event.GenericEvent{Object: &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}}
}

// User (engine.Events) records an event on a User, related to its AppConnection so that
// events about different apps stay apart.
func (es *Engines) User(app, user, eventType, reason, message string) {
	namespace, appName, _ := strings.Cut(app, "/")
	obj := &identityv1alpha1.User{}
	if err := es.cache.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: user}, obj, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	conn := &identityv1alpha1.AppConnection{}
	if err := es.cache.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: appName}, conn, client.UnsafeDisableDeepCopy); err != nil {
		es.recorder.Eventf(obj, nil, eventType, reason, "Provisioning", "%s", message)
		return
	}
	es.recorder.Eventf(obj, conn, eventType, reason, "Provisioning", "%s", message)
}

// App (engine.Events) records an event on an AppConnection.
func (es *Engines) App(app, eventType, reason, message string) {
	namespace, name, _ := strings.Cut(app, "/")
	obj := &identityv1alpha1.AppConnection{}
	if err := es.cache.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, obj); err != nil {
		return
	}
	es.recorder.Eventf(obj, nil, eventType, reason, "Provisioning", "%s", message)
}
