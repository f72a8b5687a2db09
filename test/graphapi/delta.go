package graphapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// change is one change to the tenant, in order, for delta queries.
type change struct {
	kind   string // user, group or member
	id     string // the user's or group's id
	member string // for a member change: the member's id
}

func (s *Server) record(kind, id string, member ...string) {
	c := change{kind: kind, id: id}
	if len(member) > 0 {
		c.member = member[0]
	}
	s.changes = append(s.changes, c)
}

// delta is GET /users/delta and GET /groups/delta:
// https://learn.microsoft.com/graph/delta-query-users and
// https://learn.microsoft.com/graph/delta-query-groups. The first round lists every
// object page by page (nextLink) and ends with a deltaLink; a deltaLink lists what
// changed since it was given: objects as they are now, removed ones with @removed,
// and for groups their members added and removed in members@delta.
func (s *Server) delta(kind string, query url.Values) (int, http.Header, any) {
	offset, since, round := 0, len(s.changes), false
	if tok := query.Get("$deltatoken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n > len(s.changes) {
			return http.StatusGone, nil, graphError("syncStateNotFound", "The delta token is no longer valid.")
		}
		since, round = n, true
	}
	if tok := query.Get("$skiptoken"); tok != "" {
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		var r int
		if _, err := fmt.Sscanf(string(raw), "%d,%d,%d", &offset, &since, &r); err != nil {
			return bad("BadRequest", "Invalid skip token.")
		}
		round = r == 1
	}
	var all []any
	if round {
		all = s.changedSince(kind, since, query)
	} else {
		all = s.everything(kind, query)
	}
	end := min(offset+s.opts.MaxPage, len(all))
	offset = min(offset, end)
	path := s.URL + "v1.0/" + kind + "s/delta?"
	answer := map[string]any{"value": nonNil(all[offset:end])}
	keep := url.Values{}
	if sel := query.Get("$select"); sel != "" {
		keep.Set("$select", sel)
	}
	switch {
	case end < len(all):
		r := 0
		if round {
			r = 1
		}
		keep.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%d,%d,%d", end, since, r))))
		answer["@odata.nextLink"] = path + keep.Encode()
	case round:
		keep.Set("$deltatoken", strconv.Itoa(len(s.changes)))
		answer["@odata.deltaLink"] = path + keep.Encode()
	default:
		// What changed while the first round was read is given by the next round.
		keep.Set("$deltatoken", strconv.Itoa(since))
		answer["@odata.deltaLink"] = path + keep.Encode()
	}
	return http.StatusOK, nil, answer
}

func (s *Server) everything(kind string, query url.Values) []any {
	var all []any
	if kind == "user" {
		for _, u := range s.users {
			all = append(all, s.deltaUser(u, query))
		}
		return all
	}
	for _, g := range s.groups {
		v := clone(g)
		var members []any
		for _, id := range s.members[g["id"].(string)] {
			members = append(members, s.memberRef(id))
		}
		v["members@delta"] = nonNil(members)
		all = append(all, v)
	}
	return all
}

func (s *Server) changedSince(kind string, since int, query url.Values) []any {
	var order []string
	members := map[string][]string{}
	for _, c := range s.changes[since:] {
		switch {
		case kind == "user" && c.kind == "user", kind == "group" && c.kind == "group":
		case kind == "group" && c.kind == "member":
			if !slices.Contains(members[c.id], c.member) {
				members[c.id] = append(members[c.id], c.member)
			}
		default:
			continue
		}
		if !slices.Contains(order, c.id) {
			order = append(order, c.id)
		}
	}
	var all []any
	for _, id := range order {
		if kind == "user" {
			if u := s.findUser(id); u != nil {
				all = append(all, s.deltaUser(u, query))
			} else {
				all = append(all, map[string]any{"id": id, "@removed": map[string]any{"reason": "changed"}})
			}
			continue
		}
		g := s.findGroup(id)
		if g == nil {
			all = append(all, map[string]any{"id": id, "@removed": map[string]any{"reason": "changed"}})
			continue
		}
		v := clone(g)
		var delta []any
		for _, m := range members[id] {
			ref := s.memberRef(m)
			if !slices.Contains(s.members[id], m) {
				ref["@removed"] = map[string]any{"reason": "deleted"}
			}
			delta = append(delta, ref)
		}
		if len(delta) > 0 {
			v["members@delta"] = delta
		}
		all = append(all, v)
	}
	return all
}

// deltaUser is a user as a delta shows it: with $select=manager, its manager as
// manager@delta.
func (s *Server) deltaUser(u map[string]any, query url.Values) map[string]any {
	v := s.selected(u, query)
	if slices.Contains(strings.Split(query.Get("$select"), ","), "manager") {
		delete(v, "manager")
		if m, ok := u[managerKey].(string); ok {
			v["manager@delta"] = []any{map[string]any{"@odata.type": "#microsoft.graph.user", "id": m}}
		}
	}
	return v
}

func (s *Server) memberRef(id string) map[string]any {
	kind := "#microsoft.graph.user"
	if s.findGroup(id) != nil {
		kind = "#microsoft.graph.group"
	}
	return map[string]any{"@odata.type": kind, "id": id}
}

// Do makes a change as an admin would in the Entra admin center: route and path as
// Graph names them ("PATCH", "/users/ada@example.com").
func (s *Server) Do(method, path string, body string) (int, any) {
	status, _, answer := s.serve(method, path, "", []byte(body))
	if strings.HasPrefix(path, "/") {
		s.mu.Lock()
		s.calls[method+" "+routeOf(strings.Split(strings.Trim(path, "/"), "/"))]--
		s.mu.Unlock()
	}
	return status, answer
}
