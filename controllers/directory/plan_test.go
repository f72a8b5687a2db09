package directory

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/mapping"
)

var planNow = time.Date(2027, 3, 1, 9, 0, 0, 0, time.UTC)

func hrConfig(t *testing.T, change func(*Config)) *Config {
	t.Helper()
	env, err := mapping.NewEnv("record")
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.CompileMappings(DefaultMapping("hris"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Name: "hr", Namespace: "acme", Mapping: m, VanishedAction: identityv1alpha1.VanishedSuspend}
	if change != nil {
		change(cfg)
	}
	return cfg
}

func person(id, email string, attrs ...string) connectors.Record {
	r := connectors.Record{ID: id, Attributes: map[string]any{"id": id, "email": email}}
	for i := 0; i+1 < len(attrs); i += 2 {
		r.Attributes[attrs[i]] = attrs[i+1]
	}
	return r
}

// written is a User the DirectorySync wrote from a record, as the cache shows it.
func written(id string, change func(*identityv1alpha1.User)) identityv1alpha1.User {
	u := identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Name: objectName("hr", id), Namespace: "acme",
		Labels: map[string]string{LabelDirectorySync: "hr"}, Annotations: map[string]string{AnnotationSourceID: id}}}
	u.Spec.State = identityv1alpha1.UserStateActive
	if change != nil {
		change(&u)
	}
	return u
}

func suspendedSince(since time.Time, vanished bool) func(*identityv1alpha1.User) {
	return func(u *identityv1alpha1.User) {
		u.Spec.State = identityv1alpha1.UserStateSuspended
		u.Annotations[AnnotationInactive] = since.Format(time.RFC3339)
		if vanished {
			u.Annotations[annotationVanished] = "true"
		}
	}
}

func userNames(users []*identityv1alpha1.User) []string {
	var out []string
	for _, u := range users {
		out = append(out, u.Name)
	}
	return out
}

func TestPlan(t *testing.T) {
	ada, grace, linus := person("e1", "ada@example.com"), person("e2", "grace@example.com", "manager", "e1"), person("e3", "linus@example.com", "manager", "e9")
	cases := []struct {
		reason  string
		cfg     func(*Config)
		records []connectors.Record
		ids     []string // the records planned; nil: every record
		owned   []identityv1alpha1.User
		full    bool
		// want
		desired, vanishing, deleting, suspensions, skipped []string
		nextDelete                                         time.Time
		check                                              func(t *testing.T, r run)
	}{
		{reason: "new records become Users named by their id, a manager by its record",
			records: []connectors.Record{ada, grace}, full: true,
			desired: []string{"hr-e1", "hr-e2"},
			check: func(t *testing.T, r run) {
				if r.desired[1].manager != "hr-e1" || r.desired[1].userName != "grace@example.com" {
					t.Errorf("grace = %+v, want her manager hr-e1 and her userName", r.desired[1])
				}
			}},
		{reason: "a manager who is no record of the source is left out, and said",
			records: []connectors.Record{linus}, full: true, desired: []string{"hr-e3"},
			check: func(t *testing.T, r run) {
				if r.desired[0].manager != "" || r.desired[0].unknownManager != "e9" {
					t.Errorf("linus = %+v, want no manager and e9 unknown", r.desired[0])
				}
			}},
		{reason: "a renamed person keeps the User of their record",
			records: []connectors.Record{person("e1", "ada.lovelace@example.com")}, owned: []identityv1alpha1.User{written("e1", nil)}, full: true,
			desired: []string{"hr-e1"},
			check: func(t *testing.T, r run) {
				if r.desired[0].userName != "ada.lovelace@example.com" {
					t.Errorf("userName %q, want the new one", r.desired[0].userName)
				}
			}},
		{reason: "a record with an inactive status suspends its active User, counted",
			records: []connectors.Record{person("e1", "ada@example.com", "status", "terminated")}, owned: []identityv1alpha1.User{written("e1", nil)}, full: true,
			desired: []string{"hr-e1"}, suspensions: []string{"hr-e1"}},
		{reason: "a User a person suspended stays suspended while the source says active, and is not counted",
			records: []connectors.Record{ada}, owned: []identityv1alpha1.User{written("e1", func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })}, full: true,
			desired: []string{"hr-e1"},
			check: func(t *testing.T, r run) {
				if !r.desired[0].suspensionHeld {
					t.Error("the person's suspension is not held")
				}
			}},
		{reason: "a full sync suspends the User whose record vanished",
			records: []connectors.Record{ada}, owned: []identityv1alpha1.User{written("e1", nil), written("e2", nil)}, full: true,
			desired: []string{"hr-e1"}, vanishing: []string{"hr-e2"}, suspensions: []string{"hr-e2"}},
		{reason: "with vanishedUsers Delete, it deletes it",
			cfg:     func(c *Config) { c.VanishedAction = identityv1alpha1.VanishedDelete },
			records: []connectors.Record{ada}, owned: []identityv1alpha1.User{written("e1", nil), written("e2", nil)}, full: true,
			desired: []string{"hr-e1"}, deleting: []string{"hr-e2"}, suspensions: []string{"hr-e2"}},
		{reason: "a User already suspended as vanished is not suspended again",
			records: []connectors.Record{ada}, owned: []identityv1alpha1.User{written("e1", nil), written("e2", suspendedSince(planNow.Add(-time.Hour), true))}, full: true,
			desired: []string{"hr-e1"}},
		{reason: "a record the filter leaves out is as if it had left",
			cfg: func(c *Config) {
				env, _ := mapping.NewEnv("record")
				c.Filter, _ = env.Compile(`record.email != "grace@example.com"`)
			},
			records: []connectors.Record{ada, grace}, owned: []identityv1alpha1.User{written("e2", nil)}, full: true,
			desired: []string{"hr-e1"}, vanishing: []string{"hr-e2"}, suspensions: []string{"hr-e2"}},
		{reason: "deleteAfter passed: the suspended User is deleted",
			cfg:     func(c *Config) { c.DeleteAfter = 24 * time.Hour },
			records: []connectors.Record{ada}, owned: []identityv1alpha1.User{written("e1", nil), written("e2", suspendedSince(planNow.Add(-25*time.Hour), true))}, full: true,
			desired: []string{"hr-e1"}, deleting: []string{"hr-e2"}, suspensions: []string{"hr-e2"}},
		{reason: "deleteAfter not yet passed: the plan says when to look again",
			cfg:     func(c *Config) { c.DeleteAfter = 24 * time.Hour },
			records: []connectors.Record{ada}, owned: []identityv1alpha1.User{written("e1", nil), written("e2", suspendedSince(planNow.Add(-time.Hour), true))}, full: true,
			desired: []string{"hr-e1"}, nextDelete: planNow.Add(23 * time.Hour)},
		{reason: "a User being deleted is left to its finalizer",
			records: []connectors.Record{ada}, owned: []identityv1alpha1.User{written("e1", nil), written("e2", func(u *identityv1alpha1.User) { u.DeletionTimestamp = &metav1.Time{Time: planNow} })}, full: true,
			desired: []string{"hr-e1"}},
		{reason: "a followed change touches only its records: another User without a record in the change stays",
			records: []connectors.Record{ada}, ids: []string{"e1"}, owned: []identityv1alpha1.User{written("e1", nil), written("e2", nil)},
			desired: []string{"hr-e1"}},
		{reason: "a record without a userName is skipped, and said",
			records: []connectors.Record{{ID: "e4", Attributes: map[string]any{"id": "e4"}}}, full: true,
			skipped: []string{"e4"}},
		{reason: "a record whose names are all taken by other records' Users is skipped",
			records: []connectors.Record{person("e5", "eve@example.com")},
			owned: []identityv1alpha1.User{
				written("x1", func(u *identityv1alpha1.User) { u.Name = "hr-e5" }),
				written("x2", func(u *identityv1alpha1.User) { u.Name = hashedName("hr", "e5", "e5") }),
			},
			full: true, skipped: []string{"e5"}, vanishing: []string{"hr-e5", hashedName("hr", "e5", "e5")},
			suspensions: []string{"hr-e5", hashedName("hr", "e5", "e5")}},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			src := sourceView{records: map[string]connectors.Record{}, refs: map[string]string{}, members: memberships{}}
			ids := tc.ids
			for _, r := range tc.records {
				src.records[r.ID] = r
				for _, k := range refKeys(r) {
					src.refs[k] = r.ID
				}
				if tc.ids == nil {
					ids = append(ids, r.ID)
				}
			}
			r := plan(hrConfig(t, tc.cfg), src, newNames(), planInput{ids: ids, owned: tc.owned, full: tc.full, now: planNow})
			var desired []string
			for _, d := range r.desired {
				desired = append(desired, d.name)
			}
			var suspensions []string
			for n := range r.suspensions {
				suspensions = append(suspensions, n)
			}
			slices.Sort(suspensions)
			slices.Sort(tc.suspensions)
			for _, c := range []struct {
				what      string
				got, want []string
			}{{"desired", desired, tc.desired}, {"vanishing", userNames(r.vanishing), tc.vanishing}, {"deleting", userNames(r.deleting), tc.deleting},
				{"suspensions", suspensions, tc.suspensions}, {"skipped", r.skipped, tc.skipped}} {
				if !slices.Equal(c.got, c.want) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if !r.nextDelete.Equal(tc.nextDelete) {
				t.Errorf("nextDelete = %v, want %v", r.nextDelete, tc.nextDelete)
			}
			if tc.check != nil && len(r.desired) > 0 {
				tc.check(t, r)
			}
		})
	}
}

// TestAFollowedDeletionSuspendsItsUser: a record reported gone between full syncs
// suspends its User, and only it.
func TestAFollowedDeletionSuspendsItsUser(t *testing.T) {
	src := sourceView{records: map[string]connectors.Record{}, refs: map[string]string{}, members: memberships{}}
	r := plan(hrConfig(t, nil), src, newNames(), planInput{vanished: []string{"e2"}, owned: []identityv1alpha1.User{written("e2", nil)}, now: planNow})
	if got := userNames(r.vanishing); !slices.Equal(got, []string{"hr-e2"}) || !r.suspensions["hr-e2"] || len(r.desired) != 0 {
		t.Fatalf("vanishing %v, suspensions %v, desired %d; want hr-e2 suspended alone", got, r.suspensions, len(r.desired))
	}
}

// TestManagersAreWrittenInWavesBeforeTheirReports: each wave holds the Users whose
// managers are in earlier waves; a cycle does not hold anyone back forever.
func TestManagersAreWrittenInWavesBeforeTheirReports(t *testing.T) {
	users := []desiredUser{
		{name: "dev", manager: "lead"}, {name: "ceo"}, {name: "lead", manager: "cto"}, {name: "cto", manager: "ceo"},
		{name: "loop-a", manager: "loop-b"}, {name: "loop-b", manager: "loop-a"}, {name: "outside", manager: "not-in-this-run"},
	}
	var got [][]string
	for _, wave := range managersFirst(users) {
		var names []string
		for _, u := range wave {
			names = append(names, u.name)
		}
		slices.Sort(names)
		got = append(got, names)
	}
	position := map[string]int{}
	for i, wave := range got {
		for _, n := range wave {
			position[n] = i
		}
	}
	for _, pair := range [][2]string{{"ceo", "cto"}, {"cto", "lead"}, {"lead", "dev"}} {
		if position[pair[0]] >= position[pair[1]] {
			t.Errorf("waves %v: %s is not written before %s", got, pair[0], pair[1])
		}
	}
	for _, n := range []string{"loop-a", "loop-b", "outside", "dev"} {
		if _, ok := position[n]; !ok {
			t.Errorf("waves %v leave %s out", got, n)
		}
	}
}

// TestTheThresholdHoldsSuspensionsOverTime: suspensions and deletions count over the
// safety window, those made before included; beyond the threshold, or from a source
// that came back empty, the whole plan is held until that plan is approved.
func TestTheThresholdHoldsSuspensionsOverTime(t *testing.T) {
	plan := func(users ...string) run {
		r := run{suspensions: map[string]bool{}, full: true}
		for _, u := range users {
			r.suspensions[u] = true
		}
		return r
	}
	max := int32(3)
	s := New(Config{Name: "hr", MaxCount: &max, Window: 10 * time.Minute}, nil, logr.Discard(), func() {})
	now := planNow
	s.now = func() time.Time { return now }

	if held := s.checkSafety(plan("a", "b"), 100, false); held != nil {
		t.Fatalf("2 of a threshold of 3 were held: %v", held)
	}
	now = now.Add(time.Minute)
	held := s.checkSafety(plan("c", "d"), 100, false)
	if len(held) != 2 || !s.status.Blocked || s.status.PlanID == "" {
		t.Fatalf("2 more within the window (4 > 3) held %v, blocked %v; want both held and the plan blocked", held, s.status.Blocked)
	}
	id := s.status.PlanID
	s.cfg.ApprovedPlan = id
	if held := s.checkSafety(plan("c", "d"), 100, false); held != nil || s.status.Blocked {
		t.Fatalf("the approved plan %s is still held: %v", id, held)
	}
	s.cfg.ApprovedPlan = ""
	now = now.Add(time.Hour)
	if held := s.checkSafety(plan("e"), 100, false); held != nil {
		t.Fatalf("once the window passed, 1 was held: %v", held)
	}
	if held := s.checkSafety(plan("f"), 100, true); len(held) != 1 || !s.status.Blocked {
		t.Fatalf("a plan from a source that came back empty held %v, want it held whatever its size", held)
	}
	if got := s.status.BlockedMessage; !strings.Contains(got, "returned no record at all") {
		t.Fatalf("the message says %q, want it to name the empty source", got)
	}
}
