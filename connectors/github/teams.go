package github

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gh "github.com/google/go-github/v90/github"

	"github.com/rosterhq/roster/connectors"
)

// maintainerSuffix names, after a team's name, the group of its maintainers: granting
// "platform:maintainer" with "platform" makes a person a maintainer of the team.
const maintainerSuffix = ":maintainer"

// teamRoles are the roles in each team, by slug and login, as last listed or written:
// a maintainer added to the team as a member is not demoted, and one leaving the team
// is not demoted back into it.
type teamRoles map[string]map[string]string

// ListGroups lists a page of teams, each as two groups: its members (any role) and its
// maintainers.
func (t *Target) ListGroups(ctx context.Context, cursor string) (connectors.GroupPage, error) {
	page := 1
	if cursor != "" {
		n, err := strconv.Atoi(cursor)
		if err != nil || n < 1 {
			return connectors.GroupPage{}, &connectors.PermanentError{Message: "not a team listing cursor: " + cursor}
		}
		page = n
	}
	teams, resp, err := t.client.Teams.ListTeams(ctx, t.org, &gh.ListOptions{Page: page, PerPage: perPage})
	if err != nil {
		return connectors.GroupPage{}, fmt.Errorf("listing the teams of %s: %w", t.org, classify(err))
	}
	var out connectors.GroupPage
	for _, team := range teams {
		roles, err := t.teamMembers(ctx, team.GetSlug())
		if err != nil {
			return connectors.GroupPage{}, err
		}
		var all, maintainers []string
		for login, role := range roles {
			all = append(all, login)
			if role == "maintainer" {
				maintainers = append(maintainers, login)
			}
		}
		out.Groups = append(out.Groups,
			connectors.Group{ID: team.GetSlug(), DisplayName: team.GetName(), Members: all},
			connectors.Group{ID: team.GetSlug() + maintainerSuffix, DisplayName: team.GetName() + maintainerSuffix, Members: maintainers})
	}
	if next := nextPage(resp); next > page {
		out.Next = strconv.Itoa(next)
	}
	return out, nil
}

// teamMembers reads a team's members and maintainers, every page, and keeps them.
func (t *Target) teamMembers(ctx context.Context, slug string) (map[string]string, error) {
	roles := map[string]string{}
	for _, role := range []string{"all", "maintainer"} {
		for page := 1; page > 0; {
			users, resp, err := t.client.Teams.ListTeamMembersBySlug(ctx, t.org, slug, &gh.TeamListTeamMembersOptions{Role: role, ListOptions: gh.ListOptions{Page: page, PerPage: perPage}})
			if err != nil {
				return nil, fmt.Errorf("listing the members of team %s: %w", slug, classify(err))
			}
			for _, u := range users {
				if role == "all" {
					roles[strings.ToLower(u.GetLogin())] = "member"
				} else {
					roles[strings.ToLower(u.GetLogin())] = "maintainer"
				}
			}
			if next := nextPage(resp); next > page {
				page = next
			} else {
				page = 0
			}
		}
	}
	t.mu.Lock()
	t.roles[slug] = roles
	t.mu.Unlock()
	return copyRoles(roles), nil
}

func copyRoles(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// EnsureGroup returns the team of that name, creating it (closed, with no members) if
// there is none; a maintainers group is its team's.
func (t *Target) EnsureGroup(ctx context.Context, displayName string) (connectors.Group, error) {
	name, maintainers := strings.CutSuffix(displayName, maintainerSuffix)
	// The engine ensures a group it did not list: creating it first costs one request,
	// and a team made meanwhile (a conflict) is then looked for.
	team, _, err := t.client.Teams.CreateTeam(ctx, t.org, gh.NewTeam{Name: name, Privacy: gh.Ptr("closed")})
	if err = classify(err); errors.Is(err, connectors.ErrConflict) {
		team, err = t.teamNamed(ctx, name)
	}
	if err != nil {
		return connectors.Group{}, fmt.Errorf("team %s: %w", name, err)
	}
	g := connectors.Group{ID: team.GetSlug(), DisplayName: team.GetName()}
	if maintainers {
		g.ID, g.DisplayName = g.ID+maintainerSuffix, g.DisplayName+maintainerSuffix
	}
	return g, nil
}

func (t *Target) teamNamed(ctx context.Context, name string) (*gh.Team, error) {
	for page := 1; page > 0; {
		teams, resp, err := t.client.Teams.ListTeams(ctx, t.org, &gh.ListOptions{Page: page, PerPage: perPage})
		if err != nil {
			return nil, classify(err)
		}
		for _, team := range teams {
			if strings.EqualFold(team.GetName(), name) || strings.EqualFold(team.GetSlug(), name) {
				return team, nil
			}
		}
		if next := nextPage(resp); next > page {
			page = next
		} else {
			page = 0
		}
	}
	return nil, connectors.ErrNotFound
}

// ChangeMembers adds and removes team members (logins), one request each: GitHub has
// no request for several.
func (t *Target) ChangeMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	slug, maintainers := strings.CutSuffix(group.ID, maintainerSuffix)
	for _, login := range remove {
		if err := t.removeFromTeam(ctx, slug, login, maintainers); err != nil {
			return err
		}
	}
	for _, login := range add {
		if err := t.addToTeam(ctx, slug, login, maintainers); err != nil {
			return err
		}
	}
	return nil
}

func (t *Target) addToTeam(ctx context.Context, slug, login string, maintainer bool) error {
	role := "member"
	if maintainer {
		role = "maintainer"
	} else if t.roleIn(slug, login) != "" {
		return nil // in the team already, perhaps as a maintainer: adding would demote
	}
	if _, _, err := t.client.Teams.AddTeamMembershipBySlug(ctx, t.org, slug, login, &gh.TeamAddTeamMembershipOptions{Role: role}); err != nil {
		return fmt.Errorf("adding %s to team %s: %w", login, slug, classify(err))
	}
	t.setRole(slug, login, role)
	return nil
}

func (t *Target) removeFromTeam(ctx context.Context, slug, login string, maintainer bool) error {
	if maintainer {
		if t.roleIn(slug, login) != "maintainer" {
			return nil // left the team, or no maintainer: nothing to demote
		}
		if _, _, err := t.client.Teams.AddTeamMembershipBySlug(ctx, t.org, slug, login, &gh.TeamAddTeamMembershipOptions{Role: "member"}); err != nil {
			return fmt.Errorf("making %s a member, not a maintainer, of team %s: %w", login, slug, classify(err))
		}
		t.setRole(slug, login, "member")
		return nil
	}
	if _, err := t.client.Teams.RemoveTeamMembershipBySlug(ctx, t.org, slug, login); err != nil && !errors.Is(classify(err), connectors.ErrNotFound) {
		return fmt.Errorf("removing %s from team %s: %w", login, slug, classify(err))
	}
	t.setRole(slug, login, "")
	return nil
}

func (t *Target) roleIn(slug, login string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.roles[slug][strings.ToLower(login)]
}

func (t *Target) setRole(slug, login, role string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.roles[slug] == nil {
		t.roles[slug] = map[string]string{}
	}
	if role == "" {
		delete(t.roles[slug], strings.ToLower(login))
	} else {
		t.roles[slug][strings.ToLower(login)] = role
	}
}
