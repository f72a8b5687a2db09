package googleapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serve answers a call the discovery document admits, as Google documents it.
func (s *Server) serve(method string, params map[string]string, query map[string][]string, in map[string]any) (int, any) {
	get := func(name string) string {
		if v := query[name]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	switch method {
	case "directory.users.insert":
		return s.insertUser(in)
	case "directory.users.get":
		if u := s.findUser(params["userKey"]); u != nil {
			return http.StatusOK, u
		}
		return apiError(http.StatusNotFound, "notFound", "Resource Not Found: userKey")
	case "directory.users.list":
		if c := get("customer"); get("domain") == "" && c != "my_customer" && c != customerID {
			return apiError(http.StatusBadRequest, "badRequest", "Bad Request")
		}
		return s.listUsers(get("domain"), get("query"), get("pageToken"), get("maxResults"))
	case "directory.users.patch":
		return s.patchUser(params["userKey"], in)
	case "directory.users.delete":
		u := s.findUser(params["userKey"])
		if u == nil {
			return apiError(http.StatusNotFound, "notFound", "Resource Not Found: userKey")
		}
		s.audit("USER_SETTINGS", "DELETE_USER", "USER_EMAIL", str(u["primaryEmail"]))
		s.users = slices.DeleteFunc(s.users, func(x map[string]any) bool { return x["id"] == u["id"] })
		for k, x := range s.userKeys {
			if x["id"] == u["id"] {
				delete(s.userKeys, k)
			}
		}
		for g, ids := range s.members {
			s.members[g] = slices.DeleteFunc(ids, func(id string) bool { return id == u["id"] })
		}
		return http.StatusNoContent, nil
	case "directory.groups.insert":
		return s.insertGroup(in)
	case "directory.groups.get":
		if g := s.findGroup(params["groupKey"]); g != nil {
			return http.StatusOK, s.groupView(g)
		}
		return apiError(http.StatusNotFound, "notFound", "Resource Not Found: groupKey")
	case "directory.groups.list":
		var all []any
		for _, g := range s.groups {
			if d := get("domain"); d == "" || strings.HasSuffix(str(g["email"]), "@"+strings.ToLower(d)) {
				all = append(all, s.groupView(g))
			}
		}
		items, next := s.page(all, get("pageToken"), get("maxResults"))
		return http.StatusOK, map[string]any{"kind": "admin#directory#groups", "groups": items, "nextPageToken": next}
	case "directory.members.list":
		g := s.findGroup(params["groupKey"])
		if g == nil {
			return apiError(http.StatusNotFound, "notFound", "Resource Not Found: groupKey")
		}
		var all []any
		for _, id := range s.members[g["id"].(string)] {
			all = append(all, s.member(id))
		}
		items, next := s.page(all, get("pageToken"), get("maxResults"))
		return http.StatusOK, map[string]any{"kind": "admin#directory#members", "members": items, "nextPageToken": next}
	case "directory.members.insert":
		return s.insertMember(params["groupKey"], in)
	case "directory.members.delete":
		g, u := s.findGroup(params["groupKey"]), s.findMember(params["memberKey"])
		if g == nil || u == nil || !slices.Contains(s.members[g["id"].(string)], u["id"].(string)) {
			return apiError(http.StatusNotFound, "notFound", "Resource Not Found: memberKey")
		}
		gid := g["id"].(string)
		s.members[gid] = slices.DeleteFunc(s.members[gid], func(id string) bool { return id == u["id"] })
		s.audit("GROUP_SETTINGS", "REMOVE_GROUP_MEMBER", "GROUP_EMAIL", str(g["email"]), "USER_EMAIL", str(u["primaryEmail"]))
		return http.StatusNoContent, nil
	case "reports.activities.list":
		return s.listActivities(params, get)
	}
	s.problems = append(s.problems, method+" is not served by the test account")
	return apiError(http.StatusNotImplemented, "notImplemented", "Not Implemented")
}

func (s *Server) inDomain(email string) bool {
	_, domain, ok := strings.Cut(strings.ToLower(email), "@")
	return ok && domain == s.opts.Domain
}

func (s *Server) insertUser(in map[string]any) (int, any) {
	email, _ := in["primaryEmail"].(string)
	name, _ := in["name"].(map[string]any)
	given, _ := name["givenName"].(string)
	family, _ := name["familyName"].(string)
	password, _ := in["password"].(string)
	switch {
	case given == "" || family == "":
		return apiError(http.StatusBadRequest, "required", "Missing required field: name")
	case len(password) < 8:
		return apiError(http.StatusBadRequest, "invalid", "Invalid Password")
	case !s.inDomain(email):
		return apiError(http.StatusBadRequest, "invalid", "Invalid Input: primary_user_email")
	case s.findUser(email) != nil:
		return apiError(http.StatusConflict, "duplicate", "Entity already exists.")
	}
	return http.StatusOK, clone(s.newUser(in))
}

// newUser keeps what Google keeps of an inserted user, and what it adds.
func (s *Server) newUser(in map[string]any) map[string]any {
	u := clone(in)
	delete(u, "password")
	delete(u, "hashFunction")
	name := u["name"].(map[string]any)
	name["fullName"] = strings.TrimSpace(str(name["givenName"]) + " " + str(name["familyName"]))
	u["kind"], u["id"], u["etag"] = "admin#directory#user", s.newID(), `"`+randomID()+`"`
	s.audit("USER_SETTINGS", "CREATE_USER", "USER_EMAIL", str(u["primaryEmail"]))
	u["customerId"], u["creationTime"], u["lastLoginTime"] = customerID, time.Now().UTC().Format(time.RFC3339), "1970-01-01T00:00:00.000Z"
	u["isAdmin"], u["isDelegatedAdmin"], u["agreedToTerms"], u["isMailboxSetup"] = false, false, false, true
	if _, ok := u["suspended"]; !ok {
		u["suspended"] = false
	}
	if _, ok := u["orgUnitPath"]; !ok || u["orgUnitPath"] == "" {
		u["orgUnitPath"] = "/"
	}
	if _, ok := u["changePasswordAtNextLogin"]; !ok {
		u["changePasswordAtNextLogin"] = false
	}
	s.users = append(s.users, u)
	s.userKeys[u["id"].(string)], s.userKeys[strings.ToLower(str(u["primaryEmail"]))] = u, u
	return u
}

func (s *Server) patchUser(key string, in map[string]any) (int, any) {
	u := s.findUser(key)
	if u == nil {
		return apiError(http.StatusNotFound, "notFound", "Resource Not Found: userKey")
	}
	if email, ok := in["primaryEmail"].(string); ok && !strings.EqualFold(email, str(u["primaryEmail"])) {
		if other := s.findUser(email); other != nil && other["id"] != u["id"] {
			return apiError(http.StatusConflict, "duplicate", "Entity already exists.")
		}
		if !s.inDomain(email) {
			return apiError(http.StatusBadRequest, "invalid", "Invalid Input: primary_user_email")
		}
		aliases, _ := u["aliases"].([]any)
		u["aliases"] = append(aliases, u["primaryEmail"]) // the old address keeps reaching the user
	}
	s.auditPatch(u, in)
	merge(u, in)
	s.userKeys[strings.ToLower(str(u["primaryEmail"]))] = u
	delete(u, "password")
	if suspended, _ := u["suspended"].(bool); suspended {
		u["suspensionReason"] = "ADMIN"
	} else {
		delete(u, "suspensionReason")
	}
	u["etag"] = `"` + randomID() + `"`
	return http.StatusOK, clone(u)
}

// merge applies patch semantics: a field sent replaces, an object merges, a list is
// replaced whole.
func merge(into, patch map[string]any) {
	for k, v := range patch {
		if sub, ok := v.(map[string]any); ok {
			if have, ok := into[k].(map[string]any); ok {
				merge(have, sub)
				continue
			}
		}
		into[k] = v
	}
}

func (s *Server) listUsers(domain, query, token, max string) (int, any) {
	field, value, _ := strings.Cut(query, ":")
	value = strings.Trim(strings.ReplaceAll(value, `\'`, `'`), "'")
	var all []any
	for _, u := range s.users {
		if domain != "" && !strings.HasSuffix(strings.ToLower(str(u["primaryEmail"])), "@"+strings.ToLower(domain)) {
			continue
		}
		switch field {
		case "":
		case "externalId":
			if !hasExternalID(u, value) {
				continue
			}
		case "email":
			if !strings.EqualFold(str(u["primaryEmail"]), value) {
				continue
			}
		default:
			return apiError(http.StatusBadRequest, "invalid", "Invalid Input: query")
		}
		all = append(all, clone(u))
	}
	items, next := s.page(all, token, max)
	return http.StatusOK, map[string]any{"kind": "admin#directory#users", "users": items, "nextPageToken": next}
}

func hasExternalID(u map[string]any, value string) bool {
	ids, _ := u["externalIds"].([]any)
	for _, e := range ids {
		if m, _ := e.(map[string]any); m != nil && strings.EqualFold(str(m["value"]), value) {
			return true
		}
	}
	return false
}

func (s *Server) insertGroup(in map[string]any) (int, any) {
	email := strings.ToLower(str(in["email"]))
	switch {
	case !s.inDomain(email):
		return apiError(http.StatusBadRequest, "invalid", "Invalid Input: email")
	case s.findGroup(email) != nil:
		return apiError(http.StatusConflict, "duplicate", "Entity already exists.")
	}
	g := map[string]any{"kind": "admin#directory#group", "id": s.newID(), "email": email, "name": in["name"],
		"etag": `"` + randomID() + `"`, "adminCreated": true, "description": ""}
	if g["name"] == nil {
		g["name"] = email
	}
	s.groups = append(s.groups, g)
	s.audit("GROUP_SETTINGS", "CREATE_GROUP", "GROUP_EMAIL", email)
	return http.StatusOK, s.groupView(g)
}

func (s *Server) groupView(g map[string]any) map[string]any {
	v := clone(g)
	v["directMembersCount"] = strconv.Itoa(len(s.members[g["id"].(string)]))
	return v
}

func (s *Server) insertMember(groupKey string, in map[string]any) (int, any) {
	g := s.findGroup(groupKey)
	if g == nil {
		return apiError(http.StatusNotFound, "notFound", "Resource Not Found: groupKey")
	}
	email := str(in["email"])
	if email == "" {
		return apiError(http.StatusBadRequest, "required", "Missing required field: email")
	}
	u := s.findMember(email)
	if u == nil {
		return apiError(http.StatusNotFound, "notFound", "Resource Not Found: memberKey")
	}
	gid, uid := g["id"].(string), u["id"].(string)
	if slices.Contains(s.members[gid], uid) {
		return apiError(http.StatusConflict, "duplicate", "Member already exists.")
	}
	s.members[gid] = append(s.members[gid], uid)
	s.audit("GROUP_SETTINGS", "ADD_GROUP_MEMBER", "GROUP_EMAIL", str(g["email"]), "USER_EMAIL", email)
	m := s.member(uid)
	m["etag"] = `"` + randomID() + `"`
	return http.StatusOK, m
}

// findMember finds a user, else a group (a group may be a member of another).
func (s *Server) findMember(key string) map[string]any {
	if u := s.findUser(key); u != nil {
		return u
	}
	return s.findGroup(key)
}

// member is a group's member as members.list shows it.
func (s *Server) member(id string) map[string]any {
	if u := s.findUser(id); u != nil {
		return map[string]any{"kind": "admin#directory#member", "id": id, "email": u["primaryEmail"], "role": "MEMBER", "type": "USER", "status": "ACTIVE"}
	}
	g := s.findGroup(id)
	return map[string]any{"kind": "admin#directory#member", "id": id, "email": g["email"], "role": "MEMBER", "type": "GROUP"}
}

// findUser finds a user by id, primary email or alias, ignoring letter case.
func (s *Server) findUser(key string) map[string]any {
	return s.userKeys[strings.ToLower(key)]
}

func (s *Server) findGroup(key string) map[string]any {
	for _, g := range s.groups {
		if g["id"] == key || strings.EqualFold(str(g["email"]), key) {
			return g
		}
	}
	return nil
}

// page cuts a list by an opaque page token; the token of the last page is "".
func (s *Server) page(all []any, token, max string) ([]any, string) {
	size := s.opts.MaxPage
	if n, err := strconv.Atoi(max); err == nil && n > 0 {
		size = min(n, size)
	}
	start := 0
	if raw, err := base64.RawURLEncoding.DecodeString(token); err == nil && len(raw) > 0 {
		start, _ = strconv.Atoi(string(raw))
	}
	start = min(start, len(all))
	end := min(start+size, len(all))
	next := ""
	if end < len(all) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return all[start:end], next
}

func clone(m map[string]any) map[string]any {
	data, _ := json.Marshal(m)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err) // what json.Marshal wrote
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// SignIn records that a user signed in at a time, as Google's lastLoginTime shows it.
func (s *Server) SignIn(key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findUser(key); u != nil {
		u["lastLoginTime"] = at.UTC().Format("2006-01-02T15:04:05.000Z")
	}
}
