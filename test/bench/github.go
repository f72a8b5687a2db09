package bench

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/test/githubapi"
)

// GitHub's documented limits, and how much faster than them the scenario runs so that
// it takes a minute rather than hours: the floor is measured at the same speed-up.
const (
	githubRequestsPerHour = 5000
	githubWritesPerMinute = 80
	githubSpeedUp         = 100
	githubTeams           = 50
	githubToken           = "ghs_bench-token-0123456789"
	githubBurst           = 100
)

// githubScenario invites the organisation into a GitHub organization served on loopback,
// each person into one of 50 teams, at GitHub's documented rates sped up alike for the
// operator and the floor. The floor is the writes GitHub needs (an invitation and a team
// membership a person, a creation a team) at the write rate, with nothing else.
func (b *bench) githubScenario(ctx context.Context) error {
	n := b.opts.GitHubMembers
	srv, err := githubapi.Start(githubapi.Options{Org: "bench", Token: githubToken, RateLimit: 100 * githubRequestsPerHour * githubSpeedUp, InvitationsPerDay: n + 1})
	if err != nil {
		return err
	}
	defer srv.Close()
	writesPerSecond := float64(githubWritesPerMinute*githubSpeedUp) / 60
	// The write budget's burst goes out at once, the rest at its rate.
	floor := time.Duration(float64(max(0, 2*n+githubTeams-githubBurst)) / writesPerSecond * float64(time.Second))
	took, err := b.provisionGitHub(ctx, srv, people("G", 1, n))
	if err != nil {
		return err
	}
	requests := 0
	for _, c := range srv.Requests() {
		requests += c
	}
	scenario := "GitHub"
	b.report.add(againstFloor(scenario, fmt.Sprintf("%d members in %d teams, at GitHub's documented rates × %d", n, githubTeams, githubSpeedUp),
		took.Seconds(), floor.Seconds(), 1.3, "s", map[string]float64{"members": float64(n), "requests": float64(requests)}))
	teams := srv.Requests()["POST /orgs/{org}/teams"]
	b.report.add(atMost(scenario, "requests per member, the teams' creation apart", float64(requests-teams)/float64(n), 2.1, "",
		map[string]float64{"teamsCreated": float64(teams)}))
	for _, p := range srv.Problems() {
		return fmt.Errorf("the GitHub organization was sent what GitHub's description does not allow: %s", p)
	}
	b.logf("  %d members in %s (floor %s), %d requests (%.2f a member): %v\n", n, took.Round(time.Millisecond), floor.Round(time.Millisecond),
		requests, float64(requests)/float64(n), srv.Requests())
	return b.removeAll(ctx, &identityv1alpha1.AppConnection{ObjectMeta: metav1.ObjectMeta{Namespace: "github", Name: "github"}})
}

// provisionGitHub creates the Users (each with a GitHub login and one of the teams as
// department), then the Roles granting each team, and times it until every person is
// invited and in their team.
func (b *bench) provisionGitHub(ctx context.Context, srv *githubapi.Server, org []person) (time.Duration, error) {
	ns := "github"
	concurrency := int32(b.opts.Concurrency)
	burst, writes := int32(githubBurst), int32(githubWritesPerMinute*60*githubSpeedUp)
	conn := &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github"},
		Spec: identityv1alpha1.AppConnectionSpec{
			GitHub: &identityv1alpha1.GitHubConnector{Organization: "bench", APIURL: srv.URL,
				TokenSecretRef: &identityv1alpha1.SecretKeySelector{Name: "github", Key: "token"}},
			RateLimit: &identityv1alpha1.RateLimit{Requests: githubRequestsPerHour * githubSpeedUp, Writes: &writes,
				Period: &metav1.Duration{Duration: time.Hour}, Burst: &burst, MaxConcurrency: &concurrency},
			SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &benchThreshold},
			Deprovision:     identityv1alpha1.DeprovisionPolicy{OnRemoval: identityv1alpha1.RemovalOrphan},
		},
	}
	if err := b.createAll(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "github"}, StringData: map[string]string{"token": githubToken}}, conn); err != nil {
		return 0, err
	}
	if err := b.createUnassigned(ctx, ns, org, func(i int, u *identityv1alpha1.User) {
		u.Spec.Department = fmt.Sprintf("team-%02d", i%githubTeams)
		u.Spec.Attributes = map[string]string{"github": "gh-" + org[i].id}
	}); err != nil {
		return 0, err
	}
	start := time.Now()
	var roles []client.Object
	for i := range githubTeams {
		team := fmt.Sprintf("team-%02d", i)
		roles = append(roles, &identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: team},
			Spec: identityv1alpha1.RoleSpec{Members: identityv1alpha1.RoleMembers{Rule: fmt.Sprintf("user.department == %q", team)},
				Grants: []identityv1alpha1.RoleGrant{{App: "github", Entitlements: identityv1alpha1.Entitlements{Groups: []string{"Team " + team}}}}}})
	}
	if err := b.createAll(ctx, roles...); err != nil {
		return 0, err
	}
	n := len(org)
	err := b.waitFor(ctx, timeoutFor(n*20), 50*time.Millisecond, "inviting into GitHub", func() (bool, string, error) {
		req := srv.Requests()
		invited, inTeams := req["PUT /orgs/{org}/memberships/{username}"], req["PUT /orgs/{org}/teams/{team_slug}/memberships/{username}"]
		return invited >= n && inTeams >= n, fmt.Sprintf("%d/%d invited, %d/%d team memberships", invited, n, inTeams, n), nil
	})
	return time.Since(start), err
}
