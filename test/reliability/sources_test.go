package reliability

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

// hrExport is an HR export server: a CSV of people, reached through a proxy, that can
// be cut short.
type hrExport struct {
	mu      sync.Mutex
	people  int
	partial bool // the export stops halfway through a row
	srv     *httptest.Server
	proxy   *toxiproxy.Proxy
}

func newHRExport(t *testing.T, name string, people int) *hrExport {
	t.Helper()
	h := &hrExport{people: people}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		people, partial := h.people, h.partial
		h.mu.Unlock()
		var b strings.Builder
		b.WriteString("id,firstName,lastName,email,department\n")
		for i := range people {
			fmt.Fprintf(&b, "e%05d,Person,%d,e%05d@example.com,eng\n", i, i, i)
		}
		csv := b.String()
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Length", fmt.Sprint(len(csv)))
		if partial {
			_, _ = w.Write([]byte(csv[:len(csv)/2])) // and the connection ends
			return
		}
		_, _ = w.Write([]byte(csv))
	}))
	t.Cleanup(h.srv.Close)
	h.proxy = proxyTo(t, name, strings.TrimPrefix(h.srv.URL, "http://"))
	return h
}

// sourceFault is one way a source fails, and what the DirectorySync may say of it.
type sourceFault struct {
	name        string
	start, stop func(t *testing.T)
	says        []string
}

// proxyFaults are the faults of any source behind a proxy: it goes away, or it hangs.
func proxyFaults(what string, p *toxiproxy.Proxy) []sourceFault {
	return []sourceFault{
		{name: what + " goes away",
			start: func(*testing.T) { p.Stop() },
			stop: func(t *testing.T) {
				if err := p.Start(); err != nil {
					t.Fatal(err)
				}
			},
			says: []string{"refused", "connect"}},
		{name: what + " hangs",
			start: func(t *testing.T) { addToxic(t, p, "hang", "timeout", "downstream", map[string]any{"timeout": 0}) },
			stop:  func(t *testing.T) { removeToxic(t, p, "hang") },
			says:  []string{"timeout", "deadline", "Timeout", "timed out"}},
	}
}

// hrFaults are the HR export server's faults.
func hrFaults(h *hrExport) []sourceFault {
	return append(proxyFaults("the export server", h.proxy),
		sourceFault{name: "the export is cut off halfway",
			start: func(*testing.T) { h.setPartial(true) },
			stop:  func(*testing.T) { h.setPartial(false) },
			says:  []string{"EOF", "unexpected", "short", "incomplete"}},
		sourceFault{name: "the export holds half the people",
			start: func(*testing.T) { h.setPeople(h.people / 2) },
			stop:  func(*testing.T) { h.setPeople(h.people * 2) },
			says:  []string{identityv1alpha1.ReasonSafetyThresholdExceeded}})
}

func (h *hrExport) setPartial(on bool) {
	h.mu.Lock()
	h.partial = on
	h.mu.Unlock()
}

func (h *hrExport) setPeople(n int) {
	h.mu.Lock()
	h.people = n
	h.mu.Unlock()
}

// TestFaultySources: the HR export goes away, hangs, is cut off, or comes back with
// half the people. No User is suspended or deleted because the source failed, and the
// DirectorySync says why it did not sync.
func TestFaultySources(t *testing.T) {
	people := size(40, 1000)
	maxPercent := int32(20)
	ns := suite.env.Namespace(t)
	hr := newHRExport(t, ns+"-hr", people)
	suite.env.Create(t, &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"},
		Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &identityv1alpha1.HRISSource{Format: "CSV", URL: "http://" + hr.proxy.Listen + "/people.csv"},
			// An export that is short but well formed reads as people leaving: the
			// threshold is what holds it.
			SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxPercent: &maxPercent}}})
	startOperator(t, "a", suite.kubeconfig)
	survivesFaults(t, ns, "hr", people, hrFaults(hr))
}

// survivesFaults waits until every person is an active User of the DirectorySync, then
// puts each fault on its source: while it lasts the DirectorySync must say why it does
// not sync and no User may be suspended or deleted; after it, the DirectorySync must be
// Ready again.
func survivesFaults(t *testing.T, ns, ds string, people int, faults []sourceFault) {
	t.Helper()
	allActive := func(when string) {
		t.Helper()
		if active, suspended := userStates(t, ns, ds); active != people || suspended != 0 {
			t.Fatalf("%s: %d Users active and %d suspended, want all %d active", when, active, suspended, people)
		}
	}
	waitUntil(t, 2*time.Minute, "every person is a User", func() (bool, string) {
		active, suspended := userStates(t, ns, ds)
		return active == people, fmt.Sprintf("%d active, %d suspended", active, suspended)
	})
	for i, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			f.start(t)
			resync(t, ns, ds, fmt.Sprint(i))
			waitUntil(t, 2*time.Minute, "the DirectorySync says why it did not sync", func() (bool, string) {
				msg := dsReady(t, ns, ds)
				return containsAny(msg, f.says), msg
			})
			t.Logf("%s: the DirectorySync says %q", f.name, dsReady(t, ns, ds))
			allActive("while " + f.name)
			f.stop(t)
			resync(t, ns, ds, fmt.Sprint(i)+"-after")
			waitUntil(t, 2*time.Minute, "the DirectorySync Ready again", func() (bool, string) {
				msg := dsReady(t, ns, ds)
				return strings.HasPrefix(msg, "True"), msg
			})
		})
	}
	allActive("at the end")
}

func resync(t *testing.T, ns, name, value string) {
	t.Helper()
	ds := &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+identityv1alpha1.AnnotationResync+`":"`+value+`"}}}`))
	if err := suite.env.Client.Patch(context.Background(), ds, patch); err != nil {
		t.Fatal(err)
	}
}

// dsReady is the DirectorySync's Ready status, reason and message, once it has seen its
// latest generation and resync.
func dsReady(t *testing.T, ns, name string) string {
	t.Helper()
	ds := &identityv1alpha1.DirectorySync{}
	if err := suite.env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, ds); err != nil {
		return err.Error()
	}
	c := meta.FindStatusCondition(ds.Status.Conditions, identityv1alpha1.ConditionReady)
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)
}

// userStates counts the DirectorySync's Users by state; deleted ones count as neither.
func userStates(t *testing.T, ns, name string) (active, suspended int) {
	t.Helper()
	var users identityv1alpha1.UserList
	if err := suite.env.Client.List(context.Background(), &users, client.InNamespace(ns), client.MatchingLabels{directory.LabelDirectorySync: name}); err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Items {
		switch {
		case u.DeletionTimestamp != nil:
		case u.Spec.State == identityv1alpha1.UserStateSuspended:
			suspended++
		default:
			active++
		}
	}
	return active, suspended
}
