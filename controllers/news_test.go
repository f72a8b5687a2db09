package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// TestAJoinerWhoseAccountCameFirstIsAnnounced: a new User's first status can show its
// account active while the User still converges (its groups); the reconcile that makes
// it Ready announces a joiner all the same. A User met already Ready with that account,
// as after a restart, is no joiner.
func TestAJoinerWhoseAccountCameFirstIsAnnounced(t *testing.T) {
	key := types.NamespacedName{Namespace: "acme", Name: "ada"}
	user := func(ready metav1.ConditionStatus) *identityv1alpha1.User {
		u := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec: identityv1alpha1.UserSpec{UserName: "ada@example.com"}}
		u.Status.Phase = identityv1alpha1.UserPhaseActive
		u.Status.Accounts = []identityv1alpha1.UserAccount{{App: "chat", State: identityv1alpha1.AccountStateActive}}
		u.Status.Conditions = []metav1.Condition{{Type: identityv1alpha1.ConditionReady, Status: ready, Reason: "Test"}}
		return u
	}
	fresh, converging, ready := &identityv1alpha1.User{}, user(metav1.ConditionFalse), user(metav1.ConditionTrue)
	now := time.Now()
	var j journeys
	lastReady, known, leftAt := j.step(key, fresh, converging, false, now)
	if _, news := userNews(fresh, converging, lastReady, known, leftAt, nil); news {
		t.Fatal("news of a User not ready yet")
	}
	lastReady, known, leftAt = j.step(key, converging, ready, false, now)
	if e, news := userNews(converging, ready, lastReady, known, leftAt, nil); !news || e.Kind != identityv1alpha1.NotifyJoiner {
		t.Fatalf("the reconcile that made the User Ready told %+v (news: %v), want a joiner", e, news)
	}
	var restarted journeys
	lastReady, known, leftAt = restarted.step(key, ready, ready, false, now)
	if e, news := userNews(ready, ready, lastReady, known, leftAt, nil); news {
		t.Fatalf("a User met already Ready was told as %s", e.Kind)
	}
}
