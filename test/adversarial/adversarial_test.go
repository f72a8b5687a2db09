// Package adversarial plays a hostile tenant against one operator that serves two
// namespaces: forged annotations, oversized and deeply nested requests, wrong and
// revoked tokens, an app that redirects credentials, a Retry-After bomb and a
// truncated HR export. Afterwards the other tenant's Users and accounts are untouched
// and the operator is still running.
package adversarial

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/hris"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/test/testenv"
)

var (
	env        *testenv.Env
	apps       *memory.Apps
	inboundURL string
	stopped    = make(chan error, 1) // the manager's Start returned: the operator stopped
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	mgr, err := ctrl.NewManager(env.Config, controllers.ManagerOptions(ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr := l.Addr().String()
	l.Close()
	inboundURL = "http://" + addr
	apps = memory.NewApps()
	inbound := &controllers.InboundSCIM{Addr: addr, Client: mgr.GetClient(), Log: ctrl.Log.WithName("inbound-scim")}
	registry := controllers.Connectors(apps, inbound)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := controllers.Setup(ctx, mgr, controllers.Options{Registry: registry, Inbound: inbound, SecretRecheck: 2 * time.Second}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() { stopped <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "caches did not sync")
		return 1
	}
	if err := testenv.UntilReady(time.Minute, inbound.Ready); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func TestAHostileTenantLeavesTheOtherUntouched(t *testing.T) {
	victim := startVictim(t)
	evil := namespace(t)
	t.Run("inbound SCIM abuse", func(t *testing.T) { abuseInbound(t, evil) })
	t.Run("an app that redirects credentials", func(t *testing.T) { redirectingApp(t, evil) })
	t.Run("a Retry-After bomb", func(t *testing.T) { retryAfterBomb(t, evil) })
	t.Run("a truncated HR export", func(t *testing.T) { truncatedExport(t, evil) })
	victim.untouched(t)
	select {
	case err := <-stopped:
		t.Fatalf("the operator stopped: %v", err)
	default:
	}
}

// victim is the other tenant: three people from an HR export, each with an account.
type victim struct{ ns string }

func startVictim(t *testing.T) victim {
	v := victim{ns: namespace(t)}
	create(t,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "hr"}, Data: map[string]string{"people.csv": export("g1", "g2", "g3")}},
		&identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "wiki"},
			Spec: identityv1alpha1.AppConnectionSpec{Memory: &identityv1alpha1.MemoryConnector{}}},
		&identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: v.ns, Name: "everyone"},
			Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Rule: "true"}, Grants: []identityv1alpha1.RoleGrant{{App: "wiki"}}}},
		hrSync(v.ns, "hr", &identityv1alpha1.HRISSource{Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}}),
	)
	waitFor(t, "the victim's three accounts", func() (bool, string) {
		n := activeAccounts(apps.Get(v.ns + "/wiki"))
		return n == 3, fmt.Sprint(n)
	})
	waitFor(t, "the victim's DirectorySync Ready", func() (bool, string) {
		ds := &identityv1alpha1.DirectorySync{}
		_ = env.Client.Get(context.Background(), client.ObjectKey{Namespace: v.ns, Name: "hr"}, ds)
		c := meta.FindStatusCondition(ds.Status.Conditions, identityv1alpha1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", c)
	})
	return v
}

func (v victim) untouched(t *testing.T) {
	t.Helper()
	var users identityv1alpha1.UserList
	if err := env.Client.List(context.Background(), &users, client.InNamespace(v.ns)); err != nil {
		t.Fatal(err)
	}
	if len(users.Items) != 3 {
		t.Fatalf("the victim has %d Users, want 3", len(users.Items))
	}
	for _, u := range users.Items {
		if u.Spec.State == identityv1alpha1.UserStateSuspended || u.DeletionTimestamp != nil || u.Status.Phase != identityv1alpha1.UserPhaseActive {
			t.Fatalf("the victim's User %s is %s (%s)", u.Name, u.Status.Phase, u.Spec.State)
		}
	}
	if n := activeAccounts(apps.Get(v.ns + "/wiki")); n != 3 {
		t.Fatalf("the victim has %d active accounts, want 3", n)
	}
	ds := &identityv1alpha1.DirectorySync{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: v.ns, Name: "hr"}, ds); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(ds.Status.Conditions, identityv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("the victim's DirectorySync is not Ready: %+v", c)
	}
}

const token = "evil-tenant-token-0123456789"

func abuseInbound(t *testing.T, ns string) {
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp"}, StringData: map[string]string{"token": token}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "okta"},
			Spec: identityv1alpha1.DirectorySyncSpec{SCIM: &identityv1alpha1.SCIMSource{TokenSecretRef: identityv1alpha1.SecretKeySelector{Name: "idp", Key: "token"}}}})
	base := inboundURL + "/scim/v2/" + ns + "/okta"
	waitFor(t, "the endpoint serves", func() (bool, string) {
		status, body := push(t, http.MethodGet, base+"/ServiceProviderConfig", token, "")
		return status == http.StatusOK, body
	})
	user := `{"schemas":["` + scim.SchemaUser + `"],"userName":"mallory@example.com"}`
	if status, body := push(t, http.MethodPost, base+"/Users", token, user); status != http.StatusCreated {
		t.Fatalf("a plain push got %d %s", status, body)
	}
	huge := `{"schemas":["` + scim.SchemaUser + `"],"userName":"big","title":"` + strings.Repeat("x", 2<<20) + `"}`
	if status, _ := push(t, http.MethodPost, base+"/Users", token, huge); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB push got %d, want 413", status)
	}
	nested := strings.Repeat("(", 5000) + `userName eq "a"` + strings.Repeat(")", 5000)
	if status, _ := push(t, http.MethodGet, base+"/Users?filter="+url.QueryEscape(nested), token, ""); status != http.StatusBadRequest {
		t.Errorf("a filter nested 5000 deep got %d, want 400", status)
	}
	for range 30 {
		if status, _ := push(t, http.MethodPost, base+"/Users", "wrong-token-wrong-token", user); status != http.StatusUnauthorized && status != http.StatusTooManyRequests {
			t.Fatalf("a wrong token got %d", status)
		}
	}
	var users identityv1alpha1.UserList
	waitFor(t, "mallory's User", func() (bool, string) {
		_ = env.Client.List(context.Background(), &users, client.InNamespace(ns))
		return len(users.Items) == 1, fmt.Sprint(len(users.Items))
	})
	var kept corev1.ConfigMapList
	if err := env.Client.List(context.Background(), &kept, client.InNamespace(ns), client.HasLabels{controllers.LabelSCIMObject}); err != nil || len(kept.Items) != 1 {
		t.Fatalf("mallory is kept in %d ConfigMaps (%v), want 1", len(kept.Items), err)
	}
	forged := kept.Items[0]
	forged.Data["resource"] = `{"id":"x","userName":"mallory@example.com","groups":["x",1,{"value":2}]}`
	forged.Data["version"] = "-7"
	if err := env.Client.Update(context.Background(), &forged); err != nil {
		t.Fatal(err)
	}
	if status, body := push(t, http.MethodPost, base+"/Groups", token, `{"schemas":["`+scim.SchemaGroup+`"],"displayName":"admins"}`); status != http.StatusCreated {
		t.Fatalf("a group push after the forgery got %d %s", status, body)
	}
	if err := env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revoked token is refused", func() (bool, string) {
		status, body := push(t, http.MethodGet, base+"/Users", token, "")
		return status == http.StatusUnauthorized || status == http.StatusTooManyRequests, body
	})
}

func redirectingApp(t *testing.T, ns string) {
	var stolen atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	defer collector.Close()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, collector.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer app.Close()
	create(t, scimApp(ns, "redirector", app.URL)...)
	waitFor(t, "the AppConnection says the redirect was refused", func() (bool, string) {
		msg := readyMessage(t, ns, "redirector")
		return strings.Contains(msg, "refused a redirect"), msg
	})
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
}

func retryAfterBomb(t *testing.T, ns string) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "31536000")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer app.Close()
	create(t, scimApp(ns, "bomb", app.URL)...)
	waitFor(t, "the AppConnection says it is rate limited", func() (bool, string) {
		msg := readyMessage(t, ns, "bomb")
		return strings.Contains(msg, identityv1alpha1.ReasonRateLimited), msg
	})
	msg := readyMessage(t, ns, "bomb")
	if !strings.Contains(msg, "retry after 15m0s") {
		t.Fatalf("the app's one-year Retry-After reads %q, want it capped at 15m", msg)
	}
}

func truncatedExport(t *testing.T, ns string) {
	var oversized atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !oversized.Load() {
			_, _ = io.WriteString(w, export("t1", "t2"))
			return
		}
		_, _ = io.WriteString(w, export("t1"))
		filler := bytes.Repeat([]byte("t9,Filler,Row,t9@example.com,eng\n"), 10000)
		for written := 0; written <= hris.MaxExportBytes; written += len(filler) {
			if _, err := w.Write(filler); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	create(t, hrSync(ns, "workday", &identityv1alpha1.HRISSource{Format: "CSV", URL: srv.URL}))
	waitFor(t, "two Users from the export", func() (bool, string) { return countUsers(t, ns, "workday") == 2, "" })
	oversized.Store(true)
	// A merge patch: the operator writes the DirectorySync's status meanwhile, so an
	// update from an earlier read would conflict.
	ds := &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workday"}}
	resync := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+identityv1alpha1.AnnotationResync+`":"now"}}}`))
	if err := env.Client.Patch(context.Background(), ds, resync); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the DirectorySync says the export is too large", func() (bool, string) {
		got := &identityv1alpha1.DirectorySync{}
		_ = env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "workday"}, got)
		c := meta.FindStatusCondition(got.Status.Conditions, identityv1alpha1.ConditionReady)
		return c != nil && strings.Contains(c.Message, "larger than"), fmt.Sprintf("%+v", c)
	})
	var users identityv1alpha1.UserList
	_ = env.Client.List(context.Background(), &users, client.InNamespace(ns), client.MatchingLabels{"identity.roster.dev/directorysync": "workday"})
	for _, u := range users.Items {
		if u.Spec.State == identityv1alpha1.UserStateSuspended {
			t.Fatalf("User %s was suspended on a truncated export", u.Name)
		}
	}
}
