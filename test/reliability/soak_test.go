package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// soaker keeps what the soak declared for each person, to compare the apps with.
type soaker struct {
	*org
	people    int
	dept      map[int]string
	names     map[int][]string // every userName a person had, the current one last
	suspended map[int]bool
	direct    map[int]bool // a direct AppAssignment of crm
	salesOut  bool         // the staff Role's rule leaves sales out
	everIn    map[string]map[int]bool
	changes   map[string]int
	history   map[int][]string // what was done to each person, in order
}

var soakDepartments = []string{"eng", "sales", "ops", "contractors"}

// entitledTo reports whether person p is entitled to an app now.
func (s *soaker) entitledTo(p int, app string) bool {
	if s.suspended[p] {
		return false
	}
	byRole := s.dept[p] != "contractors" && (s.dept[p] != "sales" || !s.salesOut)
	return byRole || app == "crm" && s.direct[p]
}

// note records who is entitled to what now, so that the end can tell an account made
// for a person once entitled from one made for nobody.
func (s *soaker) note() {
	for _, a := range s.apps {
		app := appName(a)
		for p := range s.people {
			if s.entitledTo(p, app) {
				s.everIn[app][p] = true
			}
		}
	}
}

func appName(a *app) string { return a.name[strings.LastIndex(a.name, "-")+1:] }

func (s *soaker) patchUser(t *testing.T, p int, patch string) {
	t.Helper()
	u := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: fmt.Sprintf("p%05d", p)}}
	if err := suite.env.Client.Patch(context.Background(), u, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatalf("changing person %d: %v", p, err)
	}
}

// step makes one random change, as people and admins do.
func (s *soaker) step(t *testing.T) {
	t.Helper()
	p := s.rng.IntN(max(s.people, 1))
	switch k := s.rng.IntN(100); {
	case k < 30 || s.people == 0: // a joiner
		p = s.people
		s.people++
		s.dept[p] = soakDepartments[s.rng.IntN(len(soakDepartments))]
		s.names[p] = []string{fmt.Sprintf("p%05d@example.com", p)}
		u := person(s.ns, p)
		u.Spec.Department = s.dept[p]
		if err := suite.env.Client.Create(context.Background(), u); err != nil {
			t.Fatalf("creating person %d: %v", p, err)
		}
		s.changes["joiners"]++
		s.history[p] = append(s.history[p], "joined "+s.dept[p])
	case k < 45: // a mover
		s.dept[p] = soakDepartments[s.rng.IntN(len(soakDepartments))]
		s.patchUser(t, p, `{"spec":{"department":"`+s.dept[p]+`"}}`)
		s.changes["movers"]++
		s.history[p] = append(s.history[p], "moved to "+s.dept[p])
	case k < 55: // a rename
		name := fmt.Sprintf("p%05d.r%d@example.com", p, len(s.names[p]))
		s.names[p] = append(s.names[p], name)
		s.patchUser(t, p, `{"spec":{"userName":"`+name+`"}}`)
		s.changes["renames"]++
		s.history[p] = append(s.history[p], "renamed")
	case k < 70: // a leaver, or a leaver's return
		s.suspended[p] = !s.suspended[p]
		state := identityv1alpha1.UserStateActive
		if s.suspended[p] {
			state = identityv1alpha1.UserStateSuspended
			s.changes["leavers"]++
		} else {
			s.changes["returns"]++
		}
		s.setState(t, p, state)
		s.history[p] = append(s.history[p], string(state))
	case k < 80: // the Role's rule changes
		s.salesOut = !s.salesOut
		rule := `user.department != "contractors"`
		if s.salesOut {
			rule += ` && user.department != "sales"`
		}
		role := &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "staff"}}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"members":{"rule":`+strconv.Quote(rule)+`}}}`))
		if err := suite.env.Client.Patch(context.Background(), role, patch); err != nil {
			t.Fatal(err)
		}
		s.changes["rules"]++
	default: // a direct assignment of crm, given or taken
		aa := &identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: fmt.Sprintf("crm-p%05d", p)},
			Spec: identityv1alpha1.AppAssignmentSpec{App: "crm", UserRef: &identityv1alpha1.LocalObjectReference{Name: fmt.Sprintf("p%05d", p)}}}
		var err error
		if s.direct[p] {
			err = suite.env.Client.Delete(context.Background(), aa)
		} else {
			err = suite.env.Client.Create(context.Background(), aa)
		}
		if err != nil {
			t.Fatal(err)
		}
		s.direct[p] = !s.direct[p]
		s.changes["assignments"]++
		s.history[p] = append(s.history[p], fmt.Sprintf("crm assigned %v", s.direct[p]))
	}
	s.note()
}

// matches reports whether every app holds what was declared: each person entitled now
// has exactly one account, active, under their current userName, and none under an
// earlier one; anyone else has no active account; and no account was made for a
// person never entitled, nor a second one for anyone (a return gets its account back,
// a rename renames it).
func (s *soaker) matches() (bool, string) {
	for _, a := range s.apps {
		app := appName(a)
		held, active := a.accounts()
		owned := 0
		for p := range s.people {
			current := s.names[p][len(s.names[p])-1]
			all := 0
			for _, n := range s.names[p] {
				all += held[n]
			}
			owned += all
			switch {
			case all > 1:
				return false, fmt.Sprintf("%s holds %d accounts of person %d (%v)", app, all, p, s.names[p])
			case all > 0 && !s.everIn[app][p]:
				return false, fmt.Sprintf("%s holds an account of person %d, never entitled to it", app, p)
			case s.entitledTo(p, app) && active[current] != 1:
				return false, fmt.Sprintf("%s has no active account %s (held %d; %s)", app, current, held[current], s.describe(p, app))
			case !s.entitledTo(p, app) && all > 0 && slices.ContainsFunc(s.names[p], func(n string) bool { return active[n] > 0 }):
				return false, fmt.Sprintf("%s keeps person %d active, no longer entitled (%s)", app, p, s.describe(p, app))
			}
		}
		if total := len(held); total != owned {
			return false, fmt.Sprintf("%s holds %d accounts, %d of them the people's", app, total, owned)
		}
	}
	return true, ""
}

// describe is what the soak declared of a person, and what the User says of an app.
func (s *soaker) describe(p int, app string) string {
	u := &identityv1alpha1.User{}
	_ = suite.env.Client.Get(context.Background(), client.ObjectKey{Namespace: s.ns, Name: fmt.Sprintf("p%05d", p)}, u)
	account := "none"
	for _, a := range u.Status.Accounts {
		if a.App == app {
			account = fmt.Sprintf("%s %q", a.State, a.Message)
		}
	}
	return fmt.Sprintf("names %v, department %s, suspended %v, crm assigned %v, sales left out %v; the User: %s %s, userName %s, account %s; history %v",
		s.names[p], s.dept[p], s.suspended[p], s.direct[p], s.salesOut, u.Spec.Department, u.Spec.State, u.Spec.UserName, account, s.history[p])
}

// operatorFigures reads the operator's goroutines and heap in use from its metrics.
func operatorFigures(t *testing.T, metricsAddr string) (goroutines, heapMiB float64) {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("reading the operator's metrics: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		name, value, ok := strings.Cut(lines.Text(), " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "go_goroutines":
			goroutines = v
		case "go_memstats_heap_inuse_bytes":
			heapMiB = v / (1 << 20)
		}
	}
	return goroutines, heapMiB
}

// soakFaults come and go on a random app during the soak.
var soakFaults = []appFault{appFaults[0], appFaults[3], appFaults[5], appFaults[6]}

// TestSoak: random joiners, movers, renames, leavers and their returns, Role rule and
// assignment changes, while faults come and go on the apps and the operator is killed
// twice. At the end the apps hold exactly what was declared: no duplicate, no change
// lost, a returning leaver's accounts reactivated rather than made again. The last
// operator's goroutines and heap, read from its metrics after its first convergence
// and again at the end, show whether anything leaks.
func TestSoak(t *testing.T) {
	run := time.Duration(size(5, 15)) * time.Minute
	if d, err := time.ParseDuration(os.Getenv("ROSTER_SOAK")); err == nil {
		run = d // for a developer's shorter or longer run
	}
	o := newOrg(t, 23, "chat", "wiki", "crm")
	s := &soaker{org: o, dept: map[int]string{}, names: map[int][]string{}, suspended: map[int]bool{}, direct: map[int]bool{},
		everIn: map[string]map[int]bool{"chat": {}, "wiki": {}, "crm": {}}, changes: map[string]int{}, history: map[int][]string{}}
	metrics := ""
	start := func() *operator {
		metrics = freeAddr(t)
		return startOperator(t, "soak", suite.kubeconfig, "--metrics-bind-address="+metrics, "--metrics-secure=false")
	}
	op := start()
	var faultOn *app
	clearFault := func() {
		if faultOn != nil {
			faultOn.setFault(noFault)
			_ = faultOn.proxy.Toxics.RemoveToxic(context.Background(), "soak")
			faultOn = nil
		}
	}
	churn := func(d time.Duration) {
		for until := time.Now().Add(d); time.Now().Before(until); time.Sleep(time.Second) {
			if faultOn != nil {
				clearFault()
			} else if f := soakFaults[s.rng.IntN(len(soakFaults))]; s.rng.IntN(3) == 0 {
				faultOn = s.apps[s.rng.IntN(len(s.apps))]
				if f.toxic != "" {
					addToxic(t, faultOn.proxy, "soak", f.toxic, "downstream", f.attrs)
				} else {
					faultOn.setFault(f.http)
				}
			}
			for range 5 {
				s.step(t)
			}
		}
		clearFault()
	}
	for range 2 {
		churn(run / 3)
		op.kill()
		op = start()
	}
	waitUntil(t, 5*time.Minute, "the apps hold what was declared, after two kills", s.matches)
	goroutines, heap := operatorFigures(t, metrics)
	churn(run / 3)
	waitUntil(t, 5*time.Minute, "the apps hold what was declared, at the end", s.matches)
	goroutinesAtEnd, heapAtEnd := operatorFigures(t, metrics)
	t.Logf("soak of %s: %d people, changes %v, 2 kills: the apps hold exactly what was declared; the last operator had %.0f goroutines and %.1f MiB of heap in use after its first convergence, %.0f and %.1f MiB at the end",
		run, s.people, s.changes, goroutines, heap, goroutinesAtEnd, heapAtEnd)
	if goroutinesAtEnd > 1.25*goroutines+20 {
		t.Errorf("the operator's goroutines grew from %.0f to %.0f while it worked", goroutines, goroutinesAtEnd)
	}
}
