package github_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/connectors/github"
	"github.com/rosterhq/roster/test/githubapi"
)

const token = "ghs_test-token-0123456789"

func serve(t *testing.T, opts githubapi.Options) *githubapi.Server {
	t.Helper()
	if opts.Org == "" {
		opts.Org = "acme"
	}
	opts.Token = token
	srv, err := githubapi.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		for _, p := range srv.Problems() {
			t.Errorf("GitHub's description: %s", p)
		}
	})
	return srv
}

func target(t *testing.T, srv *githubapi.Server, change ...func(*github.Config)) *github.Target {
	t.Helper()
	burst, writes := int32(1000), int32(10000)
	cfg := github.Config{Org: "acme", APIURL: srv.URL, Token: token, Timeout: 5 * time.Second,
		RateLimit: &identityv1alpha1.RateLimit{Requests: 10000, Burst: &burst, Writes: &writes}}
	for _, c := range change {
		c(&cfg)
	}
	tg, err := github.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func member(login, role string) connectors.Account {
	return connectors.Account{Active: true, Attributes: map[string]any{connectors.AttrUserName: login,
		"roles": []any{map[string]any{"value": role, "primary": true}}}}
}

var githubApp = conformance.App{Keys: []connectors.KeyKind{connectors.KeyUserName}, Attribute: "roles",
	Value: []any{map[string]any{"value": "admin", "primary": true}}, OneAccountPerKey: true, DeactivateRemoves: true}

func TestConformance(t *testing.T) {
	conformance.TargetOf(t, func(t *testing.T) connectors.Target {
		return target(t, serve(t, githubapi.Options{InvitationsPerDay: 1000}))
	}, githubApp)
}

func TestJoinerIsInvitedAndPendingUntilTheyAccept(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, githubapi.Options{})
	tg := target(t, srv)
	ada, err := tg.Create(ctx, member("Ada-L", "member"))
	if err != nil {
		t.Fatal(err)
	}
	if state, role, _ := srv.Member("ada-l"); state != "pending" || role != "member" || ada.ID != "ada-l" || !strings.Contains(ada.Note, "waiting for the person to accept") {
		t.Fatalf("GitHub has %s %s, Roster %+v; want a pending invitation, noted", state, role, ada)
	}
	page, err := tg.ListAccounts(ctx, "")
	for err == nil && len(page.Accounts) == 0 && page.Next != "" {
		page, err = tg.ListAccounts(ctx, page.Next)
	}
	if err != nil || len(page.Accounts) != 1 || !strings.Contains(page.Accounts[0].Note, "invited to the organization on") {
		t.Fatalf("the listing shows %+v, %v; want the invitation, noted", page.Accounts, err)
	}
	srv.Accept("ada-l")
	found, err := tg.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "ADA-L"})
	if err != nil || found.Note != "" || !found.Active {
		t.Fatalf("after accepting: %+v, %v; want an active member", found, err)
	}
}

func TestLeaversPerPolicy(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []identityv1alpha1.GitHubLeaverPolicy{identityv1alpha1.GitHubLeaverRemove, identityv1alpha1.GitHubLeaverOutsideCollaborator} {
		srv := serve(t, githubapi.Options{})
		tg := target(t, srv, func(c *github.Config) { c.Leavers = policy })
		grace, err := tg.Create(ctx, member("grace", "member"))
		if err != nil {
			t.Fatal(err)
		}
		srv.Accept("grace")
		grace.Note = ""
		if _, err := tg.Deactivate(ctx, grace); err != nil {
			t.Fatal(err)
		}
		state, _, collaborator := srv.Member("grace")
		if state != "" || collaborator != (policy == identityv1alpha1.GitHubLeaverOutsideCollaborator) {
			t.Fatalf("%s: grace is %q, outside collaborator %v", policy, state, collaborator)
		}
		if policy == identityv1alpha1.GitHubLeaverOutsideCollaborator {
			back, err := tg.Update(ctx, connectors.Account{ID: "grace", Attributes: grace.Attributes}, member("grace", "member"))
			if state, _, collaborator := srv.Member("grace"); err != nil || state != "pending" || collaborator || !back.Active {
				t.Fatalf("a return: %v, grace is %q, outside collaborator %v", err, state, collaborator)
			}
		}
	}
	srv := serve(t, githubapi.Options{})
	tg := target(t, srv)
	invited, err := tg.Create(ctx, member("linus", "member"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Deactivate(ctx, invited); err != nil {
		t.Fatal(err)
	}
	if state, _, _ := srv.Member("linus"); state != "" {
		t.Fatalf("a leaver's pending invitation is %q, want cancelled", state)
	}
}

func TestTeamsAndMaintainers(t *testing.T) {
	ctx := context.Background()
	srv := serve(t, githubapi.Options{})
	tg := target(t, srv)
	for _, login := range []string{"ada", "grace"} {
		if _, err := tg.Create(ctx, member(login, "member")); err != nil {
			t.Fatal(err)
		}
	}
	maintainers, err := tg.EnsureGroup(ctx, "Platform:maintainer")
	if err != nil {
		t.Fatal(err)
	}
	team, err := tg.EnsureGroup(ctx, "Platform")
	if err != nil || team.ID != "platform" || maintainers.ID != "platform:maintainer" {
		t.Fatalf("groups %+v %+v, %v", team, maintainers, err)
	}
	// ada is made a maintainer first, then added to the team: she stays a maintainer.
	if err := tg.ChangeMembers(ctx, maintainers, []string{"ada"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tg.ChangeMembers(ctx, team, []string{"ada", "grace"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := srv.TeamMembers("platform"); got["ada"] != "maintainer" || got["grace"] != "member" {
		t.Fatalf("team members %v", got)
	}
	// ada leaves the team: removed from it, then from its maintainers, and not put back.
	if err := tg.ChangeMembers(ctx, team, nil, []string{"ada"}); err != nil {
		t.Fatal(err)
	}
	if err := tg.ChangeMembers(ctx, maintainers, nil, []string{"ada"}); err != nil {
		t.Fatal(err)
	}
	if got := srv.TeamMembers("platform"); len(got) != 1 || got["grace"] != "member" {
		t.Fatalf("team members after ada left %v", got)
	}
	page, err := tg.ListGroups(ctx, "")
	if err != nil || len(page.Groups) != 2 || len(page.Groups[0].Members) != 1 || len(page.Groups[1].Members) != 0 {
		t.Fatalf("groups listed %+v, %v", page.Groups, err)
	}
}

func TestGitHubsLimits(t *testing.T) {
	ctx := context.Background()
	t.Run("the invitation limit holds a joiner pending, with a message", func(t *testing.T) {
		srv := serve(t, githubapi.Options{InvitationsPerDay: 2})
		tg := target(t, srv)
		for _, login := range []string{"a1", "a2"} {
			if _, err := tg.Create(ctx, member(login, "member")); err != nil {
				t.Fatal(err)
			}
		}
		_, err := tg.Create(ctx, member("a3", "member"))
		var pending *connectors.PendingError
		if !errors.As(err, &pending) || pending.RetryAfter <= 0 || !strings.Contains(pending.Message, "invitation limit") {
			t.Fatalf("the third invitation = %v; want it pending for the invitation limit", err)
		}
	})
	t.Run("a secondary limit is a rate limit with GitHub's Retry-After", func(t *testing.T) {
		srv := serve(t, githubapi.Options{SecondaryEvery: 1, SecondaryWait: 7})
		_, err := target(t, srv).Create(ctx, member("b1", "member"))
		var limited *connectors.RateLimitedError
		if !errors.As(err, &limited) || limited.RetryAfter != 7*time.Second {
			t.Fatalf("got %v; want rate limited for 7s", err)
		}
	})
	t.Run("the primary limit spent is a rate limit until its reset", func(t *testing.T) {
		srv := serve(t, githubapi.Options{RateLimit: 1})
		tg := target(t, srv)
		if _, err := tg.Validate(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := tg.Create(ctx, member("c1", "member"))
		var limited *connectors.RateLimitedError
		if !errors.As(err, &limited) || limited.RetryAfter < 50*time.Minute {
			t.Fatalf("got %v; want rate limited until the hour's reset", err)
		}
	})
	t.Run("a login GitHub does not know fails with a message", func(t *testing.T) {
		srv := serve(t, githubapi.Options{})
		srv.NoSuchUser("nobody-here")
		_, err := target(t, srv).Create(ctx, member("nobody-here", "member"))
		if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), `no user "nobody-here"`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no login is pending, not an error", func(t *testing.T) {
		_, err := target(t, serve(t, githubapi.Options{})).Create(ctx, member("", "member"))
		var pending *connectors.PendingError
		if !errors.As(err, &pending) || !strings.Contains(pending.Message, `attributes["github"]`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a bad token is rejected credentials", func(t *testing.T) {
		_, err := target(t, serve(t, githubapi.Options{}), func(c *github.Config) { c.Token = "wrong" }).Validate(ctx)
		if !errors.Is(err, connectors.ErrUnauthorized) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestAGitHubAppAuthenticatesWithAnInstallationToken(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	srv := serve(t, githubapi.Options{})
	tg := target(t, srv, func(c *github.Config) {
		c.Token, c.App = "", &github.AppAuth{AppID: 42, InstallationID: 7, PrivateKey: pemKey}
	})
	if _, err := tg.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests()["POST /app/installations/{installation_id}/access_tokens"]; n != 1 {
		t.Fatalf("%d installation tokens asked for, want one, kept for its hour", n)
	}
}
