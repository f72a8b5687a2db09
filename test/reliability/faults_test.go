package reliability

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// appFault is one fault put on an app for a while: a toxic on its proxy, or an answer
// at the HTTP level. says lists what the AppConnection's Ready message may name it by
// while it lasts; nil when the fault slows the app without failing a request.
type appFault struct {
	name  string
	toxic string // toxiproxy type, "" for an HTTP fault
	attrs map[string]any
	http  httpFault
	says  []string
}

var appFaults = []appFault{
	{name: "latency and jitter", toxic: "latency", attrs: map[string]any{"latency": 400, "jitter": 300}},
	{name: "bandwidth", toxic: "bandwidth", attrs: map[string]any{"rate": 16}},
	{name: "slow close", toxic: "slow_close", attrs: map[string]any{"delay": 1500}},
	{name: "connection resets", toxic: "reset_peer", attrs: map[string]any{"timeout": 0}, says: []string{"reset", "EOF", "refused"}},
	{name: "black hole", toxic: "timeout", attrs: map[string]any{"timeout": 0}, says: []string{"timeout", "deadline", "Timeout"}},
	{name: "5xx burst", http: serverErrors, says: []string{"503"}},
	{name: "429 with Retry-After", http: tooMany, says: []string{"429", "rate", "slow down"}},
	{name: "truncated JSON", http: truncated, says: []string{"EOF", "unexpected", "decod", "JSON"}},
}

// TestFaultyApps puts each fault on one of three apps while people join and leave,
// after a phase without a fault that the figures are compared with. Afterwards every app
// holds exactly the declared accounts, none twice; while a failing fault lasted the
// AppConnection said so; and the faulty app saw no more account writes per account
// changed than in the clean phase (1.1 ×), leaving out the writes the fault answered
// itself and exact repeats of a write whose answer it lost, which are counted apart.
// The other apps' leaver p99 is reported beside the clean phase's.
func TestFaultyApps(t *testing.T) {
	// A black hole is reported after two request timeouts (5 s each here): the small
	// size's hold leaves room for that and the status write after it on a busy machine.
	hold := time.Duration(size(20, 60)) * time.Second
	batch := size(10, 100)
	o := newOrg(t, 19, "chat", "wiki", "crm")
	ph := &phases{org: o, crm: o.apps[2], others: o.apps[:2], batch: batch, leavers: size(3, 20), suspended: map[int]bool{}}
	ph.op = startOperator(t, "a", suite.kubeconfig)
	ph.hire(t) // the leavers of the first phase come from here
	waitUntil(t, 3*time.Minute, "the first people's accounts", func() (bool, string) { return o.converged(ph.people, ph.suspended) })

	clean := ph.run(t, nil, hold)
	t.Logf("clean: %s", clean)
	for _, f := range appFaults {
		t.Run(f.name, func(t *testing.T) {
			got := ph.run(t, &f, hold)
			t.Logf("%s: %s (clean: %.2f writes per account, leaver p99 %s)", f.name, got, clean.perAccount, clean.leaverP99)
			if got.perAccount > 1.1*clean.perAccount {
				t.Errorf("%s: %.2f account writes per account changed, more than 1.1 × the clean phase's %.2f", f.name, got.perAccount, clean.perAccount)
			}
		})
	}
	if d := o.duplicates(); d != 0 {
		t.Fatalf("%d duplicate accounts", d)
	}
}

// phases runs TestFaultyApps' phases on one org: people join, some leave, with or
// without a fault on crm.
type phases struct {
	*org
	op        *operator
	crm       *app
	others    []*app
	batch     int
	leavers   int
	people    int
	suspended map[int]bool
}

// phaseFigures is what one phase measured.
type phaseFigures struct {
	changed    int     // accounts crm created or deactivated
	perAccount float64 // crm's account writes per account changed, without faulted and repeats
	tally      tally
	said       string
	leaverP99  time.Duration // chat and wiki: from a leaver's suspension to the account's deactivation
}

func (f phaseFigures) String() string {
	return fmt.Sprintf("%d accounts changed, %.2f writes per account (%d writes, %d answered by the fault, %d repeats, %d lookups); other apps' leaver p99 %s; said %q",
		f.changed, f.perAccount, f.tally.writes, f.tally.faulted, f.tally.repeats, f.tally.lookups, f.leaverP99, f.said)
}

func (ph *phases) hire(t *testing.T) {
	ph.org.hire(t, ph.people, ph.people+ph.batch)
	ph.people += ph.batch
}

// run is one phase: the fault (nil: none) is put on crm for hold while a batch joins and
// some earlier people leave; then it is taken away and every app must converge.
func (ph *phases) run(t *testing.T, f *appFault, hold time.Duration) phaseFigures {
	t.Helper()
	before := ph.crm.tally()
	held0, active0 := ph.crm.accounts()
	if f != nil && f.toxic != "" {
		addToxic(t, ph.crm.proxy, "fault", f.toxic, "downstream", f.attrs)
	} else if f != nil {
		ph.crm.setFault(f.http)
	}
	start := time.Now()
	leaving := ph.pickLeavers()
	for _, p := range leaving {
		ph.setState(t, p, identityv1alpha1.UserStateSuspended)
		ph.suspended[p] = true
	}
	timings := ph.watchLeavers(leaving, start)
	ph.hire(t)
	var fig phaseFigures
	for time.Since(start) < hold {
		if msg := readyMessage("crm", ph.ns); f != nil && f.says != nil && containsAny(msg, f.says) {
			fig.said = msg
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f != nil && f.toxic != "" {
		removeToxic(t, ph.crm.proxy, "fault")
	} else if f != nil {
		ph.crm.setFault(noFault)
	}
	if f != nil && f.says != nil && fig.said == "" {
		t.Errorf("while %s lasted the AppConnection never said so (last: %q)", f.name, readyMessage("crm", ph.ns))
	}
	waitUntil(t, 3*time.Minute, "every app holds the declared accounts", func() (bool, string) {
		ok, why := ph.converged(ph.people, ph.suspended)
		return ok, why + "; chat says " + readyMessage("chat", ph.ns) + "; operator: " + ph.op.log.tail(3)
	})
	fig.leaverP99 = p99(<-timings)
	fig.tally = ph.crm.tally().minus(before)
	held, active := ph.crm.accounts()
	for name := range held {
		_, existed := held0[name]
		if !existed {
			fig.changed++ // created
		}
		if active[name] == 0 && (!existed || active0[name] > 0) {
			fig.changed++ // deactivated
		}
	}
	fig.perAccount = float64(fig.tally.writes-fig.tally.faulted-fig.tally.repeats) / float64(max(fig.changed, 1))
	return fig
}

// pickLeavers picks people with accounts (entitled, hired in an earlier phase, still
// active) to leave.
func (ph *phases) pickLeavers() []int {
	var out []int
	for tries := 0; len(out) < ph.leavers && tries < 100*ph.leavers; tries++ {
		p := ph.rng.IntN(ph.people)
		if entitled(p) && !ph.suspended[p] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// watchLeavers measures, in the apps without the fault, how long each leaver's account
// stayed active after the suspension; the result comes once every one is inactive (or
// after three minutes).
func (ph *phases) watchLeavers(leaving []int, since time.Time) <-chan []time.Duration {
	out := make(chan []time.Duration, 1)
	go func() {
		var took []time.Duration
		pending := map[string]bool{}
		for _, a := range ph.others {
			for _, p := range leaving {
				pending[a.name+" "+fmt.Sprintf("p%05d@example.com", p)] = true
			}
		}
		for deadline := time.Now().Add(3 * time.Minute); len(pending) > 0 && time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
			for _, a := range ph.others {
				_, active := a.accounts()
				for _, p := range leaving {
					key := a.name + " " + fmt.Sprintf("p%05d@example.com", p)
					if pending[key] && active[fmt.Sprintf("p%05d@example.com", p)] == 0 {
						delete(pending, key)
						took = append(took, time.Since(since))
					}
				}
			}
		}
		out <- took
	}()
	return out
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[(len(d)*99+99)/100-1].Round(time.Millisecond)
}

// readyMessage is an AppConnection's Ready reason and message.
func readyMessage(name, ns string) string {
	conn := &identityv1alpha1.AppConnection{}
	if err := suite.env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, conn); err != nil {
		return err.Error()
	}
	c := meta.FindStatusCondition(conn.Status.Conditions, identityv1alpha1.ConditionReady)
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%s: %s", c.Reason, c.Message)
}

func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
