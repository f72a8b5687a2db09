// Package reliability kills, fails over and starves the operator, run as the separate
// process `make build` produces, while it provisions into SCIM apps behind toxiproxy,
// and checks that nothing was lost or duplicated. `make test` runs every scenario at a
// small size; `make reliability` at full size (ROSTER_RELIABILITY=full).
package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/go-logr/logr"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/testenv"
)

// suite is what every scenario shares: one control plane, the operator binary, and the
// toxiproxy server whose proxies stand between the operator and its peers.
var suite struct {
	env    *testenv.Env
	binary string
	// kubeconfig reaches the API server directly; proxiedKubeconfig through the
	// apiserver proxy, which a scenario can cut.
	kubeconfig, proxiedKubeconfig string
	apiserver                     *toxiproxy.Proxy
	toxics                        *toxiproxy.ApiServer
	full                          bool
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	suite.full = os.Getenv("ROSTER_RELIABILITY") == "full"
	dir, err := os.MkdirTemp("", "roster-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if suite.binary, err = buildOperator(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	suite.toxics = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	if suite.env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = suite.env.Stop() }()
	if err := writeKubeconfigs(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer suite.apiserver.Stop()
	return m.Run()
}

// writeKubeconfigs writes a cluster admin's kubeconfig, and one that reaches the API
// server through a proxy.
func writeKubeconfigs(dir string) error {
	raw, err := suite.env.AdminKubeConfig()
	if err != nil {
		return err
	}
	suite.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(suite.kubeconfig, raw, 0o600); err != nil {
		return err
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return err
	}
	var server string
	for _, c := range cfg.Clusters {
		server = c.Server
	}
	host := strings.TrimPrefix(server, "https://")
	suite.apiserver = toxiproxy.NewProxy(suite.toxics, "kube-apiserver", "127.0.0.1:0", host)
	if err := suite.apiserver.Start(); err != nil {
		return err
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + suite.apiserver.Listen
	}
	suite.proxiedKubeconfig = filepath.Join(dir, "kubeconfig-proxied")
	return clientcmd.WriteToFile(*cfg, suite.proxiedKubeconfig)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// size picks the small figure for `make test` and the full one for `make reliability`.
func size(small, full int) int {
	if suite.full {
		return full
	}
	return small
}

// org is one scenario's namespace: its apps, each an AppConnection, and a Role that
// grants every app to everyone but contractors. The scenarios' leavers may be more than
// the default safety threshold lets through: what is tested here is that they all go,
// once, whatever is killed; the threshold holding them has tests of its own.
type org struct {
	ns   string
	apps []*app
	rng  *rand.Rand
}

func newOrg(t *testing.T, seed uint64, appNames ...string) *org {
	t.Helper()
	unlimited := int32(1000000)
	o := &org{ns: suite.env.Namespace(t), rng: rand.New(rand.NewPCG(seed, seed))}
	token := "reliability-app-token-" + o.ns // namespaces' names are not used twice
	objs := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "app-token"}, StringData: map[string]string{"token": token}},
	}
	var grants []identityv1alpha1.RoleGrant
	for _, name := range appNames {
		a := newApp(t, o.ns+"-"+name, token)
		o.apps = append(o.apps, a)
		objs = append(objs, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: name},
			Spec: identityv1alpha1.AppConnectionSpec{SCIM: &identityv1alpha1.SCIMConnector{BaseURL: a.url(),
				Auth:           identityv1alpha1.SCIMAuth{Type: identityv1alpha1.SCIMAuthBearer, SecretRef: identityv1alpha1.LocalObjectReference{Name: "app-token"}},
				RequestTimeout: &metav1.Duration{Duration: 5 * time.Second}},
				SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &unlimited}}})
		grants = append(grants, identityv1alpha1.RoleGrant{App: name})
	}
	objs = append(objs, &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: "staff"},
		Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Rule: `user.department != "contractors"`}, Grants: grants}})
	suite.env.Create(t, objs...)
	return o
}

// shard labels the org's apps of these names with a shard.
func (o *org) shard(t *testing.T, shard string, apps ...string) {
	t.Helper()
	for _, name := range apps {
		conn := &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: name}}
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"`+identityv1alpha1.LabelShard+`":"`+shard+`"}}}`))
		if err := suite.env.Client.Patch(context.Background(), conn, patch); err != nil {
			t.Fatalf("labelling %s: %v", name, err)
		}
	}
}

// person is the User of person i: every fifth is a contractor, who gets no account.
func person(ns string, i int) *identityv1alpha1.User {
	dept := "eng"
	if i%5 == 4 {
		dept = "contractors"
	}
	return &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("p%05d", i)},
		Spec: identityv1alpha1.UserSpec{UserName: fmt.Sprintf("p%05d@example.com", i), Department: dept,
			Name: &identityv1alpha1.PersonName{GivenName: "Person", FamilyName: fmt.Sprint(i)}}}
}

func entitled(i int) bool { return i%5 != 4 }

// hire creates the Users of people [from, to).
func (o *org) hire(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := suite.env.Client.Create(context.Background(), person(o.ns, i)); err != nil {
			t.Fatalf("creating person %d: %v", i, err)
		}
	}
}

// setState suspends or reactivates person i.
func (o *org) setState(t *testing.T, i int, state identityv1alpha1.UserState) {
	t.Helper()
	u := &identityv1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: o.ns, Name: fmt.Sprintf("p%05d", i)}}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"state":"`+string(state)+`"}}`))
	if err := suite.env.Client.Patch(context.Background(), u, patch); err != nil {
		t.Fatalf("setting person %d %s: %v", i, state, err)
	}
}

// suspendSome suspends a quarter of people [0, people), entitled ones picked at random.
func (o *org) suspendSome(t *testing.T, people int) map[int]bool {
	t.Helper()
	leavers := map[int]bool{}
	for len(leavers) < people/4 {
		if p := o.rng.IntN(people); entitled(p) {
			leavers[p] = true
		}
	}
	for p := range leavers {
		o.setState(t, p, identityv1alpha1.UserStateSuspended)
	}
	return leavers
}

// someLeft reports whether app i has deactivated the account of some leaver.
func (o *org) someLeft(i int, leavers map[int]bool) func() (bool, string) {
	return func() (bool, string) {
		_, active := o.apps[i].accounts()
		gone := 0
		for p := range leavers {
			if active[fmt.Sprintf("p%05d@example.com", p)] == 0 {
				gone++
			}
		}
		return gone > 0, fmt.Sprint(gone)
	}
}

// settle waits until every leaver is deactivated and everyone else active, in every
// app, and fails on any account held twice.
func (o *org) settle(t *testing.T, people int, leavers map[int]bool) {
	t.Helper()
	waitUntil(t, 5*time.Minute, "every leaver deactivated, everyone else active, once", func() (bool, string) {
		return o.converged(people, leavers)
	})
	if d := o.duplicates(); d != 0 {
		t.Fatalf("%d duplicate accounts", d)
	}
}

// creates counts the creates every app has seen.
func (o *org) creates() int {
	n := 0
	for _, a := range o.apps {
		c, _ := a.counts()
		n += c["POST /Users"]
	}
	return n
}

// converged reports whether every app holds exactly the declared accounts: one active
// account per entitled person among people, none active for a suspended one (who may
// have none, if suspended before it was made), none for anyone else, and none twice.
func (o *org) converged(people int, suspended map[int]bool) (bool, string) {
	for _, a := range o.apps {
		held, active := a.accounts()
		for i := range people {
			name := fmt.Sprintf("p%05d@example.com", i)
			switch {
			case held[name] > 1:
				return false, fmt.Sprintf("%s holds %d accounts of %s, created at %s", a.name, held[name], name, a.createsOf(name))
			case !entitled(i) && held[name] > 0:
				return false, fmt.Sprintf("%s holds an account of contractor %s", a.name, name)
			case entitled(i) && !suspended[i] && held[name] == 0:
				return false, fmt.Sprintf("%s has no account of %s", a.name, name)
			case entitled(i) && suspended[i] && active[name] > 0:
				return false, fmt.Sprintf("%s still has %s active", a.name, name)
			case entitled(i) && !suspended[i] && active[name] == 0:
				return false, fmt.Sprintf("%s has %s inactive", a.name, name)
			}
		}
		if len(held) > people {
			return false, fmt.Sprintf("%s holds %d userNames for %d people", a.name, len(held), people)
		}
	}
	return true, ""
}

// duplicates counts the accounts beyond the first of each userName, over every app.
func (o *org) duplicates() int {
	n := 0
	for _, a := range o.apps {
		held, _ := a.accounts()
		for _, c := range held {
			n += c - 1
		}
	}
	return n
}

// usersReady reports whether every User has Ready=True.
func (o *org) usersReady() (bool, string) {
	var users identityv1alpha1.UserList
	if err := suite.env.Client.List(context.Background(), &users, client.InNamespace(o.ns)); err != nil {
		return false, err.Error()
	}
	for _, u := range users.Items {
		if c := meta.FindStatusCondition(u.Status.Conditions, identityv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return false, fmt.Sprintf("%s (phase %s, accounts %+v, generation %d): %+v", u.Name, u.Status.Phase, u.Status.Accounts, u.Generation, c)
		}
	}
	return true, ""
}

// accountsRecorded reports whether every entitled User's status records an account in
// every app, active unless the person left.
func (o *org) accountsRecorded(leavers map[int]bool) (bool, string) {
	var users identityv1alpha1.UserList
	if err := suite.env.Client.List(context.Background(), &users, client.InNamespace(o.ns)); err != nil {
		return false, err.Error()
	}
	for _, u := range users.Items {
		var i int
		if _, err := fmt.Sscanf(u.Name, "p%05d", &i); err != nil || !entitled(i) {
			continue
		}
		want := identityv1alpha1.AccountStateActive
		if leavers[i] {
			want = identityv1alpha1.AccountStateDeactivated
		}
		for _, a := range o.apps {
			app := strings.TrimPrefix(a.name, o.ns+"-")
			idx := slices.IndexFunc(u.Status.Accounts, func(acc identityv1alpha1.UserAccount) bool { return acc.App == app })
			if idx < 0 || u.Status.Accounts[idx].State != want {
				return false, fmt.Sprintf("%s: %s, want %s in %s", u.Name, fmt.Sprint(u.Status.Accounts), want, app)
			}
		}
	}
	return true, ""
}

// slowAnswers delays every app's answers (ms), so that kills and failovers land
// between a write reaching an app and the operator hearing of it.
func (o *org) slowAnswers(t *testing.T, latency, jitter int) {
	t.Helper()
	for _, a := range o.apps {
		addToxic(t, a.proxy, "slow-answers", "latency", "downstream", map[string]any{"latency": latency, "jitter": jitter})
	}
}

// fastAnswers takes the delay away again.
func (o *org) fastAnswers(t *testing.T) {
	t.Helper()
	for _, a := range o.apps {
		removeToxic(t, a.proxy, "slow-answers")
	}
}
