package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers/directory"
	"github.com/rosterhq/roster/test/slapd"
)

// syncedUsers lists the Users a DirectorySync wrote, by userName.
func syncedUsers(t *testing.T, ns, sync string) map[string]identityv1alpha1.User {
	t.Helper()
	var list identityv1alpha1.UserList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{directory.LabelDirectorySync: sync}); err != nil {
		t.Fatal(err)
	}
	out := map[string]identityv1alpha1.User{}
	for _, u := range list.Items {
		out[u.Spec.UserName] = u
	}
	return out
}

func ldapSync(t *testing.T, ns string, srv *slapd.Server, change func(*identityv1alpha1.DirectorySync)) *identityv1alpha1.DirectorySync {
	t.Helper()
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ldap"}, StringData: map[string]string{"password": slapd.Password}})
	ds := &identityv1alpha1.DirectorySync{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "corp"},
		Spec: identityv1alpha1.DirectorySyncSpec{LDAP: &identityv1alpha1.LDAPSource{
			LDAPConnection: identityv1alpha1.LDAPConnection{URL: srv.URL, Security: identityv1alpha1.LDAPSecurityNone, BindDN: slapd.AdminDN,
				PasswordSecretRef: identityv1alpha1.SecretKeySelector{Name: "ldap", Key: "password"}},
			BaseDN: slapd.BaseDN, PageSize: 2,
		}},
	}
	if change != nil {
		change(ds)
	}
	create(t, ds)
	return ds
}

// TestLDAPDirectorySync mirrors a real slapd: full sync with nested groups, a change
// followed within seconds (syncrepl), a locked account suspended, a deleted entry
// suspended then deleted after the grace, labels a person adds kept.
func TestLDAPDirectorySync(t *testing.T) {
	ns := namespace(t)
	srv := slapd.Start(t)
	ada := srv.AddPerson(t, "ada", "Ada", "Lovelace", "eng")
	grace := srv.AddPerson(t, "grace", "Grace", "Hopper", "eng")
	linus := srv.AddPerson(t, "linus", "Linus", "Torvalds", "ops")
	compilers := srv.AddGroup(t, "compilers", ada, grace)
	srv.AddGroup(t, "engineering", compilers, linus)
	ds := ldapSync(t, ns, srv, func(ds *identityv1alpha1.DirectorySync) {
		ds.Spec.VanishedUsers = identityv1alpha1.VanishedUsersPolicy{Action: "Suspend", DeleteAfter: &metav1.Duration{Duration: 3 * time.Second}}
		ds.Spec.MirrorGroupsAsRoles = &identityv1alpha1.GroupRoleMirror{NamePrefix: "ldap-"}
	})

	waitFor(t, "three Users, Ready, with nested groups expanded", func() (bool, string) {
		users := syncedUsers(t, ns, "corp")
		got := get(t, ns, "corp", &identityv1alpha1.DirectorySync{})
		ok, why := ready(got.Status.Conditions)
		a := users["ada"]
		return ok && len(users) == 3 && slices.Equal(a.Spec.Groups, []string{"compilers", "engineering"}) && got.Status.Counts.ExpandedGroups == 2,
			fmt.Sprintf("%s users=%d ada groups=%v counts=%+v", why, len(users), a.Spec.Groups, got.Status.Counts)
	})
	a := syncedUsers(t, ns, "corp")["ada"]
	if a.Spec.Name.GivenName != "Ada" || a.Spec.Emails[0].Value != "ada@example.com" || a.Spec.Department != "eng" ||
		a.Labels[directory.LabelDepartment] != "eng" || a.Labels[directory.LabelDirectorySync] != "corp" || len(a.OwnerReferences) != 0 {
		t.Fatalf("ada = %+v", a)
	}
	if !strings.HasPrefix(a.Name, "corp-") || a.Spec.ExternalID == "" || !strings.HasSuffix(a.Name, a.Spec.ExternalID) {
		t.Fatalf("ada's name %q does not come from its entryUUID %q", a.Name, a.Spec.ExternalID)
	}
	waitFor(t, "a Role per group", func() (bool, string) {
		r := &identityv1alpha1.Role{}
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "ldap-compilers"}, r)
		return err == nil && slices.Equal(r.Spec.Members.Groups, []string{"compilers"}), fmt.Sprint(err)
	})

	// A label a person adds (from Git, say) survives the next sync.
	update(t, &a, func(u *identityv1alpha1.User) { u.Labels["team"] = "compilers" })

	// syncrepl: a change reaches the User within seconds, not at the next full sync.
	start := time.Now()
	srv.Modify(t, ada, map[string][]string{"title": {"Countess"}})
	waitFor(t, "the new title", func() (bool, string) {
		u := syncedUsers(t, ns, "corp")["ada"]
		return u.Spec.Title == "Countess", u.Spec.Title
	})
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the change took %s: it waited for a full sync", took)
	}
	if u := syncedUsers(t, ns, "corp")["ada"]; u.Labels["team"] != "compilers" {
		t.Fatalf("the label a person added is gone: %v", u.Labels)
	}

	// A locked account suspends its User.
	srv.Lock(t, linus)
	waitFor(t, "linus is suspended", func() (bool, string) {
		u := syncedUsers(t, ns, "corp")["linus"]
		return u.Spec.State == identityv1alpha1.UserStateSuspended && u.Annotations[directory.AnnotationInactive] != "", string(u.Spec.State)
	})

	// A deleted entry: suspended at once, deleted after the grace.
	srv.Delete(t, grace)
	waitFor(t, "grace is suspended", func() (bool, string) {
		u, ok := syncedUsers(t, ns, "corp")["grace"]
		return ok && u.Spec.State == identityv1alpha1.UserStateSuspended, string(u.Spec.State)
	})
	if u := syncedUsers(t, ns, "corp")["grace"]; u.Spec.Department != "eng" {
		t.Fatalf("suspending grace dropped what the directory said of her: %+v", u.Spec)
	}
	waitFor(t, "grace is deleted after the grace", func() (bool, string) {
		_, ok := syncedUsers(t, ns, "corp")["grace"]
		return !ok, "still there"
	})
	_ = ds
}

// TestDirectorySyncSafetyThreshold: a filter edited to match nobody would suspend
// everyone; the sync waits for approval.
func TestDirectorySyncSafetyThreshold(t *testing.T) {
	ns := namespace(t)
	srv := slapd.Start(t)
	for i := range 6 {
		srv.AddPerson(t, fmt.Sprintf("p%d", i), "P", fmt.Sprint(i), "eng")
	}
	maxCount := int32(3)
	ds := ldapSync(t, ns, srv, func(ds *identityv1alpha1.DirectorySync) {
		ds.Spec.SafetyThreshold = &identityv1alpha1.SafetyThreshold{MaxCount: &maxCount}
	})
	waitFor(t, "six Users", func() (bool, string) { return len(syncedUsers(t, ns, "corp")) == 6, "" })
	update(t, ds, func(d *identityv1alpha1.DirectorySync) { d.Spec.LDAP.UserFilter = "(uid=nobody)" })
	var message string
	waitFor(t, "the sync is Stalled by the safety threshold", func() (bool, string) {
		got := get(t, ns, "corp", &identityv1alpha1.DirectorySync{})
		message = condition(got.Status.Conditions, identityv1alpha1.ConditionStalled)
		return strings.HasPrefix(message, "True/"+identityv1alpha1.ReasonSafetyThresholdExceeded), message
	})
	for _, u := range syncedUsers(t, ns, "corp") {
		if u.Spec.State == identityv1alpha1.UserStateSuspended {
			t.Fatal("a User was suspended while the sync waited for approval")
		}
	}
	planID := strings.Fields(message[strings.Index(message, identityv1alpha1.AnnotationApprovePlan+"=")+len(identityv1alpha1.AnnotationApprovePlan+"="):])[0]
	update(t, ds, func(d *identityv1alpha1.DirectorySync) {
		d.Annotations = map[string]string{identityv1alpha1.AnnotationApprovePlan: planID}
	})
	waitFor(t, "the approved sync suspends all six", func() (bool, string) {
		n := 0
		for _, u := range syncedUsers(t, ns, "corp") {
			if u.Spec.State == identityv1alpha1.UserStateSuspended {
				n++
			}
		}
		return n == 6, fmt.Sprint(n)
	})
}

// TestHRISScheduledHireAndTermination: a future hire date makes a Pending User that
// activates on the date; a termination date deprovisions.
func TestHRISScheduledHireAndTermination(t *testing.T) {
	ns := namespace(t)
	hire := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	end := hire.Add(4 * time.Second)
	csv := "id,firstName,lastName,email,department,hireDate,terminationDate\n" +
		fmt.Sprintf("E1,Ada,Lovelace,ada@example.com,eng,%s,%s\n", hire.Format(time.RFC3339), end.Format(time.RFC3339)) +
		"E2,Grace,Hopper,grace@example.com,eng,2020-01-01,\n"
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Data: map[string]string{"people.csv": csv}},
		memoryConnection(ns, "memapp"), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")),
		&identityv1alpha1.DirectorySync{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workday"},
			Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &identityv1alpha1.HRISSource{
				Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}}},
		})
	mem := memoryApp(ns, "memapp")
	waitFor(t, "ada is Pending and grace Active", func() (bool, string) {
		users := syncedUsers(t, ns, "workday")
		return users["ada@example.com"].Status.Phase == identityv1alpha1.UserPhasePending &&
			users["grace@example.com"].Status.Phase == identityv1alpha1.UserPhaseActive, fmt.Sprint(len(users))
	})
	if _, ok := memoryAccount(mem, "ada@example.com"); ok && time.Now().Before(hire) {
		t.Fatal("ada has an account before her hire date")
	}
	waitFor(t, "ada's account appears on her hire date", func() (bool, string) {
		acc, ok := memoryAccount(mem, "ada@example.com")
		return ok && acc.Active, ""
	})
	if time.Now().Before(hire) {
		t.Fatal("ada's account was created before her hire date")
	}
	waitFor(t, "ada's account is deactivated at her termination date", func() (bool, string) {
		acc, _ := memoryAccount(mem, "ada@example.com")
		return !acc.Active, ""
	})
	if time.Now().Before(end) {
		t.Fatal("ada's account was deactivated before her termination date")
	}
}

// TestResyncAnnotation: a new value of identity.roster.dev/resync makes an AppConnection
// list its app, and a DirectorySync read its source, now rather than at the interval.
func TestResyncAnnotation(t *testing.T) {
	ns := namespace(t)
	var mu sync.Mutex
	csv := "id,firstName,lastName,email,department\nE1,Ada,Lovelace,ada@example.com,eng\n"
	exports := 0
	export := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		exports++
		_, _ = w.Write([]byte(csv))
	}))
	t.Cleanup(export.Close)
	create(t, memoryConnection(ns, "memapp"), roleWithGrants(ns, "eng", `user.department == "eng"`, grant("memapp")),
		&identityv1alpha1.DirectorySync{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"},
			Spec: identityv1alpha1.DirectorySyncSpec{
				HRIS:     &identityv1alpha1.HRISSource{Format: "CSV", URL: export.URL},
				Interval: &metav1.Duration{Duration: time.Hour},
			},
		})
	mem := memoryApp(ns, "memapp")
	waitFor(t, "ada has an account", func() (bool, string) {
		c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{})
		return c.Status.Accounts.Managed == 1, fmt.Sprintf("%+v", c.Status.Accounts)
	})

	// Someone adds an account in the app, and a hire to the export, behind Roster's back.
	if _, err := mem.Create(context.Background(), connectors.Account{Active: true, Attributes: map[string]any{"userName": "stray"}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	csv += "E2,Grace,Hopper,grace@example.com,eng\n"
	exportsBefore := exports
	mu.Unlock()
	listsBefore := mem.Requests()[memory.OpList]
	if c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{}); c.Status.Accounts.Unmanaged != 0 {
		t.Fatalf("the stray account was seen before a resync was asked for: %+v", c.Status.Accounts)
	}
	if _, ok := syncedUsers(t, ns, "hr")["grace@example.com"]; ok {
		t.Fatal("grace was synced before a resync was asked for")
	}

	resync := func(o client.Object) {
		o.SetAnnotations(map[string]string{identityv1alpha1.AnnotationResync: "2026-11-22T09:00:00Z"})
	}
	update(t, get(t, ns, "memapp", &identityv1alpha1.AppConnection{}), func(c *identityv1alpha1.AppConnection) { resync(c) })
	update(t, get(t, ns, "hr", &identityv1alpha1.DirectorySync{}), func(d *identityv1alpha1.DirectorySync) { resync(d) })
	waitFor(t, "the relisted app reports the stray account", func() (bool, string) {
		c := get(t, ns, "memapp", &identityv1alpha1.AppConnection{})
		return c.Status.Accounts.Unmanaged == 1, fmt.Sprintf("%+v", c.Status.Accounts)
	})
	waitFor(t, "the resynced directory brings grace, and her account", func() (bool, string) {
		_, synced := syncedUsers(t, ns, "hr")["grace@example.com"]
		_, account := memoryAccount(mem, "grace@example.com")
		return synced && account, fmt.Sprintf("synced %v, account %v", synced, account)
	})
	// The counted requests show that the annotations, and nothing else, relisted: over
	// the whole test the app was listed once more and the export read once more.
	mu.Lock()
	defer mu.Unlock()
	if lists := mem.Requests()[memory.OpList]; lists != listsBefore+1 || exports != exportsBefore+1 {
		t.Fatalf("the app was listed %d more times and the export read %d more times, want once each, on the annotations",
			lists-listsBefore, exports-exportsBefore)
	}
}

// TestAFirstSyncTellsHowFarItIs: while a first full sync writes the Users of a large
// source, the DirectorySync's Ready condition says how many records were read and how
// many of their Users are in step so far, not that the source is still being read.
func TestAFirstSyncTellsHowFarItIs(t *testing.T) {
	ns := namespace(t)
	w := watchIn(t, &identityv1alpha1.DirectorySyncList{}, ns)
	var mu sync.Mutex
	var said []string
	go func() {
		for ev := range w.ResultChan() {
			if ds, ok := ev.Object.(*identityv1alpha1.DirectorySync); ok {
				mu.Lock()
				said = append(said, condition(ds.Status.Conditions, identityv1alpha1.ConditionReady))
				mu.Unlock()
			}
		}
	}()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%04d", i)
	}
	hrSync(t, ns, ids, nil)
	waitFor(t, "the first sync is done", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		if len(said) == 0 {
			return false, "nothing yet"
		}
		last := said[len(said)-1]
		return strings.HasPrefix(last, "True"), last
	})
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	progress := regexp.MustCompile(`^False/Progressing: 1000 hris records read; (\d+) of their Users in step so far$`)
	for _, s := range said {
		if m := progress.FindStringSubmatch(s); m != nil && m[1] != "1000" {
			return
		}
	}
	t.Fatalf("no condition told how far the first sync was: %q", said)
}
