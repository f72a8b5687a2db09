package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

const leaseName = "roster.identity.roster.dev"

// leader is the identity holding the operator's lease, "" if none.
func leader() string {
	lease := &coordinationv1.Lease{}
	if err := suite.env.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: leaseName}, lease); err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// killLeader kills the leading replica and returns how long the other took to lead.
func killLeader(t *testing.T, leading *operator) time.Duration {
	t.Helper()
	was := leader()
	leading.kill()
	killed := time.Now()
	waitUntil(t, time.Minute, "the standby takes the lead", func() (bool, string) {
		now := leader()
		return now != "" && now != was, "lease held by " + now
	})
	return time.Since(killed)
}

// TestLeaderFailover: two replicas with leader election; the leader is killed during
// the initial sync, and again during a burst of leavers. The standby takes over within
// the lease, converges, and duplicates nothing; every leaver is deactivated.
func TestLeaderFailover(t *testing.T) {
	people := size(100, 2000)
	o := newOrg(t, 17, "chat", "wiki")
	o.slowAnswers(t, 50, 50)
	stale := leader() // an earlier scenario's killed operator may still hold the lease
	a := startOperator(t, "a", suite.kubeconfig)
	waitForLeader(t, stale)
	b := startOperator(t, "b", suite.kubeconfig)

	o.hire(t, 0, people)
	waitUntil(t, 3*time.Minute, "a third of the creates", func() (bool, string) {
		n := o.creates()
		return n >= 2*people*4/5/3, fmt.Sprint(n)
	})
	first := killLeader(t, a)
	waitUntil(t, 5*time.Minute, "the new leader converges", func() (bool, string) { return o.converged(people, nil) })

	startOperator(t, "a", suite.kubeconfig) // back, as the standby
	leavers := map[int]bool{}
	for i := 0; len(leavers) < people/4; i++ {
		if p := o.rng.IntN(people); entitled(p) {
			leavers[p] = true
		}
	}
	for p := range leavers {
		o.setState(t, p, identityv1alpha1.UserStateSuspended)
	}
	waitUntil(t, 2*time.Minute, "some leavers deactivated", func() (bool, string) {
		_, active := o.apps[0].accounts()
		gone := 0
		for p := range leavers {
			if active[fmt.Sprintf("p%05d@example.com", p)] == 0 {
				gone++
			}
		}
		return gone > 0, fmt.Sprint(gone)
	})
	second := killLeader(t, b)
	o.fastAnswers(t)
	waitUntil(t, 5*time.Minute, "every leaver deactivated, everyone else active, once", func() (bool, string) {
		return o.converged(people, leavers)
	})
	if d := o.duplicates(); d != 0 {
		t.Fatalf("%d duplicate accounts", d)
	}
	t.Logf("takeover after a killed leader: %s during the initial sync, %s during the leavers (lease 4s, retry 0.5s)", first.Round(time.Millisecond), second.Round(time.Millisecond))
}
