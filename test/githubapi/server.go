package githubapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// Options shape the organization's limits.
type Options struct {
	// Org is the organization's login.
	Org string
	// Token is the personal access token, or installation token, it accepts.
	Token string
	// RateLimit is the primary limit per hour; 0 means 5,000.
	RateLimit int
	// InvitationsPerDay is the invitation limit; 0 means 50.
	InvitationsPerDay int
	// SecondaryEvery, when set, answers every such content-creating request with a
	// secondary rate limit and a Retry-After of SecondaryWait seconds.
	SecondaryEvery, SecondaryWait int
	// Latency is added to every answer.
	Latency time.Duration
}

type member struct {
	id    int64
	role  string // admin or member
	state string // active or pending (invited)
	since time.Time
}

type team struct {
	id      int64
	name    string
	members map[string]string // login → member or maintainer
}

// Server is a GitHub organization on loopback.
type Server struct {
	*httptest.Server
	opts Options

	mu            sync.Mutex
	users         map[string]int64  // GitHub accounts' ids, by login in lower case
	logins        map[string]string // their logins as their owners spell them
	missing       map[string]bool   // logins with no GitHub account
	members       map[string]*member
	collaborators map[string]bool
	teams         map[string]*team // by slug
	invitedAt     []time.Time
	nextID        int64
	used          int
	reset         time.Time
	writes        int
	problems      []string
	requests      map[string]int // by "METHOD route"
}

// Start serves an organization; t.Cleanup-style callers close it.
func Start(opts Options) (*Server, error) {
	if _, err := Router(); err != nil {
		return nil, err
	}
	if opts.RateLimit == 0 {
		opts.RateLimit = 5000
	}
	if opts.InvitationsPerDay == 0 {
		opts.InvitationsPerDay = 50
	}
	s := &Server{opts: opts, users: map[string]int64{}, logins: map[string]string{}, missing: map[string]bool{}, members: map[string]*member{}, collaborators: map[string]bool{},
		teams: map[string]*team{}, nextID: 1000, reset: time.Now().Add(time.Hour), requests: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s, nil
}

// NoSuchUser makes a login one GitHub has no account for; every other login has one.
func (s *Server) NoSuchUser(login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missing[strings.ToLower(login)] = true
}

func (s *Server) userLocked(login string) int64 {
	key := strings.ToLower(login)
	if id, ok := s.users[key]; ok {
		return id
	}
	s.nextID++
	s.users[key], s.logins[key] = s.nextID, login
	return s.nextID
}

// Accept makes a pending invitation a membership, as the invitee does by clicking.
func (s *Server) Accept(login string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[strings.ToLower(login)]
	if m == nil || m.state != "pending" {
		return false
	}
	m.state = "active"
	return true
}

// Member reports a login's state in the organization ("active", "pending", or "" if
// none) and role, and whether it is an outside collaborator.
func (s *Server) Member(login string) (state, role string, collaborator bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(login)
	if m := s.members[key]; m != nil {
		state, role = m.state, m.role
	}
	return state, role, s.collaborators[key]
}

// TeamMembers returns a team's members with their roles.
func (s *Server) TeamMembers(slug string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	if t := s.teams[slug]; t != nil {
		for k, v := range t.members {
			out[k] = v
		}
	}
	return out
}

// Problems are requests or answers that did not follow GitHub's description.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// Requests counts the requests served by method and route.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.opts.Latency > 0 {
		time.Sleep(s.opts.Latency)
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	router, _ := Router()
	route, params, err := router.FindRoute(r)
	if err != nil {
		s.problem("%s %s: no such route in GitHub's description: %v", r.Method, r.URL.Path, err)
		writeJSON(w, http.StatusNotFound, notFound)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		s.problem("%s %s: the request does not follow GitHub's description: %v", r.Method, r.URL.Path, err)
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed"})
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	s.handle(rec, r, route.Path, params, body)
	if _, documented := route.Operation.Responses.Map()[strconv.Itoa(rec.Code)]; documented && rec.Code != http.StatusNoContent {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
			Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			s.problem("%s %s: the answer %d does not follow GitHub's description: %v", r.Method, r.URL.Path, rec.Code, err)
		}
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (s *Server) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) < 100 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, route string, params map[string]string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[r.Method+" "+route]++
	if route == "/app/installations/{installation_id}/access_tokens" {
		// The app's JWT is checked by the test that uses it; here the token is handed out.
		writeJSON(w, http.StatusCreated, map[string]any{"token": s.opts.Token, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.opts.Token {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
		return
	}
	if !s.rateLimitLocked(w, r.Method) {
		return
	}
	if params["org"] != s.opts.Org {
		writeJSON(w, http.StatusNotFound, notFound)
		return
	}
	login := strings.ToLower(params["username"])
	switch r.Method + " " + route {
	case "GET /orgs/{org}":
		writeJSON(w, http.StatusOK, s.orgLocked())
	case "GET /orgs/{org}/members":
		role := r.URL.Query().Get("role")
		var out []any
		for _, l := range s.sortedMembersLocked() {
			if m := s.members[l]; m.state == "active" && (role == "" || role == "all" || role == m.role) {
				out = append(out, simpleUser(s.logins[l], m.id))
			}
		}
		s.page(w, r, out)
	case "GET /orgs/{org}/invitations":
		var out []any
		for _, l := range s.sortedMembersLocked() {
			if m := s.members[l]; m.state == "pending" {
				out = append(out, s.invitationLocked(l, m))
			}
		}
		s.page(w, r, out)
	case "GET /orgs/{org}/outside_collaborators":
		var out []any
		for _, l := range sortedKeys(s.collaborators) {
			out = append(out, simpleUser(s.logins[l], s.users[l]))
		}
		s.page(w, r, out)
	case "GET /orgs/{org}/memberships/{username}":
		if m := s.members[login]; m != nil {
			writeJSON(w, http.StatusOK, s.membershipLocked(login, m))
			return
		}
		writeJSON(w, http.StatusNotFound, notFound)
	case "PUT /orgs/{org}/memberships/{username}":
		s.setMembershipLocked(w, login, params, body)
	case "DELETE /orgs/{org}/memberships/{username}":
		if s.members[login] == nil {
			writeJSON(w, http.StatusNotFound, notFound)
			return
		}
		delete(s.members, login)
		for _, t := range s.teams {
			delete(t.members, login)
		}
		w.WriteHeader(http.StatusNoContent)
	case "PUT /orgs/{org}/outside_collaborators/{username}":
		if m := s.members[login]; m == nil || m.state != "active" {
			writeJSON(w, http.StatusNotFound, notFound)
			return
		}
		delete(s.members, login)
		for _, t := range s.teams {
			delete(t.members, login)
		}
		s.collaborators[login] = true
		w.WriteHeader(http.StatusNoContent)
	case "DELETE /orgs/{org}/outside_collaborators/{username}":
		delete(s.collaborators, login)
		w.WriteHeader(http.StatusNoContent)
	case "GET /orgs/{org}/teams":
		var out []any
		for _, slug := range sortedKeys(s.teams) {
			out = append(out, s.teamJSON(slug, s.teams[slug], false))
		}
		s.page(w, r, out)
	case "POST /orgs/{org}/teams":
		var req struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(body, &req)
		slug := slugOf(req.Name)
		if s.teams[slug] != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
				"errors":            []any{map[string]any{"resource": "Team", "code": "already_exists", "field": "name"}},
				"documentation_url": "https://docs.github.com/rest/teams/teams#create-a-team"})
			return
		}
		s.nextID++
		s.teams[slug] = &team{id: s.nextID, name: req.Name, members: map[string]string{}}
		writeJSON(w, http.StatusCreated, s.teamJSON(slug, s.teams[slug], true))
	case "GET /orgs/{org}/teams/{team_slug}/members":
		t := s.teams[params["team_slug"]]
		if t == nil {
			writeJSON(w, http.StatusNotFound, notFound)
			return
		}
		role := r.URL.Query().Get("role")
		var out []any
		for _, l := range sortedKeys(t.members) {
			if role == "" || role == "all" || role == t.members[l] {
				out = append(out, simpleUser(s.logins[l], s.users[l]))
			}
		}
		s.page(w, r, out)
	case "PUT /orgs/{org}/teams/{team_slug}/memberships/{username}":
		t := s.teams[params["team_slug"]]
		m := s.members[login]
		if t == nil || m == nil {
			writeJSON(w, http.StatusNotFound, notFound)
			return
		}
		var req struct {
			Role string `json:"role"`
		}
		_ = json.Unmarshal(body, &req)
		if req.Role == "" {
			req.Role = "member"
		}
		t.members[login] = req.Role
		writeJSON(w, http.StatusOK, map[string]any{"role": req.Role, "state": m.state,
			"url": s.URL + "/teams/" + strconv.FormatInt(t.id, 10) + "/memberships/" + login})
	case "DELETE /orgs/{org}/teams/{team_slug}/memberships/{username}":
		if t := s.teams[params["team_slug"]]; t != nil {
			delete(t.members, login)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusNotFound, notFound)
	}
}

// rateLimitLocked sets the primary limit's headers and answers a request past a limit.
func (s *Server) rateLimitLocked(w http.ResponseWriter, method string) bool {
	if time.Now().After(s.reset) {
		s.used, s.reset = 0, time.Now().Add(time.Hour)
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(s.opts.RateLimit))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(s.reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	if s.used >= s.opts.RateLimit {
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Used", strconv.Itoa(s.used))
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "API rate limit exceeded for installation.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
		return false
	}
	s.used++
	h.Set("X-RateLimit-Remaining", strconv.Itoa(s.opts.RateLimit-s.used))
	h.Set("X-RateLimit-Used", strconv.Itoa(s.used))
	if method != http.MethodGet && s.opts.SecondaryEvery > 0 {
		s.writes++
		if s.writes%s.opts.SecondaryEvery == 0 {
			h.Set("Retry-After", strconv.Itoa(s.opts.SecondaryWait))
			writeJSON(w, http.StatusForbidden, map[string]any{"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"})
			return false
		}
	}
	return true
}

func (s *Server) setMembershipLocked(w http.ResponseWriter, login string, params map[string]string, body []byte) {
	var req struct {
		Role string `json:"role"`
	}
	_ = json.Unmarshal(body, &req)
	if req.Role == "" {
		req.Role = "member"
	}
	if s.missing[login] {
		writeJSON(w, http.StatusNotFound, notFound)
		return
	}
	id := s.userLocked(params["username"])
	m := s.members[login]
	if m == nil {
		day := time.Now().Add(-24 * time.Hour)
		s.invitedAt = slices.DeleteFunc(s.invitedAt, func(t time.Time) bool { return t.Before(day) })
		if len(s.invitedAt) >= s.opts.InvitationsPerDay {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Validation Failed",
				"errors":            []any{map[string]any{"resource": "OrganizationInvitation", "code": "unprocessable", "field": "data", "message": "Over invitation rate limit"}},
				"documentation_url": "https://docs.github.com/rest/orgs/members#set-organization-membership-for-a-user"})
			return
		}
		s.invitedAt = append(s.invitedAt, time.Now())
		m = &member{id: id, state: "pending", since: time.Now()}
		s.members[login] = m
		delete(s.collaborators, login)
	}
	m.role = req.Role
	writeJSON(w, http.StatusOK, s.membershipLocked(login, m))
}

func (s *Server) page(w http.ResponseWriter, r *http.Request, all []any) {
	perPage, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if perPage <= 0 || perPage > 100 {
		perPage = 30
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page <= 0 {
		page = 1
	}
	start := min(len(all), (page-1)*perPage)
	end := min(len(all), start+perPage)
	if end < len(all) {
		next := *r.URL
		q := next.Query()
		q.Set("page", strconv.Itoa(page+1))
		q.Set("per_page", strconv.Itoa(perPage))
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, s.URL, next.RequestURI()))
	}
	out := all[start:end]
	if out == nil {
		out = []any{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) sortedMembersLocked() []string { return sortedKeys(s.members) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func slugOf(name string) string {
	return strings.Trim(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(name)), "-")
}

func (s *Server) url(path string) string { return s.URL + path }

func simpleUser(login string, id int64) map[string]any {
	base := "https://api.github.invalid/users/" + login
	return map[string]any{"login": login, "id": id, "node_id": fmt.Sprintf("U_%d", id), "avatar_url": "https://avatars.github.invalid/u/" + strconv.FormatInt(id, 10),
		"gravatar_id": "", "url": base, "html_url": "https://github.invalid/" + login, "followers_url": base + "/followers",
		"following_url": base + "/following{/other_user}", "gists_url": base + "/gists{/gist_id}", "starred_url": base + "/starred{/owner}{/repo}",
		"subscriptions_url": base + "/subscriptions", "organizations_url": base + "/orgs", "repos_url": base + "/repos",
		"events_url": base + "/events{/privacy}", "received_events_url": base + "/received_events", "type": "User", "site_admin": false}
}

func (s *Server) orgLocked() map[string]any {
	base := s.url("/orgs/" + s.opts.Org)
	return map[string]any{"login": s.opts.Org, "id": 1, "node_id": "O_1", "url": base, "repos_url": base + "/repos", "events_url": base + "/events",
		"hooks_url": base + "/hooks", "issues_url": base + "/issues", "members_url": base + "/members{/member}", "public_members_url": base + "/public_members{/member}",
		"avatar_url": "https://avatars.github.invalid/o/1", "description": nil, "html_url": "https://github.invalid/" + s.opts.Org,
		"has_organization_projects": true, "has_repository_projects": true, "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
		"type": "Organization", "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z", "archived_at": nil}
}

func (s *Server) membershipLocked(login string, m *member) map[string]any {
	return map[string]any{"url": s.url("/orgs/" + s.opts.Org + "/memberships/" + login), "state": m.state, "role": m.role,
		"organization_url": s.url("/orgs/" + s.opts.Org), "user": simpleUser(s.logins[login], m.id),
		"organization": map[string]any{"login": s.opts.Org, "id": 1, "node_id": "O_1", "url": s.url("/orgs/" + s.opts.Org),
			"repos_url": s.url("/orgs/" + s.opts.Org + "/repos"), "events_url": s.url("/orgs/" + s.opts.Org + "/events"),
			"hooks_url": s.url("/orgs/" + s.opts.Org + "/hooks"), "issues_url": s.url("/orgs/" + s.opts.Org + "/issues"),
			"members_url": s.url("/orgs/" + s.opts.Org + "/members{/member}"), "public_members_url": s.url("/orgs/" + s.opts.Org + "/public_members{/member}"),
			"avatar_url": "https://avatars.github.invalid/o/1", "description": nil}}
}

func (s *Server) invitationLocked(login string, m *member) map[string]any {
	role := "direct_member"
	if m.role == "admin" {
		role = "admin"
	}
	return map[string]any{"id": m.id, "login": s.logins[login], "email": nil, "role": role, "created_at": m.since.UTC().Format(time.RFC3339),
		"inviter": simpleUser("roster-bot", 1), "team_count": 0, "node_id": fmt.Sprintf("OI_%d", m.id),
		"invitation_teams_url": s.url(fmt.Sprintf("/organizations/1/invitations/%d/teams", m.id))}
}

func (s *Server) teamJSON(slug string, t *team, full bool) map[string]any {
	base := s.url(fmt.Sprintf("/organizations/1/team/%d", t.id))
	out := map[string]any{"id": t.id, "node_id": fmt.Sprintf("T_%d", t.id), "url": base, "members_url": base + "/members{/member}",
		"name": t.name, "description": nil, "permission": "pull", "html_url": "https://github.invalid/orgs/" + s.opts.Org + "/teams/" + slug,
		"repositories_url": base + "/repos", "slug": slug, "type": "organization", "privacy": "closed", "notification_setting": "notifications_enabled"}
	if full {
		out["created_at"], out["updated_at"] = "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"
		out["members_count"], out["repos_count"] = len(t.members), 0
		out["organization"] = s.orgLocked()
	} else {
		out["parent"] = nil
	}
	return out
}

var notFound = map[string]any{"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
