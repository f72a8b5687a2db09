package reliability

import (
	"testing"
	"time"

	"github.com/rosterhq/roster/controllers"
)

// TestGracefulShutdown: SIGTERM mid-sync makes the operator finish or abandon what it
// has in flight and exit 0 within the grace period; the next process adopts what was
// in flight and duplicates nothing.
func TestGracefulShutdown(t *testing.T) {
	people := size(100, 1000)
	o := newOrg(t, 23, "chat", "wiki")
	o.slowAnswers(t, 200, 100)
	op := startOperator(t, "a", suite.kubeconfig)
	o.hire(t, 0, people)
	waitUntil(t, 2*time.Minute, "the sync is under way", func() (bool, string) {
		n := o.creates()
		return n >= people/2, itoa(n)
	})
	code, took, err := op.terminate(controllers.GracefulShutdown + 10*time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after SIGTERM the operator ended with %d (%v) in %s, want exit 0 within the grace period", code, err, took)
	}
	t.Logf("SIGTERM mid-sync: exit 0 in %s", took.Round(time.Millisecond))
	o.fastAnswers(t)
	startOperator(t, "b", suite.kubeconfig)
	waitUntil(t, 3*time.Minute, "the next process converges", func() (bool, string) { return o.converged(people, nil) })
	if d := o.duplicates(); d != 0 {
		t.Fatalf("%d duplicate accounts", d)
	}
}
