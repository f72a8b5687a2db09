package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/webhook"
	"github.com/rosterhq/roster/controllers/notify"
)

const notifySecret = "notifier-signing-secret-32-bytes"

// inbox is a signed webhook receiver that keeps the messages it accepts; while held, it
// answers nothing until the test ends.
type inbox struct {
	*httptest.Server
	mu       sync.Mutex
	messages []notify.WebhookMessage
	waiting  int
	held     chan struct{}
}

func newInbox(t *testing.T, hold bool) *inbox {
	in := &inbox{held: make(chan struct{})}
	in.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(r.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute, []byte(notifySecret)); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if hold {
			in.mu.Lock()
			in.waiting++
			in.mu.Unlock()
			<-in.held
			return
		}
		var m notify.WebhookMessage
		_ = json.Unmarshal(body, &m)
		in.mu.Lock()
		in.messages = append(in.messages, m)
		in.mu.Unlock()
	}))
	t.Cleanup(func() { close(in.held); in.Close() })
	return in
}

func (in *inbox) of(kind identityv1alpha1.NotificationEvent) []notify.WebhookMessage {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []notify.WebhookMessage
	for _, m := range in.messages {
		if m.Kind == string(kind) {
			out = append(out, m)
		}
	}
	return out
}

func webhookNotifier(t *testing.T, ns, name, url string, events ...identityv1alpha1.NotificationEvent) *identityv1alpha1.Notifier {
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-signing"}, StringData: map[string]string{"secret": notifySecret}})
	return &identityv1alpha1.Notifier{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.NotifierSpec{Webhook: &identityv1alpha1.WebhookChannel{URL: url, SigningSecretRef: identityv1alpha1.LocalObjectReference{Name: name + "-signing"}},
			Events: events, Digest: identityv1alpha1.NotificationDigest{Quiet: &metav1.Duration{Duration: 2 * time.Second}}}}
}

func waitForNotifier(t *testing.T, ns, name string, ok func(*identityv1alpha1.Notifier) bool) *identityv1alpha1.Notifier {
	t.Helper()
	n := &identityv1alpha1.Notifier{}
	waitFor(t, "notifier "+name, func() (bool, string) {
		n = get(t, ns, name, &identityv1alpha1.Notifier{})
		_, msg := ready(n.Status.Conditions)
		return ok(n), fmt.Sprintf("%+v %s", n.Status, msg)
	})
	return n
}

// An access request reaches the Notifier with the command its approvers run, then its
// approval; 200 joiners at once arrive as one digest naming each of them once; the
// Notifier counts what it delivered.
func TestNotifierTellsOfRequestsAndJoiners(t *testing.T) {
	ns := namespace(t)
	in := newInbox(t, false)
	ada, grace := newUser(ns, "ada", "eng"), newUser(ns, "grace", "eng")
	ada.Spec.Manager = &identityv1alpha1.LocalObjectReference{Name: "grace"}
	create(t, webhookNotifier(t, ns, "ops", in.URL), grace, ada, requestableApp(ns, "wiki", identityv1alpha1.RequestPolicy{}))
	waitForNotifier(t, ns, "ops", func(n *identityv1alpha1.Notifier) bool { ok, _ := ready(n.Status.Conditions); return ok })

	create(t, accessRequest(ns, "ada-wiki", "ada", "wiki", time.Hour, "eng"))
	waitFor(t, "the request announced", func() (bool, string) { return len(in.of(identityv1alpha1.NotifyAccessRequested)) == 1, "" })
	m := in.of(identityv1alpha1.NotifyAccessRequested)[0]
	if !strings.Contains(m.Command, "kubectl patch accessrequest -n "+ns+" ada-wiki") || !strings.Contains(m.Text, "Approvers: grace@example.com") {
		t.Fatalf("the request's message: %+v", m)
	}
	decide(t, ns, "ada-wiki", "grace@example.com", identityv1alpha1.DecisionApprove)
	waitFor(t, "the approval announced", func() (bool, string) { return len(in.of(identityv1alpha1.NotifyAccessApproved)) == 1, "" })
	if m := in.of(identityv1alpha1.NotifyAccessApproved)[0]; !strings.Contains(m.Title, "approved by grace@example.com") {
		t.Fatalf("the approval's message: %q", m.Title)
	}

	create(t, memoryConnection(ns, "chat"), roleWithGrants(ns, "everyone", `user.department == "new"`, grant("chat")))
	var names []string
	for i := range 200 {
		u := newUser(ns, fmt.Sprintf("new-%03d", i), "new")
		create(t, u)
		names = append(names, u.Spec.UserName)
	}
	var joined []string
	waitFor(t, "200 joiners announced", func() (bool, string) {
		joined = nil
		for _, m := range in.of(identityv1alpha1.NotifyJoiner) {
			for _, e := range m.Events {
				if strings.HasPrefix(e.Person.Name, "new-") { // ada, whose first account came with her request, joined too
					joined = append(joined, e.Person.UserName)
				}
			}
		}
		return len(joined) >= 200, fmt.Sprintf("%d joiners in %d messages", len(joined), len(in.of(identityv1alpha1.NotifyJoiner)))
	})
	sort.Strings(joined)
	if !slices.Equal(joined, names) {
		t.Fatalf("joiners announced: %d, want each of the 200 once", len(joined))
	}
	if n := len(in.of(identityv1alpha1.NotifyJoiner)); n > 3 {
		t.Fatalf("200 joiners took %d messages", n)
	}
	t.Logf("200 joiners in %d message(s)", len(in.of(identityv1alpha1.NotifyJoiner)))

	create(t, roleWithGrants(ns, "moved", `user.department == "moved"`, grant("wiki")))
	update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "new-001"}}, func(u *identityv1alpha1.User) { u.Spec.Department = "moved" })
	update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "new-002"}}, func(u *identityv1alpha1.User) {
		u.Spec.State = identityv1alpha1.UserStateSuspended
	})
	waitFor(t, "the mover and the leaver announced", func() (bool, string) {
		return len(in.of(identityv1alpha1.NotifyMover)) == 1 && len(in.of(identityv1alpha1.NotifyLeaver)) == 1, ""
	})
	if e := in.of(identityv1alpha1.NotifyMover)[0].Events[0]; e.Person.Name != "new-001" || strings.Join(e.Lines, "; ") != "gained: wiki; lost: chat" {
		t.Fatalf("the mover: %+v", e)
	}
	if e := in.of(identityv1alpha1.NotifyLeaver)[0].Events[0]; e.Person.Name != "new-002" || len(e.Lines) != 1 || !strings.HasPrefix(e.Lines[0], "chat: off ") ||
		!strings.HasSuffix(e.Lines[0], " after leaving") {
		t.Fatalf("the leaver: %+v", e)
	}
	waitForNotifier(t, ns, "ops", func(n *identityv1alpha1.Notifier) bool {
		return n.Status.Delivered >= 204 && n.Status.Channel == "Webhook" && n.Status.LastDeliveryTime != nil
	})
}

// A Notifier whose Secret is missing, or whose receiver refuses its messages for good,
// says so and waits for a person.
func TestABrokenNotifierSaysWhy(t *testing.T) {
	ns := namespace(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(gone.Close)
	missing := webhookNotifier(t, ns, "missing", gone.URL)
	missing.Spec.Webhook.SigningSecretRef.Name = "nowhere"
	create(t, missing, webhookNotifier(t, ns, "refused", gone.URL, identityv1alpha1.NotifyJoiner))
	waitForNotifier(t, ns, "refused", func(n *identityv1alpha1.Notifier) bool { ok, _ := ready(n.Status.Conditions); return ok })
	create(t, memoryConnection(ns, "wiki"), newUser(ns, "ada", "eng"),
		&identityv1alpha1.AppAssignment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada-wiki"},
			Spec: identityv1alpha1.AppAssignmentSpec{UserRef: &identityv1alpha1.LocalObjectReference{Name: "ada"}, App: "wiki"}})
	waitForNotifier(t, ns, "missing", func(n *identityv1alpha1.Notifier) bool {
		c := stalledCondition(n.Status.Conditions)
		return c != nil && c.Reason == identityv1alpha1.ReasonSecretNotFound && strings.Contains(c.Message, "nowhere")
	})
	n := waitForNotifier(t, ns, "refused", func(n *identityv1alpha1.Notifier) bool {
		c := stalledCondition(n.Status.Conditions)
		return c != nil && c.Reason == identityv1alpha1.ReasonDeliveryFailing && n.Status.Failed == 1
	})
	if strings.Contains(n.Status.LastFailure, gone.URL) || !strings.Contains(n.Status.LastFailure, "404") {
		t.Fatalf("lastFailure: %q", n.Status.LastFailure)
	}
}

func stalledCondition(conds []metav1.Condition) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == identityv1alpha1.ConditionStalled && conds[i].Status == metav1.ConditionTrue {
			return &conds[i]
		}
	}
	return nil
}

// A channel that never answers does not hold up deprovisioning: every leaver's account
// is off while the channel still has not answered its first message. The leavers'
// times are measured beside those of a namespace without a Notifier.
func TestAHangingChannelDoesNotDelayLeavers(t *testing.T) {
	hanging := newInbox(t, true)
	var p99 [2]time.Duration
	for i, withNotifier := range []bool{false, true} {
		ns := namespace(t)
		if withNotifier {
			n := webhookNotifier(t, ns, "stuck", hanging.URL)
			n.Spec.Digest.Quiet = &metav1.Duration{}
			create(t, n)
		}
		p99[i] = leaverP99(t, ns, 40)
		if withNotifier {
			hanging.mu.Lock()
			waiting, delivered := hanging.waiting, len(hanging.messages)
			hanging.mu.Unlock()
			if waiting == 0 || delivered != 0 {
				t.Fatalf("the channel got %d messages and answered %d: it did not hang through the leavers", waiting, delivered)
			}
		}
	}
	t.Logf("leaver p99 without a Notifier %v, with a hanging one %v", p99[0], p99[1])
}

// leaverP99 gives n people an account, suspends them all, and returns the 99th
// percentile of the time from suspension to the account's deactivation.
func leaverP99(t *testing.T, ns string, n int) time.Duration {
	t.Helper()
	conn, most := memoryConnection(ns, "wiki"), int32(n)
	conn.Spec.SafetyThreshold = &identityv1alpha1.SafetyThreshold{MaxCount: &most}
	create(t, conn, roleWithGrants(ns, "all", `user.department == "ops"`, grant("wiki")))
	for i := range n {
		create(t, newUser(ns, fmt.Sprintf("leaver-%02d", i), "ops"))
	}
	waitFor(t, "every account active", func() (bool, string) {
		a := memoryApp(ns, "wiki")
		return a != nil && len(activeAccounts(a.Accounts())) == n, ""
	})
	start := time.Now()
	for i := range n {
		update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("leaver-%02d", i)}}, func(u *identityv1alpha1.User) {
			u.Spec.State = identityv1alpha1.UserStateSuspended
		})
	}
	off := map[string]time.Duration{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(off) < n && ctx.Err() == nil {
		for _, acc := range memoryApp(ns, "wiki").Accounts() {
			if _, seen := off[acc.UserName()]; !acc.Active && !seen {
				off[acc.UserName()] = time.Since(start)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(off) < n {
		t.Fatalf("%d of %d leavers' accounts are off after a minute", len(off), n)
	}
	var took []time.Duration
	for _, d := range off {
		took = append(took, d)
	}
	slices.Sort(took)
	return took[len(took)*99/100]
}

func activeAccounts(accounts []connectors.Account) []connectors.Account {
	var out []connectors.Account
	for _, a := range accounts {
		if a.Active {
			out = append(out, a)
		}
	}
	return out
}

// Notifiers hear of an app failing and recovering, of accounts no User holds, and of a
// plan the safety threshold holds, with the command to approve it.
func TestNotifierTellsOfAppTrouble(t *testing.T) {
	ns := namespace(t)
	in := newInbox(t, false)
	create(t, webhookNotifier(t, ns, "ops", in.URL, identityv1alpha1.NotifyAppFailing, identityv1alpha1.NotifyAppRecovered,
		identityv1alpha1.NotifyUnmanagedAccounts, identityv1alpha1.NotifyPlanHeld))
	waitForNotifier(t, ns, "ops", func(n *identityv1alpha1.Notifier) bool { ok, _ := ready(n.Status.Conditions); return ok })

	crm := memoryApp(ns, "crm")
	if _, err := crm.Create(context.Background(), connectors.Account{Attributes: map[string]any{connectors.AttrUserName: "stranger@example.com"}, Active: true}); err != nil {
		t.Fatal(err)
	}
	crm.FailWith(&connectors.PermanentError{Status: 401, Message: "the token was revoked", Err: connectors.ErrUnauthorized})
	conn, one := memoryConnection(ns, "crm"), int32(1)
	conn.Spec.SafetyThreshold = &identityv1alpha1.SafetyThreshold{MaxCount: &one}
	role := roleWithGrants(ns, "sales", `user.department == "sales"`, grant("crm"))
	create(t, conn, role, newUser(ns, "ada", "sales"), newUser(ns, "bob", "sales"), newUser(ns, "cy", "sales"))
	waitFor(t, "the failing app announced", func() (bool, string) { return len(in.of(identityv1alpha1.NotifyAppFailing)) == 1, "" })
	if m := in.of(identityv1alpha1.NotifyAppFailing)[0]; m.Title != "crm is failing: CredentialsRejected" {
		t.Fatalf("the failing app's message: %q", m.Title)
	}
	failing := map[string]string{"kind": "AppConnection", "object": ns + "/crm", "type": "Ready", "reason": identityv1alpha1.ReasonCredentialsRejected}
	if v, found := metricValue(t, "roster_condition", failing); !found || v != 0 {
		t.Fatalf("roster_condition%v = %v (found %v), want 0", failing, v, found)
	}
	if v, found := metricValue(t, "roster_condition", map[string]string{"kind": "Notifier", "object": ns + "/ops", "type": "Ready"}); !found || v != 1 {
		t.Fatalf("the Notifier's Ready in roster_condition = %v (found %v)", v, found)
	}
	crm.FailWith(nil)
	// As an admin does once the token is replaced: ask for a sync now, rather than wait
	// for the next retry, which backs off to a minute and more on a busy machine.
	update(t, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crm"}}, func(c *identityv1alpha1.AppConnection) {
		metav1.SetMetaDataAnnotation(&c.ObjectMeta, identityv1alpha1.AnnotationResync, time.Now().Format(time.RFC3339Nano))
	})
	waitFor(t, "the recovery and the unmanaged account announced", func() (bool, string) {
		return len(in.of(identityv1alpha1.NotifyAppRecovered)) == 1 && len(in.of(identityv1alpha1.NotifyUnmanagedAccounts)) == 1, ""
	})
	if m := in.of(identityv1alpha1.NotifyUnmanagedAccounts)[0]; m.Title != "crm has 1 accounts no User holds" || !strings.Contains(m.Text, "stranger@example.com") {
		t.Fatalf("the unmanaged accounts' message: %+v", m)
	}
	waitFor(t, "three accounts beside the stranger's", func() (bool, string) { return len(activeAccounts(crm.Accounts())) == 4, "" })
	update(t, role, func(r *identityv1alpha1.Role) { r.Spec.Members.Rule = `user.department == "nobody"` })
	waitFor(t, "the held plan announced", func() (bool, string) { return len(in.of(identityv1alpha1.NotifyPlanHeld)) == 1, "" })
	m := in.of(identityv1alpha1.NotifyPlanHeld)[0]
	held := get(t, ns, "crm", &identityv1alpha1.AppConnection{})
	if held.Status.Plan == nil || !strings.Contains(m.Command, "kubectl annotate appconnection -n "+ns+" crm "+identityv1alpha1.AnnotationApprovePlan+"="+held.Status.Plan.ID) {
		t.Fatalf("the held plan's command: %q", m.Command)
	}
}

// metricValue is the value of the operator's metric whose labels include labels.
func metricValue(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}
