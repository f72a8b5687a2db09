package graphapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// userProperties are the user properties a request may set:
// https://learn.microsoft.com/graph/api/resources/user (those not read-only).
var userProperties = []string{"accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile",
	"givenName", "surname", "jobTitle", "department", "employeeId", "usageLocation", "mail", "officeLocation",
	"companyName", "employeeType", "city", "country", "mobilePhone", "preferredLanguage"}

// requiredOnCreate are what POST /users needs: https://learn.microsoft.com/graph/api/user-post-users
var requiredOnCreate = []string{"accountEnabled", "displayName", "mailNickname", "passwordProfile", "userPrincipalName"}

var (
	guid     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	eqFilter = regexp.MustCompile(`^(\w+) eq '((?:[^']|'')*)'$`)
)

// serve answers one request, as the Graph reference documents it.
func (s *Server) serve(method, path, rawQuery string, body []byte) (int, http.Header, any) {
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return bad("BadRequest", "Invalid query")
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	route := method + " " + routeOf(parts)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[route]++
	if s.throttle > 0 {
		s.throttle--
		return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}, graphError("TooManyRequests", "Too many requests.")
	}
	s.checkQuery(route, query)
	var in map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return bad("BadRequest", "Unable to read JSON request payload.")
		}
	}
	switch route {
	case "GET /users":
		return s.listUsers(query)
	case "POST /users":
		return s.createUser(in)
	case "GET /users/{id}":
		if u := s.findUser(parts[1]); u != nil {
			return http.StatusOK, nil, s.selected(u, query)
		}
		return notFound()
	case "PATCH /users/{id}":
		return s.patchUser(parts[1], in)
	case "DELETE /users/{id}":
		return s.deleteUser(parts[1])
	case "POST /users/{id}/revokeSignInSessions": // https://learn.microsoft.com/graph/api/user-revokesigninsessions
		u := s.findUser(parts[1])
		if u == nil {
			return notFound()
		}
		s.revoked[u["id"].(string)]++
		return http.StatusOK, nil, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true}
	case "POST /users/{id}/assignLicense":
		return s.assignLicense(parts[1], in)
	case "PUT /users/{id}/manager/$ref": // https://learn.microsoft.com/graph/api/user-post-manager
		return s.setManager(parts[1], in)
	case "GET /users/delta":
		return s.delta("user", query)
	case "GET /groups":
		return s.listGroups(query)
	case "POST /groups":
		return s.createGroup(in)
	case "PATCH /groups/{id}":
		return s.bindMembers(parts[1], in)
	case "GET /groups/{id}/members/microsoft.graph.user":
		return s.listMembers(parts[1], query)
	case "DELETE /groups/{id}/members/{id}/$ref": // https://learn.microsoft.com/graph/api/group-delete-members
		return s.removeMember(parts[1], parts[3])
	case "GET /groups/delta":
		return s.delta("group", query)
	}
	s.problem("%s is no route of the tenant (%s)", route, path)
	return http.StatusBadRequest, nil, graphError("BadRequest", "Resource not found for the segment.")
}

// routeOf names a path by its shape: ids become {id}.
func routeOf(parts []string) string {
	out := make([]string, len(parts))
	for i, p := range parts {
		switch {
		case i > 0 && (guid.MatchString(p) || strings.Contains(p, "@")):
			out[i] = "{id}"
		default:
			out[i] = p
		}
	}
	return "/" + strings.Join(out, "/")
}

func bad(code, message string) (int, http.Header, any) {
	return http.StatusBadRequest, nil, graphError(code, message)
}

func notFound() (int, http.Header, any) {
	return http.StatusNotFound, nil, graphError("Request_ResourceNotFound", "Resource does not exist or one of its queried reference-property objects are not present.")
}

// checkQuery checks OData query options: https://learn.microsoft.com/graph/query-parameters
// ($top is 1 to 999 for users and groups; other options are not used here).
func (s *Server) checkQuery(route string, query url.Values) {
	for name, values := range query {
		switch name {
		case "$select", "$filter", "$skiptoken", "$deltatoken":
		case "$top":
			if n, err := strconv.Atoi(values[0]); err != nil || n < 1 || n > 999 {
				s.problem("%s: $top=%s is not 1 to 999", route, values[0])
			}
		default:
			s.problem("%s: query option %s is not one this tenant takes", route, name)
		}
	}
}

func (s *Server) findUser(key string) map[string]any {
	return s.userKeys[strings.ToLower(key)]
}

func (s *Server) findGroup(id string) map[string]any {
	for _, g := range s.groups {
		if g["id"] == id {
			return g
		}
	}
	return nil
}

// selected is a user with the properties $select names (all it holds otherwise),
// signInActivity only where the tenant gives it.
func (s *Server) selected(u map[string]any, query url.Values) map[string]any {
	out := map[string]any{}
	sel := query.Get("$select")
	for k, v := range u {
		if k == managerKey || k == "signInActivity" && !strings.Contains(sel, "signInActivity") {
			continue
		}
		if sel == "" || slices.Contains(strings.Split(sel, ","), k) {
			out[k] = v
		}
	}
	if strings.Contains(sel, "signInActivity") {
		if _, ok := out["signInActivity"]; !ok {
			out["signInActivity"] = nil
		}
	}
	return out
}

// listUsers is GET /users: https://learn.microsoft.com/graph/api/user-list ($filter
// with eq on userPrincipalName, mail and employeeId is supported without advanced
// query options).
func (s *Server) listUsers(query url.Values) (int, http.Header, any) {
	if strings.Contains(query.Get("$select"), "signInActivity") && s.opts.NoSignInActivity {
		return http.StatusForbidden, nil, graphError("Authentication_RequestFromNonPremiumTenantOrB2CTenant",
			"Neither tenant is B2C or tenant doesn't have premium license")
	}
	field, value := "", ""
	if f := query.Get("$filter"); f != "" {
		m := eqFilter.FindStringSubmatch(f)
		if m == nil || !slices.Contains([]string{"userPrincipalName", "mail", "employeeId"}, m[1]) {
			s.problem("GET /users: $filter %q is not one this tenant takes", f)
			return bad("Request_UnsupportedQuery", "Unsupported Query.")
		}
		field, value = m[1], strings.ReplaceAll(m[2], "''", "'")
	}
	var all []any
	for _, u := range s.users {
		if field == "" || strings.EqualFold(str(u[field]), value) {
			all = append(all, s.selected(u, query))
		}
	}
	return s.page("/users", all, query)
}

// page cuts a collection; the next page's link carries the same query and a skiptoken.
func (s *Server) page(path string, all []any, query url.Values) (int, http.Header, any) {
	size := s.opts.MaxPage
	if n, err := strconv.Atoi(query.Get("$top")); err == nil && n > 0 {
		size = min(size, n)
	}
	start := 0
	if raw, err := base64.RawURLEncoding.DecodeString(query.Get("$skiptoken")); err == nil && len(raw) > 0 {
		start, _ = strconv.Atoi(string(raw))
	}
	start = min(start, len(all))
	end := min(start+size, len(all))
	answer := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata" + path, "value": nonNil(all[start:end])}
	if end < len(all) {
		next := url.Values{}
		for k, v := range query {
			next[k] = v
		}
		next.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
		answer["@odata.nextLink"] = s.URL + "v1.0" + path + "?" + next.Encode()
	}
	return http.StatusOK, nil, answer
}

func nonNil(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}

// checkBody lists what in a body is no writable property of a user.
func (s *Server) checkBody(route string, in map[string]any) {
	for k := range in {
		if !slices.Contains(userProperties, k) {
			s.problem("%s: %s is not a writable property of a user", route, k)
		}
	}
}

// createUser is POST /users: https://learn.microsoft.com/graph/api/user-post-users
func (s *Server) createUser(in map[string]any) (int, http.Header, any) {
	s.checkBody("POST /users", in)
	for _, p := range requiredOnCreate {
		if _, ok := in[p]; !ok {
			s.problem("POST /users: %s is required", p)
			return bad("Request_BadRequest", "Invalid value specified for property '"+p+"' of resource 'User'.")
		}
	}
	upn := str(in["userPrincipalName"])
	profile, _ := in["passwordProfile"].(map[string]any)
	switch _, domain, _ := strings.Cut(strings.ToLower(upn), "@"); {
	case domain != s.opts.Domain:
		return bad("Request_BadRequest", "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.")
	case len(str(profile["password"])) < 8:
		return bad("Request_BadRequest", "The specified password does not comply with password complexity requirements.")
	case s.findUser(upn) != nil:
		return bad("Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
	}
	u := clone(in)
	delete(u, "passwordProfile")
	u["id"] = s.newID()
	u["assignedLicenses"] = []any{}
	s.users = append(s.users, u)
	s.userKeys[u["id"].(string)], s.userKeys[strings.ToLower(upn)] = u, u
	s.record("user", u["id"].(string))
	return http.StatusCreated, http.Header{"Location": {s.URL + "v1.0/users/" + u["id"].(string)}}, clone(u)
}

// patchUser is PATCH /users/{id}: https://learn.microsoft.com/graph/api/user-update
// (204 No Content; null clears a property).
func (s *Server) patchUser(key string, in map[string]any) (int, http.Header, any) {
	u := s.findUser(key)
	if u == nil {
		return notFound()
	}
	s.checkBody("PATCH /users/{id}", in)
	if upn, ok := in["userPrincipalName"].(string); ok {
		if other := s.findUser(upn); other != nil && other["id"] != u["id"] {
			return bad("Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
		}
	}
	if upn, ok := in["userPrincipalName"].(string); ok {
		delete(s.userKeys, strings.ToLower(str(u["userPrincipalName"])))
		s.userKeys[strings.ToLower(upn)] = u
	}
	for k, v := range in {
		if k == "passwordProfile" {
			continue
		}
		if v == nil {
			delete(u, k)
		} else {
			u[k] = v
		}
	}
	s.record("user", u["id"].(string))
	return http.StatusNoContent, nil, nil
}

// deleteUser is DELETE /users/{id}: https://learn.microsoft.com/graph/api/user-delete
// (into deleted items for 30 days).
func (s *Server) deleteUser(key string) (int, http.Header, any) {
	u := s.findUser(key)
	if u == nil {
		return notFound()
	}
	id := u["id"].(string)
	s.users = slices.DeleteFunc(s.users, func(x map[string]any) bool { return x["id"] == id })
	delete(s.userKeys, id)
	delete(s.userKeys, strings.ToLower(str(u["userPrincipalName"])))
	for g, ids := range s.members {
		s.members[g] = slices.DeleteFunc(ids, func(m string) bool { return m == id })
	}
	s.record("user", id)
	return http.StatusNoContent, nil, nil
}

// setManager sets a user's manager by reference.
func (s *Server) setManager(key string, in map[string]any) (int, http.Header, any) {
	u := s.findUser(key)
	ref := str(in["@odata.id"])
	m := s.findUser(ref[strings.LastIndex(ref, "/")+1:])
	if u == nil || m == nil || !strings.HasPrefix(ref, s.URL+"v1.0/") {
		return notFound()
	}
	u[managerKey] = m["id"]
	s.record("user", u["id"].(string))
	return http.StatusNoContent, nil, nil
}

// managerKey holds a user's manager's id; Graph shows it only as a relation.
const managerKey = "@manager"

// assignLicense is POST /users/{id}/assignLicense:
// https://learn.microsoft.com/graph/api/user-assignlicense (both lists required; a
// user needs a usageLocation).
func (s *Server) assignLicense(key string, in map[string]any) (int, http.Header, any) {
	u := s.findUser(key)
	if u == nil {
		return notFound()
	}
	adds, okAdd := in["addLicenses"].([]any)
	removes, okRemove := in["removeLicenses"].([]any)
	if !okAdd || !okRemove {
		s.problem("assignLicense: addLicenses and removeLicenses are both required: %v", in)
		return bad("Request_BadRequest", "Invalid request body.")
	}
	if len(adds) > 0 && str(u["usageLocation"]) == "" {
		return bad("Request_BadRequest", "License assignment cannot be done for user with invalid usage location.")
	}
	held, _ := u["assignedLicenses"].([]any)
	var next []any
	for _, l := range held {
		sku := str(l.(map[string]any)["skuId"])
		if !slices.ContainsFunc(removes, func(r any) bool { return r == sku }) {
			next = append(next, l)
		}
	}
	for _, a := range adds {
		sku := str(a.(map[string]any)["skuId"])
		if sku != SkuE3 && sku != SkuE5 {
			return bad("Request_BadRequest", "License "+sku+" does not correspond to a valid company License.")
		}
		next = append(next, map[string]any{"skuId": sku, "disabledPlans": []any{}})
	}
	u["assignedLicenses"] = nonNil(next)
	s.record("user", u["id"].(string))
	return http.StatusOK, nil, clone(u)
}

// listGroups is GET /groups: https://learn.microsoft.com/graph/api/group-list.
func (s *Server) listGroups(query url.Values) (int, http.Header, any) {
	f := query.Get("$filter")
	var all []any
	for _, g := range s.groups {
		switch m := eqFilter.FindStringSubmatch(f); {
		case f == "" || f == "securityEnabled eq true":
		case m != nil && m[1] == "displayName":
			if g["displayName"] != strings.ReplaceAll(m[2], "''", "'") {
				continue
			}
		default:
			s.problem("GET /groups: $filter %q is not one this tenant takes", f)
			return bad("Request_UnsupportedQuery", "Unsupported Query.")
		}
		all = append(all, clone(g))
	}
	return s.page("/groups", all, query)
}

// createGroup is POST /groups: https://learn.microsoft.com/graph/api/group-post-groups
// (displayName, mailEnabled, mailNickname and securityEnabled required).
func (s *Server) createGroup(in map[string]any) (int, http.Header, any) {
	for _, p := range []string{"displayName", "mailEnabled", "mailNickname", "securityEnabled"} {
		if _, ok := in[p]; !ok {
			s.problem("POST /groups: %s is required", p)
			return bad("Request_BadRequest", "A value is required for property '"+p+"' of resource 'Group'.")
		}
	}
	g := map[string]any{"id": s.newID(), "displayName": in["displayName"], "mailNickname": in["mailNickname"],
		"mailEnabled": in["mailEnabled"], "securityEnabled": in["securityEnabled"]}
	s.groups = append(s.groups, g)
	s.record("group", g["id"].(string))
	return http.StatusCreated, nil, clone(g)
}

// bindMembers is PATCH /groups/{id} with members@odata.bind:
// https://learn.microsoft.com/graph/api/group-post-members (up to 20 in one request; one
// already a member fails the request).
func (s *Server) bindMembers(id string, in map[string]any) (int, http.Header, any) {
	g := s.findGroup(id)
	if g == nil {
		return notFound()
	}
	refs, _ := in["members@odata.bind"].([]any)
	if len(refs) == 0 || len(refs) > 20 {
		s.problem("PATCH /groups/{id}: members@odata.bind holds %d references, not 1 to 20", len(refs))
		return bad("Request_BadRequest", "The maximum number of references is 20.")
	}
	var add []string
	for _, r := range refs {
		ref := str(r)
		uid := ref[strings.LastIndex(ref, "/")+1:]
		if !strings.HasPrefix(ref, s.URL+"v1.0/directoryObjects/") || s.findUser(uid) == nil && s.findGroup(uid) == nil {
			return bad("Request_BadRequest", "Invalid object identifier '"+ref+"'.")
		}
		if slices.Contains(s.members[id], uid) {
			return bad("Request_BadRequest", "One or more added object references already exist for the following modified properties: 'members'.")
		}
		add = append(add, uid)
	}
	for _, uid := range add {
		s.members[id] = append(s.members[id], uid)
		s.record("member", id, uid)
	}
	return http.StatusNoContent, nil, nil
}

func (s *Server) listMembers(id string, query url.Values) (int, http.Header, any) {
	if s.findGroup(id) == nil {
		return notFound()
	}
	var all []any
	for _, uid := range s.members[id] {
		if s.findUser(uid) != nil {
			all = append(all, map[string]any{"@odata.type": "#microsoft.graph.user", "id": uid})
		}
	}
	return s.page("/groups/"+id+"/members/microsoft.graph.user", all, query)
}

func (s *Server) removeMember(id, uid string) (int, http.Header, any) {
	if s.findGroup(id) == nil || !slices.Contains(s.members[id], uid) {
		return notFound()
	}
	s.members[id] = slices.DeleteFunc(s.members[id], func(m string) bool { return m == uid })
	s.record("member", id, uid)
	return http.StatusNoContent, nil, nil
}
