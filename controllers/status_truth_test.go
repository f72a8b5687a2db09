package controllers_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/scim"
)

// quirkySCIMApp is an in-process SCIM app whose answers quirk may replace.
func quirkySCIMApp(t *testing.T, quirk func(w http.ResponseWriter, r *http.Request) bool) *scimServer {
	t.Helper()
	store := scim.NewMemoryStore()
	server := http.StripPrefix("/scim/v2", scim.NewServer(scim.ServerOptions{
		Store: store, Authorize: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer "+scimToken },
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !quirk(w, r) {
			server.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return &scimServer{Server: srv, store: store}
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
	create(t, scimConnection(t, app, ns, "busy", scimToken), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("busy")),
		newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng"))
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
	create(t, scimConnection(t, app, ns, "picky", scimToken), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("picky", "engineering")),
		newUser(ns, "linus", "eng"))
	waitFor(t, "the AppConnection says provisioning failed, with the app's answer", func() (bool, string) {
		c := appReady(t, ns, "picky")
		return strings.HasPrefix(c, "False/"+identityv1alpha1.ReasonProvisioningFailed) && strings.Contains(c, "1 of") && strings.Contains(c, "linus: "), c
	})
}
