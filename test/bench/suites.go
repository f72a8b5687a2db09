package bench

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/googleworkspace"
	"github.com/rosterhq/roster/test/googleapi"
	"github.com/rosterhq/roster/test/graphapi"
)

// The suites' documented limits, and how much faster than them the scenarios run so
// that each takes about a minute: the floor is measured at the same speed-up.
const (
	suiteSpeedUp      = 10
	suiteGroups       = 50
	suiteDomain       = "acme.example"
	googlePerMinute   = 2400 // Directory API queries a minute per user and project
	graphWrites       = 3000 // Graph writes per app and tenant …
	graphWritesPeriod = 150  // … per 150 seconds
)

// suitesScenario provisions the organisation into Google Workspace and into Entra ID,
// each person into one of 50 groups, at each vendor's documented quota sped up alike
// for the operator and the floor, and then measures how soon changes made in each
// suite reach the Users when it is the source.
func (b *bench) suitesScenario(ctx context.Context) error {
	if err := b.googleTarget(ctx); err != nil {
		return fmt.Errorf("the Google Workspace target: %w", err)
	}
	if err := b.graphTarget(ctx); err != nil {
		return fmt.Errorf("the Microsoft Graph target: %w", err)
	}
	return b.googleSource(ctx)
}

// googleTarget: the floor is every call Google needs (an insert a person, a member call
// a person, an insert a group) at the quota, every call in a batch counted.
func (b *bench) googleTarget(ctx context.Context) error {
	n := b.opts.SuiteUsers
	srv, err := googleapi.Start(googleapi.Options{Domain: suiteDomain, MaxPage: 500})
	if err != nil {
		return err
	}
	defer srv.Close()
	perSecond := float64(googlePerMinute*suiteSpeedUp) / 60
	floor := time.Duration(float64(2*n+suiteGroups) / perSecond * float64(time.Second))
	burst := int32(40)
	ns := "google"
	conn := &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Spec: identityv1alpha1.AppConnectionSpec{
		GoogleWorkspace: &identityv1alpha1.GoogleWorkspaceConnector{Domain: suiteDomain, GoogleServiceAccount: identityv1alpha1.GoogleServiceAccount{
			AdminEmail: "admin@" + suiteDomain, APIURL: srv.URL, ServiceAccountKeySecretRef: identityv1alpha1.SecretKeySelector{Name: "google", Key: "key.json"}}},
		RateLimit: &identityv1alpha1.RateLimit{Requests: googlePerMinute * suiteSpeedUp, Period: &metav1.Duration{Duration: time.Minute}, Burst: &burst},
	}}
	took, err := b.provisionSuite(ctx, ns, conn, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Data: map[string][]byte{"key.json": srv.Key}},
		func() (bool, string) {
			users, members := srv.Calls("directory.users.insert"), srv.Calls("directory.members.insert")
			return users >= n && members >= n, fmt.Sprintf("%d/%d users, %d/%d member calls", users, n, members, n)
		})
	if err != nil {
		return err
	}
	scenario := "Google Workspace target"
	inserts, members, batches := srv.Calls("directory.users.insert"), srv.Calls("directory.members.insert"), srv.Batches()
	b.report.add(againstFloor(scenario, fmt.Sprintf("%d users in %d groups, at Google's quota × %d", n, suiteGroups, suiteSpeedUp),
		took.Seconds(), floor.Seconds(), 1.3, "s", map[string]float64{"users": float64(n)}))
	b.report.add(atMost(scenario, "inserts per account created", float64(inserts)/float64(n), 1.05, "", nil))
	fewest := suiteGroups * ((n/suiteGroups + 999) / 1000)
	b.report.add(atMost(scenario, "batch requests against the fewest (1,000 member calls each)", float64(batches)/float64(fewest), 2, "",
		map[string]float64{"memberCalls": float64(members), "batches": float64(batches), "fewest": float64(fewest)}))
	b.logf("  %d users in %s (floor %s), %d inserts, %d member calls in %d batches\n", n, took.Round(time.Millisecond), floor.Round(time.Millisecond), inserts, members, batches)
	for _, p := range srv.Problems() {
		return fmt.Errorf("the account was sent what Google's discovery document does not allow: %s", p)
	}
	return b.removeAll(ctx, conn)
}

// graphTarget: the floor is the writes Graph needs (a user a person, a bind per 20
// members, a group each) at Graph's write limit.
func (b *bench) graphTarget(ctx context.Context) error {
	n := b.opts.SuiteUsers
	srv, err := graphapi.Start(graphapi.Options{Domain: suiteDomain, MaxPage: 999})
	if err != nil {
		return err
	}
	defer srv.Close()
	perSecond := float64(graphWrites*suiteSpeedUp) / graphWritesPeriod
	floor := time.Duration(float64(n+n/20+suiteGroups) / perSecond * float64(time.Second))
	writes, burst := int32(graphWrites*suiteSpeedUp), int32(20)
	ns := "entra"
	conn := &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "entra"}, Spec: identityv1alpha1.AppConnectionSpec{
		MicrosoftGraph: &identityv1alpha1.MicrosoftGraphConnector{MicrosoftGraphApp: identityv1alpha1.MicrosoftGraphApp{
			TenantID: graphapi.TenantID, ClientID: graphapi.ClientID, AuthorityURL: srv.URL, GraphURL: srv.URL,
			ClientSecretRef: &identityv1alpha1.SecretKeySelector{Name: "entra", Key: "secret"}}},
		RateLimit: &identityv1alpha1.RateLimit{Requests: 10 * graphWrites * suiteSpeedUp, Writes: &writes,
			Period: &metav1.Duration{Duration: graphWritesPeriod * time.Second}, Burst: &burst},
	}}
	took, err := b.provisionSuite(ctx, ns, conn, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "entra"}, StringData: map[string]string{"secret": graphapi.Secret}},
		func() (bool, string) {
			users, members := srv.Calls("POST /users"), srv.Memberships()
			return users >= n && members >= n, fmt.Sprintf("%d/%d users, %d/%d members", users, n, members, n)
		})
	if err != nil {
		return err
	}
	scenario := "Microsoft Graph target"
	creates, binds, batches := srv.Calls("POST /users"), srv.Calls("PATCH /groups/{id}"), srv.Batches()
	b.report.add(againstFloor(scenario, fmt.Sprintf("%d users in %d groups, at Graph's write limit × %d", n, suiteGroups, suiteSpeedUp),
		took.Seconds(), floor.Seconds(), 1.3, "s", map[string]float64{"users": float64(n)}))
	b.report.add(atMost(scenario, "creates per account created", float64(creates)/float64(n), 1.05, "", nil))
	fewest := suiteGroups * ((n/suiteGroups + 19) / 20)
	b.report.add(atMost(scenario, "member binds against the fewest (20 members each)", float64(binds)/float64(fewest), 2, "",
		map[string]float64{"binds": float64(binds), "batches": float64(batches), "fewest": float64(fewest)}))
	b.logf("  %d users in %s (floor %s), %d creates, %d binds in %d batches\n", n, took.Round(time.Millisecond), floor.Round(time.Millisecond), creates, binds, batches)
	for _, p := range srv.Problems() {
		return fmt.Errorf("the tenant was sent what Microsoft's documentation does not allow: %s", p)
	}
	return b.removeAll(ctx, conn)
}

// provisionSuite creates the Users (each in one of the groups by department), the
// connection, then the Roles granting each group, and times it until done says so.
func (b *bench) provisionSuite(ctx context.Context, ns string, conn *identityv1alpha1.AppConnection, secret *corev1.Secret, done func() (bool, string)) (time.Duration, error) {
	conn.Spec.SafetyThreshold = &identityv1alpha1.SafetyThreshold{MaxCount: &benchThreshold}
	conn.Spec.Deprovision = identityv1alpha1.DeprovisionPolicy{OnRemoval: identityv1alpha1.RemovalOrphan}
	concurrency := int32(b.opts.Concurrency)
	conn.Spec.RateLimit.MaxConcurrency = &concurrency
	if err := b.createAll(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, secret, conn); err != nil {
		return 0, err
	}
	org := people("S", 1, b.opts.SuiteUsers)
	if err := b.createUnassigned(ctx, ns, org, func(i int, u *identityv1alpha1.User) {
		u.Spec.Department = fmt.Sprintf("team-%02d", i%suiteGroups)
	}); err != nil {
		return 0, err
	}
	start := time.Now()
	var roles []client.Object
	for i := range suiteGroups {
		team := fmt.Sprintf("team-%02d", i)
		roles = append(roles, &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: team},
			Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Rule: fmt.Sprintf("user.department == %q", team)},
				Grants: []identityv1alpha1.RoleGrant{{App: conn.Name, Entitlements: identityv1alpha1.Entitlements{Groups: []string{team}}}}}})
	}
	if err := b.createAll(ctx, roles...); err != nil {
		return 0, err
	}
	err := b.waitFor(ctx, timeoutFor(b.opts.SuiteUsers*20), 50*time.Millisecond, "provisioning into "+conn.Name, func() (bool, string, error) {
		ok, detail := done()
		return ok, detail, nil
	})
	return time.Since(start), err
}

// googleSource: a Google account of the suite's size is read by a DirectorySync; then
// an admin suspends 10 people in Google, and the figure is how long after the next
// read of the admin activity their Users are suspended.
func (b *bench) googleSource(ctx context.Context) error {
	n := min(b.opts.SuiteUsers, 2000)
	srv, err := googleapi.Start(googleapi.Options{Domain: suiteDomain, MaxPage: 500,
		Delegated: append(append([]string{}, googleworkspace.SourceScopes...), googleworkspace.ReportsScope)})
	if err != nil {
		return err
	}
	defer srv.Close()
	org := people("R", 1, n)
	for _, p := range org {
		srv.AddUser(p.email, p.given, p.family)
	}
	ns := "google-source"
	ds := &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Spec: identityv1alpha1.DirectorySyncSpec{
		GoogleWorkspace: &identityv1alpha1.GoogleWorkspaceSource{GoogleServiceAccount: identityv1alpha1.GoogleServiceAccount{
			AdminEmail: "admin@" + suiteDomain, APIURL: srv.URL, ServiceAccountKeySecretRef: identityv1alpha1.SecretKeySelector{Name: "google", Key: "key.json"}}},
		SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &benchThreshold},
	}}
	if err := b.createAll(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "google"}, Data: map[string][]byte{"key.json": srv.Key}}, ds); err != nil {
		return err
	}
	suspended := func() (int, int, error) {
		var users identityv1alpha1.UserList
		if err := b.op.cache.List(ctx, &users, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return 0, 0, err
		}
		count := 0
		for _, u := range users.Items {
			if u.Spec.State == identityv1alpha1.UserStateSuspended {
				count++
			}
		}
		return len(users.Items), count, nil
	}
	if err := b.waitFor(ctx, timeoutFor(n*5), 100*time.Millisecond, "the first read of Google", func() (bool, string, error) {
		all, _, err := suspended()
		return all == n, fmt.Sprintf("%d/%d Users", all, n), err
	}); err != nil {
		return err
	}
	const changes = 10
	for _, p := range org[:changes] {
		if status, answer := srv.Do("directory.users.patch", map[string]string{"userKey": p.email}, map[string]any{"suspended": true}); status != 200 {
			return fmt.Errorf("suspending %s in Google: %d %v", p.email, status, answer)
		}
	}
	polls := srv.Calls("reports.activities.list")
	if err := b.waitFor(ctx, 2*time.Minute, 10*time.Millisecond, "the next read of the admin activity", func() (bool, string, error) {
		return srv.Calls("reports.activities.list") > polls, "", nil
	}); err != nil {
		return err
	}
	polled := time.Now()
	if err := b.waitFor(ctx, time.Minute, 10*time.Millisecond, "the suspensions reaching the Users", func() (bool, string, error) {
		_, count, err := suspended()
		return count == changes, fmt.Sprintf("%d/%d suspended", count, changes), err
	}); err != nil {
		return err
	}
	took := time.Since(polled)
	b.report.add(atMost("Google Workspace source", fmt.Sprintf("%d suspensions in Google to Users, after the activity read (%d users)", changes, n),
		took.Seconds(), 2, "s", map[string]float64{"users": float64(n), "usersListed": float64(srv.Calls("directory.users.list"))}))
	b.logf("  %d suspensions reached the Users %s after the admin activity was read\n", changes, took.Round(time.Millisecond))
	for _, p := range srv.Problems() {
		return fmt.Errorf("the account was sent what Google's discovery document does not allow: %s", p)
	}
	return b.removeAll(ctx, ds)
}
