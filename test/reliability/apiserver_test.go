package reliability

import (
	"testing"
	"time"
)

// TestAPIServerOutage cuts the operator off its API server mid-sync (every connection
// reset, new ones refused) and brings it back. Watches resume; a replica that lost its
// lease meanwhile exits and is started again, as the kubelet would; nothing is lost and
// nothing duplicated.
func TestAPIServerOutage(t *testing.T) {
	people := size(100, 1000)
	outage := time.Duration(size(6, 30)) * time.Second
	o := newOrg(t, 29, "chat", "wiki")
	o.slowAnswers(t, 100, 50)
	op := startOperator(t, "a", suite.proxiedKubeconfig)
	o.hire(t, 0, people/2)
	waitUntil(t, 2*time.Minute, "the sync is under way", func() (bool, string) {
		n := o.creates()
		return n >= people/4, itoa(n)
	})
	suite.apiserver.Stop()
	// People keep joining while the operator cannot see them.
	o.hire(t, people/2, people)
	time.Sleep(outage) // the outage itself, not a wait for something to happen
	if err := suite.apiserver.Start(); err != nil {
		t.Fatal(err)
	}
	restarts := 0
	select {
	case <-op.done:
		restarts++
		t.Logf("the operator exited during the outage (%v): started again", op.err)
		startOperator(t, "a", suite.proxiedKubeconfig)
	default:
	}
	o.fastAnswers(t)
	waitUntil(t, 3*time.Minute, "every app holds the declared accounts after the outage", func() (bool, string) {
		return o.converged(people, nil)
	})
	waitUntil(t, 2*time.Minute, "every User Ready", o.usersReady)
	if d := o.duplicates(); d != 0 {
		t.Fatalf("%d duplicate accounts", d)
	}
	t.Logf("API server cut off for %s mid-sync: %d restarts, converged, 0 duplicates", outage, restarts)
}
