package controllers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/scim"
)

// quirkySCIMApp is an in-process SCIM app whose answers quirk may replace.
func quirkySCIMApp(t *testing.T, quirk func(w http.ResponseWriter, r *http.Request) bool) *scimServer {
	t.Helper()
	return quirkySCIMAppOver(t, scim.NewMemoryStore(), quirk)
}

func quirkySCIMAppOver(t *testing.T, store *scim.MemoryStore, quirk func(w http.ResponseWriter, r *http.Request) bool) *scimServer {
	t.Helper()
	return newSCIMServer(t, store, func(api http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !quirk(w, r) {
				api.ServeHTTP(w, r)
			}
		})
	})
}

func appReady(t *testing.T, ns, name string) string {
	return condition(get(t, ns, name, &identityv1alpha1.AppConnection{}).Status.Conditions, identityv1alpha1.ConditionReady)
}

func TestAnAppThatAnswers429ToEveryWriteIsNotReady(t *testing.T) {
	ns := namespace(t)
	app := quirkySCIMApp(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet {
			return false
		}
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	})
	// The app comes last, so that its engine's first run plans both people: a person
	// planned after the first 429 would wait out its Retry-After instead of failing.
	create(t, roleWithGrants(ns, "eng", `user.department == "eng"`, grant("busy")), newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng"))
	waitFor(t, "the Role has both people", func() (bool, string) {
		n := get(t, ns, "eng", &identityv1alpha1.Role{}).Status.MemberCount
		return n == 2, fmt.Sprint(n)
	})
	create(t, scimConnection(t, app, ns, "busy", app.token))
	waitFor(t, "the AppConnection says it is rate limited, with counts", func() (bool, string) {
		c := appReady(t, ns, "busy")
		return strings.HasPrefix(c, "False/"+identityv1alpha1.ReasonRateLimited) && strings.Contains(c, "2 of 2 accounts failed (2 rate limited)"), c
	})
	if got := get(t, ns, "busy", &identityv1alpha1.AppConnection{}); got.Status.Accounts.Failed != 2 {
		t.Fatalf("status.accounts = %+v, want 2 failed", got.Status.Accounts)
	}
}

func TestAnAppThatRefusesGroupChangesIsNotReady(t *testing.T) {
	ns := namespace(t)
	app := quirkySCIMApp(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet && strings.Contains(r.URL.Path, "/Groups") {
			http.Error(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"413","detail":"too many operations"}`, http.StatusRequestEntityTooLarge)
			return true
		}
		return false
	})
	create(t, scimConnection(t, app, ns, "picky", app.token), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("picky", "engineering")),
		newUser(ns, "linus", "eng"))
	waitFor(t, "the AppConnection says provisioning failed, with the app's answer", func() (bool, string) {
		c := appReady(t, ns, "picky")
		return strings.HasPrefix(c, "False/"+identityv1alpha1.ReasonProvisioningFailed) && strings.Contains(c, "1 of") && strings.Contains(c, "linus: "), c
	})
}

func TestTheAppConnectionNamesAFailuresLatestError(t *testing.T) {
	ns := namespace(t)
	var answer atomic.Value
	answer.Store("disk full")
	app := quirkySCIMApp(t, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		http.Error(w, answer.Load().(string), http.StatusInternalServerError)
		return true
	})
	create(t, scimConnection(t, app, ns, "flaky", app.token), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("flaky")),
		newUser(ns, "linus", "eng"))
	waitFor(t, "the AppConnection names the first error", func() (bool, string) {
		c := appReady(t, ns, "flaky")
		return strings.Contains(c, "linus: ") && strings.Contains(c, "disk full"), c
	})
	answer.Store("database locked")
	waitFor(t, "the AppConnection names the error the retries now meet", func() (bool, string) {
		c := appReady(t, ns, "flaky")
		return strings.Contains(c, "linus: ") && strings.Contains(c, "database locked"), c
	})
}

// forgetfulApp answers PATCHes whose paths name sub-attributes (and, when puts is set,
// PUTs) with 200 and the user unchanged, as apps that accept and ignore them do. It
// counts the requests it gets by method, and listings.
type forgetfulApp struct {
	*scimServer
	mu       sync.Mutex
	requests map[string]int
}

func newForgetfulApp(t *testing.T, puts bool) *forgetfulApp {
	store := scim.NewMemoryStore()
	a := &forgetfulApp{requests: map[string]int{}}
	a.scimServer = quirkySCIMAppOver(t, store, func(w http.ResponseWriter, r *http.Request) bool {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		a.mu.Lock()
		key := r.Method
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Users") && !r.URL.Query().Has("filter") {
			key = "LIST"
		}
		a.requests[key]++
		a.mu.Unlock()
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		ignore := (r.Method == http.MethodPatch && strings.Contains(string(body), `"path":"name.`)) || (puts && r.Method == http.MethodPut)
		if !ignore || !strings.Contains(r.URL.Path, "/Users/") {
			return false
		}
		current, err := store.Get(r.Context(), scim.Users, id)
		if err != nil {
			return false
		}
		w.Header().Set("Content-Type", scim.MediaType)
		_ = json.NewEncoder(w).Encode(current)
		return true
	})
	return a
}

func (a *forgetfulApp) count(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests[key]
}

func renameAda(t *testing.T, ns string) {
	update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}, func(u *identityv1alpha1.User) {
		u.Spec.Name.GivenName = "Augusta"
	})
}

func TestAnIgnoredPatchFallsBackToReplacingTheUser(t *testing.T) {
	ns := namespace(t)
	app := newForgetfulApp(t, false)
	create(t, scimConnection(t, app.scimServer, ns, "forgetful", app.token), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("forgetful")), newUser(ns, "ada", "eng"))
	waitFor(t, "ada's account", func() (bool, string) { return app.user("ada@example.com") != nil, "" })
	renameAda(t, ns)
	waitFor(t, "the new given name sticks, by PUT", func() (bool, string) {
		name, _ := app.user("ada@example.com")["name"].(map[string]any)
		return name["givenName"] == "Augusta", fmt.Sprint(name)
	})
	if patches, puts := app.count(http.MethodPatch), app.count(http.MethodPut); patches != 1 || puts != 1 {
		t.Fatalf("%d PATCHes and %d PUTs, want the ignored PATCH once and one PUT", patches, puts)
	}
}

func TestAnUpdateTheAppDoesNotKeepIsReportedNotResent(t *testing.T) {
	ns := namespace(t)
	app := newForgetfulApp(t, true)
	conn := scimConnection(t, app.scimServer, ns, "forgetful", app.token)
	create(t, conn, roleWithGrants(ns, "eng", `user.department == "eng"`, grant("forgetful")), newUser(ns, "ada", "eng"))
	waitFor(t, "ada's account", func() (bool, string) { return app.user("ada@example.com") != nil, "" })
	renameAda(t, ns)
	waitFor(t, "ada's account says the app does not keep the given name", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		for _, a := range u.Status.Accounts {
			if strings.Contains(a.Message, "does not keep") && strings.Contains(a.Message, "name.givenName") {
				return true, a.Message
			}
		}
		return false, fmt.Sprintf("%+v", u.Status.Accounts)
	})
	writes := app.count(http.MethodPatch) + app.count(http.MethodPut)
	for i := range 2 {
		listings := app.count("LIST")
		update(t, conn, func(c *identityv1alpha1.AppConnection) {
			c.Annotations = map[string]string{identityv1alpha1.AnnotationResync: fmt.Sprint(i)}
		})
		waitFor(t, "the app is listed again", func() (bool, string) { return app.count("LIST") > listings, "" })
	}
	if got := app.count(http.MethodPatch) + app.count(http.MethodPut); got != writes {
		t.Fatalf("%d writes after two resyncs, want the %d before: an update the app does not keep is not re-sent", got, writes)
	}
	waitFor(t, "an Event says so", func() (bool, string) { return hasEvent(t, ns, "ada", "Drifting"), "" })
}

func TestAnAppThatFailsEveryRequestSaysConnectorError(t *testing.T) {
	ns := namespace(t)
	app := quirkySCIMApp(t, func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "upstream database down", http.StatusInternalServerError)
		return true
	})
	create(t, scimConnection(t, app, ns, "down", app.token))
	waitFor(t, "the AppConnection says ConnectorError and retries", func() (bool, string) {
		c := appReady(t, ns, "down")
		return strings.HasPrefix(c, "False/"+identityv1alpha1.ReasonConnectorError) && strings.Contains(c, "retrying"), c
	})
}

func TestAUserTellsItsLifecycleReason(t *testing.T) {
	ns := namespace(t)
	later := newUser(ns, "hire", "eng")
	from := metav1.NewTime(time.Now().Add(24 * time.Hour))
	later.Spec.ActiveFrom = &from
	gone := newUser(ns, "leaver", "eng")
	gone.Spec.State = identityv1alpha1.UserStateSuspended
	create(t, memoryConnection(ns, "wiki"), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("wiki")), later, gone)
	for name, reason := range map[string]string{"hire": identityv1alpha1.ReasonNotYetActive, "leaver": identityv1alpha1.ReasonSuspended} {
		waitFor(t, name+" says "+reason, func() (bool, string) {
			c := condition(get(t, ns, name, &identityv1alpha1.User{}).Status.Conditions, identityv1alpha1.ConditionReady)
			return strings.HasPrefix(c, "True/"+reason), c
		})
	}
}
