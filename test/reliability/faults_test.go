package reliability

import (
	"context"
	"fmt"
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

// TestFaultyApps puts each fault on one of three apps while people join, move out of
// the Role and leave. Afterwards every app holds exactly the declared accounts, none
// twice, and while a failing fault lasted the AppConnection said so.
func TestFaultyApps(t *testing.T) {
	hold := time.Duration(size(15, 60)) * time.Second
	batch := size(10, 100)
	o := newOrg(t, 19, "chat", "wiki", "crm")
	crm := o.apps[2]
	op := startOperator(t, "a", suite.kubeconfig)
	people := 0
	suspended := map[int]bool{}
	for _, f := range appFaults {
		t.Run(f.name, func(t *testing.T) {
			if f.toxic != "" {
				addToxic(t, crm.proxy, "fault", f.toxic, "downstream", f.attrs)
			} else {
				crm.setFault(f.http)
			}
			start := time.Now()
			o.hire(t, people, people+batch)
			people += batch
			for _, p := range []int{o.rng.IntN(people), o.rng.IntN(people)} {
				if entitled(p) && !suspended[p] {
					o.setState(t, p, identityv1alpha1.UserStateSuspended)
					suspended[p] = true
				}
			}
			said := ""
			for time.Since(start) < hold {
				if msg := readyMessage("crm", o.ns); f.says != nil && containsAny(msg, f.says) {
					said = msg
				}
				time.Sleep(200 * time.Millisecond)
			}
			if f.toxic != "" {
				removeToxic(t, crm.proxy, "fault")
			} else {
				crm.setFault(noFault)
			}
			if f.says != nil && said == "" {
				t.Errorf("while %s lasted the AppConnection never said so (last: %q)", f.name, readyMessage("crm", o.ns))
			}
			waitUntil(t, 3*time.Minute, "every app holds the declared accounts after "+f.name, func() (bool, string) {
				ok, why := o.converged(people, suspended)
				return ok, why + "; chat says " + readyMessage("chat", o.ns) + "; operator: " + op.log.tail(3)
			})
			counts, faulted := crm.counts()
			t.Logf("%s: said %q; crm saw %d creates for %d people, %d requests answered by the fault", f.name, said, counts["POST /Users"], people, faulted)
		})
	}
	if d := o.duplicates(); d != 0 {
		t.Fatalf("%d duplicate accounts", d)
	}
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
