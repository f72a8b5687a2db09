package googleapi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// activity is one admin activity, as the Reports API lists it. Event names follow
// Google's list of admin events; what a reader may rely on is the event's type
// (USER_SETTINGS, GROUP_SETTINGS) and its USER_EMAIL and GROUP_EMAIL parameters.
type activity struct {
	at        time.Time
	qualifier int64
	kind      string
	name      string
	params    []string // name, value, name, value…
}

// audit records an activity; the caller holds s.mu.
func (s *Server) audit(kind, name string, params ...string) {
	s.activities = append(s.activities, activity{at: time.Now().UTC(), qualifier: int64(len(s.activities) + 1), kind: kind, name: name, params: params})
}

// Do makes a change as an admin would in the Admin console (the activity is recorded
// as for any other change): method is the Directory API method's id, params its path
// parameters.
func (s *Server) Do(method string, params map[string]string, body map[string]any) (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serve(method, params, nil, body)
}

// auditPatch records what a patch of a user changed.
func (s *Server) auditPatch(before map[string]any, patch map[string]any) {
	email := str(before["primaryEmail"])
	for field, v := range patch {
		switch field {
		case "primaryEmail":
			if !strings.EqualFold(str(v), email) {
				s.audit("USER_SETTINGS", "RENAME_USER", "USER_EMAIL", email, "NEW_VALUE", str(v))
			}
		case "suspended":
			if v != before["suspended"] {
				s.audit("USER_SETTINGS", map[bool]string{true: "SUSPEND_USER", false: "UNSUSPEND_USER"}[v == true], "USER_EMAIL", email)
			}
		case "orgUnitPath":
			s.audit("USER_SETTINGS", "MOVE_USER_TO_ORG_UNIT", "USER_EMAIL", email, "NEW_VALUE", str(v))
		case "name":
			s.audit("USER_SETTINGS", "CHANGE_FIRST_NAME", "USER_EMAIL", email)
		case "password":
			s.audit("USER_SETTINGS", "CHANGE_PASSWORD", "USER_EMAIL", email)
		default:
			s.audit("USER_SETTINGS", "CHANGE_USER_"+strings.ToUpper(field), "USER_EMAIL", email)
		}
	}
}

// listActivities is reports.activities.list for the admin application: newest first.
func (s *Server) listActivities(params map[string]string, get func(string) string) (int, any) {
	if params["userKey"] != "all" || params["applicationName"] != "admin" {
		return http.StatusOK, map[string]any{"kind": "admin#reports#activities"}
	}
	from, to := time.Time{}, time.Now().Add(time.Hour)
	if v := get("startTime"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return apiError(http.StatusBadRequest, "invalid", "Invalid value for: startTime")
		}
		from = t
	}
	if v := get("endTime"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return apiError(http.StatusBadRequest, "invalid", "Invalid value for: endTime")
		}
		to = t
	}
	var all []any
	for _, a := range slices.Backward(s.activities) {
		if a.at.Before(from) || !a.at.Before(to) {
			continue
		}
		var parameters []any
		for i := 0; i+1 < len(a.params); i += 2 {
			parameters = append(parameters, map[string]any{"name": a.params[i], "value": a.params[i+1]})
		}
		all = append(all, map[string]any{
			"kind": "admin#reports#activity",
			"id": map[string]any{"time": a.at.Format(time.RFC3339Nano), "uniqueQualifier": strconv.FormatInt(a.qualifier, 10),
				"applicationName": "admin", "customerId": customerID},
			"actor":  map[string]any{"email": s.opts.Admin, "callerType": "USER"},
			"events": []any{map[string]any{"type": a.kind, "name": a.name, "parameters": parameters}},
		})
	}
	items, next := s.page(all, get("pageToken"), get("maxResults"))
	return http.StatusOK, map[string]any{"kind": "admin#reports#activities", "items": items, "nextPageToken": next}
}
