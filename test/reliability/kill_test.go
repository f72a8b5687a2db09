package reliability

import (
	"slices"
	"testing"
	"time"
)

// TestKillDuringTheInitialSync: people join three apps while the operator is killed
// (SIGKILL) at random moments, answers from the apps slowed down so that kills land
// between a create reaching an app and the operator recording it. After the last
// restart every entitled person has exactly one account in every app, and no one else
// has any, although the apps would take a second create for the same userName.
func TestKillDuringTheInitialSync(t *testing.T) {
	people, kills := size(150, 2000), size(3, 5)
	o := newOrg(t, 13, "chat", "wiki", "crm")
	o.slowAnswers(t, 150, 100)
	op := startOperator(t, "a", suite.kubeconfig)
	o.hire(t, 0, people)

	// Kill at seeded moments: after a random share of the creates the apps must see.
	want := 3 * people * 4 / 5
	moments := make([]int, kills)
	for i := range moments {
		moments[i] = o.rng.IntN(want * 9 / 10)
	}
	slices.Sort(moments)
	for i, at := range moments {
		waitUntil(t, 3*time.Minute, "the apps see creates", func() (bool, string) {
			n := o.creates()
			return n >= at, "creates: " + itoa(n)
		})
		op.kill()
		t.Logf("kill %d at %s, %d creates of %d", i+1, time.Now().Format("15:04:05.000"), o.creates(), want)
		op = startOperator(t, "a", suite.kubeconfig)
	}
	o.fastAnswers(t)
	waitUntil(t, 5*time.Minute, "every app holds exactly the declared accounts", func() (bool, string) {
		return o.converged(people, nil)
	})
	waitUntil(t, 2*time.Minute, "every User Ready", o.usersReady)
	if d := o.duplicates(); d != 0 {
		t.Fatalf("%d duplicate accounts", d)
	}
	t.Logf("%d people, %d kills: %d creates for %d accounts, 0 duplicates", people, kills, o.creates(), want)
}
