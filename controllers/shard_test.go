package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
)

// shardReplica starts a replica of the operator that runs one named shard, beside the
// suite's replica, which runs the main shard. Its memory apps are its own, so that what
// it writes can be told from what the main replica writes.
func shardReplica(t *testing.T, name string) *memory.Apps {
	t.Helper()
	shard, err := controllers.ParseShard(name)
	if err != nil {
		t.Fatal(err)
	}
	own := memory.NewApps()
	runReplica(t, ctrl.Options{}, controllers.Options{Registry: controllers.Connectors(own, nil), Sharding: controllers.NewSharding(shard, 0)})
	return own
}

// TestShardsSplitTheAppsBetweenReplicas: an app labelled with a shard is provisioned by
// that shard's replica alone, the other by the main replica alone; a User's status shows
// both accounts, each written by its replica; a leaver loses both; and a deleted User
// stays until the shard's replica has deprovisioned its account too.
func TestShardsSplitTheAppsBetweenReplicas(t *testing.T) {
	ns := namespace(t)
	shard := ns // a DNS label no other test uses
	shardApps := shardReplica(t, shard)
	wiki := memoryConnection(ns, "wiki")
	wiki.Labels = map[string]string{identityv1alpha1.LabelShard: shard}
	create(t, memoryConnection(ns, "chat"), wiki,
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("chat"), grant("wiki")),
		newUser(ns, "ada", "eng"), newUser(ns, "bob", "eng"), newUser(ns, "carol", "sales"))

	bothActive := func(name string) func() (bool, string) {
		return func() (bool, string) {
			u := get(t, ns, name, &identityv1alpha1.User{})
			ok, why := ready(u.Status.Conditions)
			both := accountState(u, "chat") == identityv1alpha1.AccountStateActive && accountState(u, "wiki") == identityv1alpha1.AccountStateActive
			return ok && both, fmt.Sprintf("%s; accounts %+v", why, u.Status.Accounts)
		}
	}
	waitFor(t, "ada has both accounts and is Ready", bothActive("ada"))
	waitFor(t, "bob has both accounts and is Ready", bothActive("bob"))

	chat, wikiApp := memoryApp(ns, "chat"), shardApps.Get(ns+"/wiki")
	for _, who := range []string{"ada@example.com", "bob@example.com"} {
		if a, ok := memoryAccount(chat, who); !ok || !a.Active {
			t.Errorf("chat: %s has no active account, written by the main replica", who)
		}
		if a, ok := memoryAccount(wikiApp, who); !ok || !a.Active {
			t.Errorf("wiki: %s has no active account, written by the shard's replica", who)
		}
	}
	if n := len(memoryApp(ns, "wiki").Requests()); n != 0 {
		t.Errorf("the main replica talked to the shard's app: %v", memoryApp(ns, "wiki").Requests())
	}
	if n := len(shardApps.Get(ns + "/chat").Requests()); n != 0 {
		t.Errorf("the shard's replica talked to the main replica's app: %v", shardApps.Get(ns+"/chat").Requests())
	}
	ada := get(t, ns, "ada", &identityv1alpha1.User{})
	if !slices.Contains(ada.Finalizers, identityv1alpha1.ShardFinalizerPrefix+shard) || !slices.Contains(ada.Finalizers, identityv1alpha1.Finalizer) {
		t.Errorf("ada's finalizers: %v, want the main one and the shard's", ada.Finalizers)
	}
	carol := get(t, ns, "carol", &identityv1alpha1.User{})
	if len(carol.Status.Accounts) != 0 {
		t.Errorf("carol, in no Role, has accounts %+v", carol.Status.Accounts)
	}
	waitFor(t, "the wiki assignment counts two accounts, as the shard's replica reports", func() (bool, string) {
		a := get(t, ns, "eng-wiki", &identityv1alpha1.AppAssignment{})
		ok, why := ready(a.Status.Conditions)
		return ok && a.Status.Provisioned == 2 && a.Status.Desired == 2, fmt.Sprintf("%s; %d of %d", why, a.Status.Provisioned, a.Status.Desired)
	})
	waitFor(t, "the wiki AppConnection is Ready, as the shard's replica reports", func() (bool, string) {
		c := get(t, ns, "wiki", &identityv1alpha1.AppConnection{})
		return ready(c.Status.Conditions)
	})

	// A leaver loses both accounts, each through its own replica.
	update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	waitFor(t, "ada's accounts are deactivated in both apps", func() (bool, string) {
		c, _ := memoryAccount(chat, "ada@example.com")
		w, _ := memoryAccount(wikiApp, "ada@example.com")
		return !c.Active && !w.Active, fmt.Sprintf("chat active=%v wiki active=%v", c.Active, w.Active)
	})
	waitFor(t, "ada is Suspended with both accounts Deactivated", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		ok, why := ready(u.Status.Conditions)
		both := accountState(u, "chat") == identityv1alpha1.AccountStateDeactivated && accountState(u, "wiki") == identityv1alpha1.AccountStateDeactivated
		return ok && both && u.Status.Phase == identityv1alpha1.UserPhaseSuspended, fmt.Sprintf("%s; %+v", why, u.Status.Accounts)
	})

	// A deleted User waits for the shard: its app refuses to deactivate, so bob stays,
	// Deprovisioning, naming the shard, until it lets the shard's replica finish.
	wikiApp.FailWith(errors.New("wiki is down for maintenance"), memory.OpDeactivate, memory.OpDelete)
	bob := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bob"}}
	if err := env.Client.Delete(context.Background(), bob); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's chat account is deactivated and bob waits for the shard", func() (bool, string) {
		c, _ := memoryAccount(chat, "bob@example.com")
		u := get(t, ns, "bob", &identityv1alpha1.User{})
		r := meta.FindStatusCondition(u.Status.Conditions, identityv1alpha1.ConditionReady)
		waits := r != nil && r.Reason == identityv1alpha1.ReasonDeprovisioning && slices.Contains(u.Finalizers, identityv1alpha1.ShardFinalizerPrefix+shard)
		return !c.Active && waits && strings.Contains(r.Message, "shard "+shard), fmt.Sprintf("chat active=%v, finalizers %v, Ready %+v", c.Active, u.Finalizers, r)
	})
	if w, _ := memoryAccount(wikiApp, "bob@example.com"); !w.Active {
		t.Fatal("bob's wiki account is off though its app refuses")
	}
	wikiApp.FailWith(nil)
	waitFor(t, "bob is gone once the shard's app deactivated the account", func() (bool, string) {
		err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(bob), bob)
		return apierrors.IsNotFound(err), fmt.Sprintf("finalizers %v", bob.Finalizers)
	})
	if w, _ := memoryAccount(wikiApp, "bob@example.com"); w.Active {
		t.Fatal("bob went while his wiki account was active")
	}
}

// TestAShardNoReplicaLeadsIsReported: an AppConnection and a DirectorySync labelled
// with a shard whose replicas are not running say so (Stalled, naming the flag to start
// one with); once a replica of that shard leads, it runs them; when that replica dies
// without giving its lease up, they say so again once the lease has expired.
func TestAShardNoReplicaLeadsIsReported(t *testing.T) {
	ns := namespace(t)
	shard := ns
	only := ctrl.Options{Cache: cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}}}
	lease := controllers.LeaseTiming{Namespace: ns, Duration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond}
	runReplica(t, only, controllers.Options{Registry: controllers.Connectors(memory.NewApps(), nil), ShardLeaders: true, Leases: lease})

	wiki := memoryConnection(ns, "wiki")
	wiki.Labels = map[string]string{identityv1alpha1.LabelShard: shard}
	hr := &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr", Labels: wiki.Labels},
		Spec: identityv1alpha1.DirectorySyncSpec{SCIM: &identityv1alpha1.SCIMSource{TokenSecretRef: identityv1alpha1.SecretKeySelector{Name: "idp-token", Key: "token"}}}}
	create(t, wiki, hr)
	unled := func(name string, obj client.Object, status *identityv1alpha1.CommonStatus) func() (bool, string) {
		return func() (bool, string) {
			get(t, ns, name, obj)
			r := meta.FindStatusCondition(status.Conditions, identityv1alpha1.ConditionReady)
			stalled := meta.IsStatusConditionTrue(status.Conditions, identityv1alpha1.ConditionStalled)
			_, why := ready(status.Conditions)
			return r != nil && r.Reason == identityv1alpha1.ReasonShardNotRunning && stalled &&
				strings.Contains(r.Message, "--shard="+shard) && status.ObservedGeneration == obj.GetGeneration(), why
		}
	}
	conn, ds := &identityv1alpha1.AppConnection{}, &identityv1alpha1.DirectorySync{}
	waitFor(t, "the AppConnection says no replica runs its shard", unled("wiki", conn, &conn.Status.CommonStatus))
	waitFor(t, "the DirectorySync says no replica runs its shard", unled("hr", ds, &ds.Status.CommonStatus))

	renew := lease.RenewDeadline
	stop := runReplica(t, ctrl.Options{Cache: only.Cache, LeaderElection: true, LeaderElectionNamespace: ns,
		LeaderElectionID: controllers.Shard(shard).LeaderElectionID(controllers.LeaseBase),
		LeaseDuration:    &lease.Duration, RenewDeadline: &renew, RetryPeriod: &lease.RetryPeriod},
		controllers.Options{Registry: controllers.Connectors(memory.NewApps(), nil), Sharding: controllers.NewSharding(controllers.Shard(shard), 0)})
	waitFor(t, "the shard's replica runs the AppConnection", func() (bool, string) {
		return ready(get(t, ns, "wiki", conn).Status.Conditions)
	})

	stop() // its lease stays held, unrenewed, as a killed replica's does
	waitFor(t, "the AppConnection says no replica runs its shard once the lease expired", unled("wiki", conn, &conn.Status.CommonStatus))
	assertEvents(t, ns, "wiki", identityv1alpha1.ReasonShardNotRunning)
}

// TestParseShard: a shard is named by a DNS label, since it becomes a label value, a
// lease name and a finalizer; its replicas elect their leader by a lease of their own.
func TestParseShard(t *testing.T) {
	for name, valid := range map[string]bool{"": true, "east": true, "eu-1": true, "East": false, "eu_1": false, "eu.1": false, "auto-1": false, strings.Repeat("a", 64): false} {
		shard, err := controllers.ParseShard(name)
		if (err == nil) != valid {
			t.Errorf("ParseShard(%q): %v, want valid=%v", name, err, valid)
		}
		if err != nil && !strings.Contains(err.Error(), "--shard") {
			t.Errorf("ParseShard(%q): %q does not name the flag", name, err)
		}
		if valid && string(shard) != name {
			t.Errorf("ParseShard(%q) = %q", name, shard)
		}
	}
	if got := controllers.MainShard.LeaderElectionID("roster.identity.roster.dev"); got != "roster.identity.roster.dev" {
		t.Errorf("the main shard's lease is %q, want the unsharded operator's", got)
	}
	if got := controllers.Shard("east").LeaderElectionID("roster.identity.roster.dev"); got != "east.shard.roster.identity.roster.dev" {
		t.Errorf("shard east's lease is %q", got)
	}
}

// TestAUserIsNotReadyBeforeAnotherShardsAppHasItsAccount: the main replica's Ready
// counts an app another shard runs as pending while the User is entitled to it and that
// shard has not reported the account, rather than calling the User Ready on its own
// apps' accounts alone. The main replica also puts that shard's finalizer on the User,
// so that a deletion waits for the shard even before its replica has seen the User.
func TestAUserIsNotReadyBeforeAnotherShardsAppHasItsAccount(t *testing.T) {
	ns := namespace(t)
	wiki := memoryConnection(ns, "wiki")
	wiki.Labels = map[string]string{identityv1alpha1.LabelShard: ns} // no replica runs it
	create(t, memoryConnection(ns, "chat"), wiki,
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("chat"), grant("wiki")),
		newUser(ns, "ada", "eng"), newUser(ns, "carol", "sales"))
	waitFor(t, "ada's status shows her chat account", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		return accountState(u, "chat") == identityv1alpha1.AccountStateActive, fmt.Sprintf("%+v", u.Status.Accounts)
	})
	u := get(t, ns, "ada", &identityv1alpha1.User{})
	r := meta.FindStatusCondition(u.Status.Conditions, identityv1alpha1.ConditionReady)
	if r == nil || r.Status == metav1.ConditionTrue || !strings.Contains(r.Message, "wiki") {
		t.Errorf("ada, with no wiki account yet, has Ready %+v", r)
	}
	if !slices.Contains(u.Finalizers, identityv1alpha1.ShardFinalizerPrefix+ns) || !slices.Contains(u.Finalizers, identityv1alpha1.Finalizer) {
		t.Errorf("ada's finalizers: %v, want the main one and, put on by the main replica, the shard's", u.Finalizers)
	}
	waitFor(t, "carol, entitled to neither app, is Ready", func() (bool, string) {
		return ready(get(t, ns, "carol", &identityv1alpha1.User{}).Status.Conditions)
	})
}

// TestASuspendedUserWaitsForAnotherShardsDeactivation: the main replica does not call a
// suspended User done while an app another shard runs still records the account active
// and its policy deactivates it: the kill switch is not reported as thrown before every
// shard has thrown it.
func TestASuspendedUserWaitsForAnotherShardsDeactivation(t *testing.T) {
	ns := namespace(t)
	shard, err := controllers.ParseShard(ns)
	if err != nil {
		t.Fatal(err)
	}
	stopShard := runReplica(t, ctrl.Options{}, controllers.Options{Registry: controllers.Connectors(memory.NewApps(), nil), Sharding: controllers.NewSharding(shard, 0)})
	wiki := memoryConnection(ns, "wiki")
	wiki.Labels = map[string]string{identityv1alpha1.LabelShard: ns}
	create(t, memoryConnection(ns, "chat"), wiki,
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("chat"), grant("wiki")), newUser(ns, "ada", "eng"))
	waitFor(t, "ada has both accounts and is Ready", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		ok, why := ready(u.Status.Conditions)
		both := accountState(u, "chat") == identityv1alpha1.AccountStateActive && accountState(u, "wiki") == identityv1alpha1.AccountStateActive
		return ok && both, fmt.Sprintf("%s; %+v", why, u.Status.Accounts)
	})

	stopShard() // the shard's replica is gone: nothing deactivates the wiki account
	update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}, func(u *identityv1alpha1.User) { u.Spec.State = identityv1alpha1.UserStateSuspended })
	waitFor(t, "the main replica deactivates ada's chat account", func() (bool, string) {
		u := get(t, ns, "ada", &identityv1alpha1.User{})
		return accountState(u, "chat") == identityv1alpha1.AccountStateDeactivated && u.Status.Phase == identityv1alpha1.UserPhaseSuspended, fmt.Sprintf("%s %+v", u.Status.Phase, u.Status.Accounts)
	})
	u := get(t, ns, "ada", &identityv1alpha1.User{})
	r := meta.FindStatusCondition(u.Status.Conditions, identityv1alpha1.ConditionReady)
	if r == nil || r.Status == metav1.ConditionTrue || !strings.Contains(r.Message, "wiki") {
		t.Errorf("ada, suspended with her wiki account still active, has Ready %+v", r)
	}
}

// TestAUserMovedOffAnotherShardsAppWaitsForIt: when a User leaves or rejoins an app
// another shard runs, by a change of the User or of a Role, the main replica's Ready
// waits for that shard to deactivate or reactivate the account, rather than reading the
// account's last recorded state as done.
func TestAUserMovedOffAnotherShardsAppWaitsForIt(t *testing.T) {
	ns := namespace(t)
	shard, err := controllers.ParseShard(ns)
	if err != nil {
		t.Fatal(err)
	}
	apps := memory.NewApps() // the wiki's accounts outlive its replica
	startShard := func() func() {
		return runReplica(t, ctrl.Options{}, controllers.Options{Registry: controllers.Connectors(apps, nil), Sharding: controllers.NewSharding(shard, 0)})
	}
	stopShard := startShard()
	wiki := memoryConnection(ns, "wiki")
	wiki.Labels = map[string]string{identityv1alpha1.LabelShard: ns}
	ada := newUser(ns, "ada", "eng")
	ada.Spec.Title = "writer"
	create(t, memoryConnection(ns, "chat"), wiki, ada,
		roleWithGrants(ns, "eng", `user.department == "eng"`, grant("chat")),
		roleWithGrants(ns, "writers", `user.title == "writer"`, grant("wiki")))
	adaIsReadyWithWiki := func(want identityv1alpha1.AccountState) {
		t.Helper()
		waitFor(t, "ada is Ready with her wiki account "+string(want), func() (bool, string) {
			u := get(t, ns, "ada", &identityv1alpha1.User{})
			ok, why := ready(u.Status.Conditions)
			return ok && accountState(u, "wiki") == want, fmt.Sprintf("%s; %+v", why, u.Status.Accounts)
		})
	}
	setTitle := func(title, why string) {
		t.Helper()
		update(t, &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"}}, func(u *identityv1alpha1.User) { u.Spec.Title = title })
		u := &identityv1alpha1.User{}
		var r *metav1.Condition
		waitFor(t, "the main replica has seen ada's new title and her chat account is settled", func() (bool, string) {
			u = get(t, ns, "ada", &identityv1alpha1.User{})
			r = meta.FindStatusCondition(u.Status.Conditions, identityv1alpha1.ConditionReady)
			settled := r != nil && !strings.Contains(r.Message, "chat")
			return u.Status.ObservedGeneration == u.Generation && settled, fmt.Sprintf("observed %d of %d; %+v", u.Status.ObservedGeneration, u.Generation, r)
		})
		if r == nil || r.Status == metav1.ConditionTrue || !strings.Contains(r.Message, "wiki") {
			t.Errorf("ada, %s, has Ready %+v", why, r)
		}
	}
	adaIsReadyWithWiki(identityv1alpha1.AccountStateActive)

	stopShard() // nothing deactivates the wiki account
	setTitle("", "off the wiki with her account there still active")
	stopShard = startShard()
	adaIsReadyWithWiki(identityv1alpha1.AccountStateDeactivated)

	stopShard() // nothing reactivates the wiki account
	setTitle("writer", "back on the wiki with her account there still deactivated")
	stopShard = startShard()
	adaIsReadyWithWiki(identityv1alpha1.AccountStateActive)

	stopShard() // a change of the Role, not of ada, takes the wiki from her
	update(t, &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "writers"}}, func(r *identityv1alpha1.Role) {
		r.Spec.Members.Rule = `user.title == "editor"`
	})
	waitFor(t, "ada, off the wiki by her Role, waits for her wiki account to be deactivated", func() (bool, string) {
		r := meta.FindStatusCondition(get(t, ns, "ada", &identityv1alpha1.User{}).Status.Conditions, identityv1alpha1.ConditionReady)
		return r != nil && r.Status != metav1.ConditionTrue && strings.Contains(r.Message, "wiki"), fmt.Sprintf("%+v", r)
	})
}

// TestADirectorySyncCreatesUsersWithEveryShardsFinalizer: a User a DirectorySync writes
// carries, from its first version, the finalizer of every shard that runs an app of its
// namespace, so that a new User costs no second write for them.
func TestADirectorySyncCreatesUsersWithEveryShardsFinalizer(t *testing.T) {
	ns := namespace(t)
	wiki := memoryConnection(ns, "wiki")
	wiki.Labels = map[string]string{identityv1alpha1.LabelShard: ns} // no replica runs it
	create(t, wiki, memoryConnection(ns, "chat"))
	waitFor(t, "the main replica runs chat (and so has seen the wiki, created first)", func() (bool, string) {
		return ready(get(t, ns, "chat", &identityv1alpha1.AppConnection{}).Status.Conditions)
	})
	users := watchIn(t, &identityv1alpha1.UserList{}, ns)
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hr"}, Data: map[string]string{"people.csv": "id,firstName,lastName,email\nE1,Ada,Lovelace,ada@example.com\n"}},
		&identityv1alpha1.DirectorySync{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "workday"},
			Spec: identityv1alpha1.DirectorySyncSpec{HRIS: &identityv1alpha1.HRISSource{
				Format: "CSV", ConfigMapRef: &identityv1alpha1.ConfigMapKeySelector{Name: "hr", Key: "people.csv"}}},
		})
	select {
	case e := <-users.ResultChan():
		u, ok := e.Object.(*identityv1alpha1.User)
		if !ok || e.Type != watch.Added {
			t.Fatalf("the first news of the namespace's Users is %s %T", e.Type, e.Object)
		}
		if want := []string{identityv1alpha1.Finalizer, identityv1alpha1.ShardFinalizerPrefix + ns}; !slices.Equal(u.Finalizers, want) {
			t.Errorf("the DirectorySync created %s with finalizers %v, want %v", u.Name, u.Finalizers, want)
		}
	case <-time.After(time.Minute):
		t.Fatal("the DirectorySync wrote no User within a minute")
	}
}
