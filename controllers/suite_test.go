package controllers_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/controllers/directory"
	"github.com/rosterhq/roster/test/testenv"
)

var (
	env      *testenv.Env
	k8s      client.Client
	cached   client.Reader // the manager's informer cache, as the engines read it
	apps     *memory.Apps
	inbound  *controllers.InboundSCIM
	logs     = &syncBuffer{}
	testCtx  context.Context
	shutdown context.CancelFunc
)

// syncBuffer collects the operator's logs so that tests can look for secrets in them.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scimServer is an in-process SCIM app: Roster's own server over a memory store. It
// takes only its own token: earlier tests' AppConnections stay behind, retrying apps
// that have gone, and one whose port a new app happens to take must not provision
// into it.
type scimServer struct {
	*httptest.Server
	store *scim.MemoryStore
	token string
}

var scimApps atomic.Int64

// newSCIMServer serves a SCIM app over store, with handler in front of it.
func newSCIMServer(t *testing.T, store *scim.MemoryStore, front func(scimAPI http.Handler) http.Handler) *scimServer {
	t.Helper()
	app := &scimServer{store: store, token: fmt.Sprintf("scim-token-%d-7f3a9c", scimApps.Add(1))}
	app.Server = httptest.NewServer(front(http.StripPrefix("/scim/v2", scim.NewServer(scim.ServerOptions{
		Store: store, Authorize: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+app.token },
	}))))
	t.Cleanup(app.Close)
	return app
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	var out io.Writer = logs
	if os.Getenv("ROSTER_TEST_LOGS") != "" {
		out = io.MultiWriter(logs, os.Stderr)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(out), zap.UseDevMode(true)))

	mgr, err := ctrl.NewManager(env.Config, controllers.ManagerOptions(ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	apps = memory.NewApps()
	directory.ProgressInterval = 200 * time.Millisecond
	inbound = &controllers.InboundSCIM{Addr: freeAddr(), Client: mgr.GetClient(), Log: ctrl.Log.WithName("inbound-scim")}
	registry := controllers.Connectors(apps, inbound)
	testCtx, shutdown = context.WithCancel(context.Background())
	defer shutdown()
	if err := controllers.Setup(testCtx, mgr, controllers.Options{Registry: registry, Inbound: inbound, SecretRecheck: 2 * time.Second,
		AccessRequestRetention: requestRetention}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(testCtx) }()
	k8s, cached = mgr.GetClient(), mgr.GetCache()
	if !mgr.GetCache().WaitForCacheSync(testCtx) {
		fmt.Fprintln(os.Stderr, "caches did not sync")
		return 1
	}
	// The inbound endpoint listens once the cache of what it keeps has synced.
	if err := testenv.UntilReady(time.Minute, inbound.Ready); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	shutdown()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return code
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls until cond holds, failing the test with what it last saw.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, what, cond)
}

func namespace(t *testing.T) string { t.Helper(); return env.Namespace(t) }

func create(t *testing.T, objs ...client.Object) { t.Helper(); env.Create(t, objs...) }

// watchIn watches the objects of a list's kind in a namespace, straight from the API
// server, until the test ends.
func watchIn(t *testing.T, list client.ObjectList, ns string) watch.Interface {
	t.Helper()
	watcher, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watcher.Watch(testCtx, list, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// update re-reads obj, changes it and writes it, retrying on conflicts.
func update[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	for i := 0; ; i++ {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		change(obj)
		err := env.Client.Update(context.Background(), obj)
		if err == nil {
			return
		}
		if i > 10 {
			t.Fatal(err)
		}
	}
}

func get[T client.Object](t *testing.T, ns, name string, obj T) T {
	t.Helper()
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func ready(conds []metav1.Condition) (bool, string) {
	c := meta.FindStatusCondition(conds, identityv1alpha1.ConditionReady)
	if c == nil {
		return false, "no Ready condition"
	}
	return c.Status == metav1.ConditionTrue, fmt.Sprintf("Ready=%s %s: %s", c.Status, c.Reason, c.Message)
}

func newUser(ns, name, dept string) *identityv1alpha1.User {
	return &identityv1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.UserSpec{
			UserName:   name + "@example.com",
			Name:       &identityv1alpha1.PersonName{GivenName: name, FamilyName: "Tester"},
			Emails:     []identityv1alpha1.Email{{Value: name + "@example.com", Type: "work", Primary: true}},
			Department: dept,
		},
	}
}

func memoryConnection(ns, name string) *identityv1alpha1.AppConnection {
	return &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}},
	}
}

// newSCIMApp starts an in-process SCIM app for one test.
func newSCIMApp(t *testing.T) *scimServer {
	t.Helper()
	return newSCIMServer(t, scim.NewMemoryStore(), func(api http.Handler) http.Handler { return api })
}

// scimConnection connects an AppConnection to a SCIM app with a token from a Secret.
func scimConnection(t *testing.T, app *scimServer, ns, name, token string) *identityv1alpha1.AppConnection {
	t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-token"}, StringData: map[string]string{"token": token}}
	create(t, secret)
	burst := int32(200)
	return &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.AppConnectionSpec{
			SCIM: &identityv1alpha1.SCIMConnector{
				BaseURL: app.URL + "/scim/v2",
				Auth: identityv1alpha1.SCIMAuth{Type: identityv1alpha1.SCIMAuthBearer,
					SecretRef: identityv1alpha1.LocalObjectReference{Name: name + "-token"}},
			},
			RateLimit: &identityv1alpha1.RateLimit{Requests: 1000, Burst: &burst},
		},
	}
}

func memoryApp(ns, conn string) *memory.App { return apps.Get(ns + "/" + conn) }

func roleWithGrants(ns, name, rule string, grants ...identityv1alpha1.RoleGrant) *identityv1alpha1.Role {
	return &identityv1alpha1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Rule: rule}, Grants: grants},
	}
}

func grant(app string, groups ...string) identityv1alpha1.RoleGrant {
	return identityv1alpha1.RoleGrant{App: app, Entitlements: identityv1alpha1.Entitlements{Groups: groups}}
}
