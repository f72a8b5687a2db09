package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers"
)

// TestANewLeaderTakesUpEveryRole: with automatic shards every replica reconciles Roles,
// but only the leader writes their counts, grants and conditions. A replica that comes
// to lead queues every Role again, for whatever the leader before it left unfinished (a
// Role whose last reconcile failed on the old leader gets no event of its own), and a
// replica that has lost its lease no longer does the main shard's work.
func TestANewLeaderTakesUpEveryRole(t *testing.T) {
	ns := namespace(t)
	want := map[types.NamespacedName]bool{}
	for i := range 3 {
		role := &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("role-%d", i)},
			Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Users: []string{"ada"}}}}
		create(t, role)
		want[types.NamespacedName{Namespace: ns, Name: role.Name}] = true
	}
	l := controllers.NewLeadership(4)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	if err := l.OnLead(testCtx, env.Client, &identityv1alpha1.RoleList{}, q); err != nil {
		t.Fatal(err)
	}
	if l.Main() {
		t.Fatal("a replica that does not lead does the main shard's work")
	}

	l.Lead()
	if !l.Main() {
		t.Fatal("the leader does not do the main shard's work")
	}
	queued := map[types.NamespacedName]bool{}
	waitFor(t, "every Role queued on taking the lead", func() (bool, string) {
		for q.Len() > 0 {
			req, _ := q.Get()
			queued[req.NamespacedName] = true
			q.Done(req)
		}
		missing := 0
		for key := range want {
			if !queued[key] {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d Roles not queued", missing, len(want))
	})

	l.Depose()
	if l.Main() {
		t.Error("a replica that lost its lease still does the main shard's work")
	}
}

// TestLettingShardsGoEndsWithTheEngines: a replica that lets shards go has every User
// of their namespaces reconciled; once its manager stops, no one reads those events
// any more, and the goroutine sending them ends instead of waiting for ever.
func TestLettingShardsGoEndsWithTheEngines(t *testing.T) {
	ns := namespace(t)
	for i := range 3 {
		create(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("user-%d", i)},
			Spec: identityv1alpha1.UserSpec{UserName: fmt.Sprintf("user-%d@example.com", i)}})
	}
	es := controllers.NewUnreadEngines(env.Client)
	ctx, stop := context.WithCancel(testCtx)
	started := make(chan error)
	go func() { started <- es.Start(ctx) }()
	sent := make(chan struct{})
	go func() {
		es.ReconcileUsers(ns)
		close(sent)
	}()
	stop()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	select {
	case <-sent:
	case <-time.After(time.Minute):
		t.Fatal("the Users' events are still being sent a minute after the engines stopped")
	}
}
