package bench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

// orgNamespace holds the organisation the initial sync, steady state and leaver
// scenarios work on.
const orgNamespace = "acme"

// org is what the initial sync provisions: the people of the HR export, and the
// accounts, groups and objects they converge to.
type org struct {
	people []person
	start  time.Time
	took   time.Duration
	stats  map[string]AppStats
}

var initial org

// initialSync applies the AppConnections and a Role per department that grants every
// app, then an HR DirectorySync of the whole organisation, and waits for every account
// and every status to converge.
func (b *bench) initialSync(ctx context.Context) error {
	initial.people = people("e", 1, b.opts.Users)
	url := b.exports.put("/hr.csv", csvOf(initial.people))
	if err := b.createAll(ctx, b.orgObjects()...); err != nil {
		return err
	}
	// People join an organisation whose apps and Roles are in place, as after a first
	// GitOps sync; their AppAssignments then exist before the first User does.
	if err := b.waitFor(ctx, time.Minute, 100*time.Millisecond, "the organisation's apps and Roles", func() (bool, string, error) {
		return b.objectsReady(ctx, orgNamespace)
	}); err != nil {
		return err
	}
	stopProfile, err := b.startCPUProfile("initial-sync")
	if err != nil {
		return err
	}
	writesBefore, err := b.apiWrites(ctx)
	if err != nil {
		return err
	}
	cpu := readCPU()
	initial.start = time.Now()
	apiProfile := b.profileAPIServer(ctx, "initial-sync")
	if err := b.createAll(ctx, directorySync("hr", url)); err != nil {
		return err
	}
	failedOver := b.killMidSync(ctx, len(initial.people)*b.opts.Apps)
	err = b.waitConverged(ctx, "the initial sync", expect{users: len(initial.people), active: len(initial.people)})
	initial.took = time.Since(initial.start)
	cpu = readCPU().since(cpu)
	stopProfile()
	apiProfile()
	if err != nil {
		return err
	}
	writesAfter, err := b.apiWrites(ctx)
	if err != nil {
		return err
	}
	if initial.stats, err = b.apps.stats(); err != nil {
		return err
	}
	if err := failedOver(); err != nil {
		return err
	}
	if err := b.verifyAccounts(initial.people); err != nil {
		return err
	}
	if err := b.shardSpread(ctx); err != nil {
		return err
	}
	b.logf("  %d Users, %d accounts in %s\n", len(initial.people), len(initial.people)*b.opts.Apps, initial.took.Round(time.Millisecond))
	floor := measuredFloors.initialSync().Seconds()
	details := map[string]float64{
		"apiFloorSeconds": measuredFloors.api.Seconds(), "scimFloorSeconds": measuredFloors.scim.Seconds(),
		"accounts":          float64(len(initial.people) * b.opts.Apps),
		"accountsPerSecond": float64(len(initial.people)*b.opts.Apps) / initial.took.Seconds(),
	}
	cpu.addTo(details, "cpuSeconds:")
	measuredFloors.apiCPU.addTo(details, "apiFloorCpuSeconds:")
	writes := writesAfter.minus(writesBefore)
	details["apiWrites"] = writes.sum(func(writeKey) bool { return true })
	for k, n := range writes {
		details["apiWrites:"+k.String()] = n
	}
	b.report.add(againstFloor("initial sync", fmt.Sprintf("%d Users × %d apps converged", b.opts.Users, b.opts.Apps),
		initial.took.Seconds(), floor, 1.3, "s", details))
	b.requestsPerAccount()
	b.memoryAfterInitialSync()
	return nil
}

// orgObjects are the organisation's Secret, AppConnections and Roles.
func (b *bench) orgObjects() []client.Object {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: orgNamespace}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: orgNamespace, Name: "app-token"}, StringData: map[string]string{"token": appToken}},
	}
	for i := range b.opts.Apps {
		objs = append(objs, b.appConnection(orgNamespace, appName(i), b.unlimited()))
	}
	for _, d := range departments {
		role := &identityv1alpha1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: orgNamespace, Name: d},
			Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{directory.LabelDepartment: d}}}},
		}
		for i := range b.opts.Apps {
			role.Spec.Grants = append(role.Spec.Grants, identityv1alpha1.RoleGrant{App: appName(i),
				Entitlements: identityv1alpha1.Entitlements{Groups: []string{d}}})
		}
		objs = append(objs, role)
	}
	return objs
}

// unlimited is the rate budget of an app with no limit, at the bench's concurrency.
func (b *bench) unlimited() *identityv1alpha1.RateLimit {
	concurrency := int32(b.opts.Concurrency)
	return &identityv1alpha1.RateLimit{Requests: 1000000, MaxConcurrency: &concurrency}
}

// benchThreshold lets every deprovision of the bench through: its leavers, idle and
// under load, are more than the default safety threshold (25 within 10 minutes) allows,
// and the bench measures how fast they go, not the threshold.
var benchThreshold = int32(1000000)

func (b *bench) appConnection(ns, name string, rl *identityv1alpha1.RateLimit) *identityv1alpha1.AppConnection {
	return &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: identityv1alpha1.AppConnectionSpec{
			SCIM: &identityv1alpha1.SCIMConnector{BaseURL: b.apps.url(name), Auth: identityv1alpha1.SCIMAuth{
				Type: identityv1alpha1.SCIMAuthBearer, SecretRef: identityv1alpha1.LocalObjectReference{Name: "app-token"}}},
			RateLimit:       rl,
			SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &benchThreshold},
		},
	}
}

func directorySync(name, url string) *identityv1alpha1.DirectorySync {
	return &identityv1alpha1.DirectorySync{
		ObjectMeta: metav1.ObjectMeta{Namespace: orgNamespace, Name: name},
		Spec: identityv1alpha1.DirectorySyncSpec{
			HRIS:     &identityv1alpha1.HRISSource{Format: identityv1alpha1.HRISFormat("CSV"), URL: url},
			Interval: &metav1.Duration{Duration: time.Hour},
		},
	}
}

func (b *bench) createAll(ctx context.Context, objs ...client.Object) error {
	for _, o := range objs {
		if err := b.env.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// removeAll deletes what a scenario made and waits until it is gone and the API server
// has had no write for two seconds: an AppConnection letting go of 10,000 accounts, or
// a DirectorySync of its Users, rewrites 10,000 Users, and that work belongs to the
// scenario that made them, not to the next one's floor or time.
func (b *bench) removeAll(ctx context.Context, objs ...client.Object) error {
	for _, o := range objs {
		if err := b.env.Client.Delete(ctx, o); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting %T %s: %w", o, o.GetName(), err)
		}
		if err := b.waitFor(ctx, 5*time.Minute, 100*time.Millisecond, fmt.Sprintf("%T %s gone", o, o.GetName()), func() (bool, string, error) {
			err := b.env.Client.Get(ctx, client.ObjectKeyFromObject(o), o)
			return apierrors.IsNotFound(err), "still there", client.IgnoreNotFound(err)
		}); err != nil {
			return err
		}
	}
	_, err := b.settledWrites(ctx, 2*time.Second)
	return err
}

// expect is what every app of the organisation holds once converged.
type expect struct {
	users, active int
}

// waitConverged waits until every app holds the expected accounts and memberships,
// and every User, AppConnection, Role and DirectorySync of the organisation is Ready
// for its current generation.
func (b *bench) waitConverged(ctx context.Context, what string, want expect) error {
	// Each look counts every account of every app: look less often at larger sizes, so
	// that looking costs the apps and the operator's cores the same share at every size.
	every := max(200*time.Millisecond, time.Duration(want.users*b.opts.Apps)*2*time.Microsecond)
	return b.waitFor(ctx, timeoutFor(want.users*b.opts.Apps), every, what, func() (bool, string, error) {
		stats, err := b.apps.stats()
		if err != nil {
			return false, "", err
		}
		for i := range b.opts.Apps {
			st := stats[appName(i)]
			members := 0
			for _, n := range st.Members {
				members += n
			}
			if st.Users != want.users || st.Active != want.active || members != want.active {
				return false, fmt.Sprintf("%s: %d accounts, %d active, %d memberships", appName(i), st.Users, st.Active, members), nil
			}
		}
		return b.objectsReady(ctx, orgNamespace)
	})
}

// objectsReady reports whether every Roster object of a namespace is Ready for its
// generation (and every AppConnection has nothing pending), reading the operator's cache
// without copying; if not, it says which object and why.
func (b *bench) objectsReady(ctx context.Context, ns string) (bool, string, error) {
	var users identityv1alpha1.UserList
	var conns identityv1alpha1.AppConnectionList
	var roles identityv1alpha1.RoleList
	var syncs identityv1alpha1.DirectorySyncList
	for _, list := range []client.ObjectList{&users, &conns, &roles, &syncs} {
		if err := b.op.cache.List(ctx, list, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return false, "", err
		}
	}
	var why string
	for i := range users.Items {
		why = cmp.Or(why, notReady(&users.Items[i], users.Items[i].Status.CommonStatus))
	}
	for i := range conns.Items {
		c := &conns.Items[i]
		why = cmp.Or(why, notReady(c, c.Status.CommonStatus))
		if why == "" && c.Status.Accounts.Pending > 0 {
			why = fmt.Sprintf("AppConnection %s: %d accounts pending", c.Name, c.Status.Accounts.Pending)
		}
	}
	for i := range roles.Items {
		why = cmp.Or(why, notReady(&roles.Items[i], roles.Items[i].Status.CommonStatus))
	}
	for i := range syncs.Items {
		why = cmp.Or(why, notReady(&syncs.Items[i], syncs.Items[i].Status.CommonStatus))
	}
	return why == "", why, nil
}

// notReady says why an object is not Ready for its generation, "" when it is.
func notReady(obj client.Object, st identityv1alpha1.CommonStatus) string {
	kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1alpha1.")
	c := meta.FindStatusCondition(st.Conditions, identityv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return kind + " " + obj.GetName() + " has no Ready condition"
	case st.ObservedGeneration != obj.GetGeneration() || c.ObservedGeneration != obj.GetGeneration():
		return fmt.Sprintf("%s %s: generation %d not observed yet", kind, obj.GetName(), obj.GetGeneration())
	case c.Status != metav1.ConditionTrue:
		return fmt.Sprintf("%s %s: Ready=%s %s: %s", kind, obj.GetName(), c.Status, c.Reason, c.Message)
	}
	return ""
}

// verifyAccounts checks every account of every app: one per person, active as the
// person is, in its department's group only.
func (b *bench) verifyAccounts(ps []person) error {
	for i := range b.opts.Apps {
		accounts, err := b.apps.accounts(appName(i))
		if err != nil {
			return err
		}
		byName := map[string]AccountState{}
		for _, a := range accounts {
			byName[strings.ToLower(a.UserName)] = a
		}
		if len(byName) != len(accounts) {
			return fmt.Errorf("%s holds duplicate accounts", appName(i))
		}
		for _, p := range ps {
			a, ok := byName[p.email]
			switch {
			case !ok:
				return fmt.Errorf("%s has no account for %s", appName(i), p.email)
			case a.Active != p.active:
				return fmt.Errorf("%s: account %s active=%v, want %v", appName(i), p.email, a.Active, p.active)
			case p.active && (len(a.Groups) != 1 || a.Groups[0] != p.department):
				return fmt.Errorf("%s: account %s in groups %v, want [%s]", appName(i), p.email, a.Groups, p.department)
			}
		}
	}
	return nil
}

// requestsPerAccount reports the SCIM requests the initial sync sent per account
// created, and per batch of group members.
func (b *bench) requestsPerAccount() {
	var userRequests, creates, pages, groupWrites, groupCreates, batches float64
	for i := range b.opts.Apps {
		st := initial.stats[appName(i)]
		pages += float64(st.Requests["GET /Users"])
		userRequests += float64(st.Count("POST /Users") + st.Count("PATCH /Users") + st.Count("PUT /Users") +
			st.Count("DELETE /Users") + st.Count("GET /Users?") + st.Count("GET /Users/"))
		creates += float64(st.Count("POST /Users"))
		groupWrites += float64(st.Count("PATCH /Groups") + st.Count("PUT /Groups"))
		groupCreates += float64(st.Count("POST /Groups"))
		for _, n := range st.Members {
			batches += float64((n + 99) / 100)
		}
	}
	accounts := float64(len(initial.people) * b.opts.Apps)
	details := map[string]float64{"accounts": accounts, "userRequests": userRequests, "creates": creates, "listPages": pages}
	for i := range b.opts.Apps {
		for kind, n := range initial.stats[appName(i)].Requests {
			details[kind] += float64(n)
		}
	}
	b.report.add(atMost("requests per account", "SCIM requests per account created", userRequests/accounts, 1.05, "", details))
	b.report.add(atMost("requests per account", "group member requests per 100 members", groupWrites/batches, 1, "", map[string]float64{
		"memberRequests": groupWrites, "batchesOf100": batches, "groupCreates": groupCreates,
	}))
}

// profileAPIServer profiles the API server's CPU for Options.APIServerProfile, if set,
// and adds the profile's top functions to the report; the returned func waits for it.
func (b *bench) profileAPIServer(ctx context.Context, scenario string) (wait func()) {
	if b.opts.APIServerProfile <= 0 {
		return func() {}
	}
	path := filepath.Join(b.opts.ProfileDir, scenario+".kube-apiserver.cpu.pprof")
	done := make(chan error, 1)
	go func() {
		done <- b.fetchAPIServer(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(b.opts.APIServerProfile.Seconds())), path)
	}()
	return func() {
		if err := <-done; err != nil {
			b.logf("  the API server's profile: %v\n", err)
			return
		}
		b.addProfile(scenario, "kube-apiserver CPU", path)
	}
}

// fetchAPIServer saves one of the API server's pages into file.
func (b *bench) fetchAPIServer(ctx context.Context, path, file string) error {
	page, err := b.apiServerPage(ctx, path)
	if err != nil {
		return err
	}
	defer page.Close()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, page); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startCPUProfile profiles this process (the operator) until the returned func is
// called, and adds the profile's top functions to the report.
func (b *bench) startCPUProfile(scenario string) (func(), error) {
	if err := os.MkdirAll(b.opts.ProfileDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(b.opts.ProfileDir, scenario+".cpu.pprof")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		b.addProfile(scenario, "CPU", path)
	}, nil
}
