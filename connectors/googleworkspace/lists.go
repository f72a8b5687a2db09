package googleworkspace

// Google holds a user's title and department in a list of organizations, and external
// ids in a list of typed ids; Roster writes one entry of each and keeps the others.

// primaryOrganization is the organization marked primary, else the first.
func primaryOrganization(raw any) map[string]any {
	orgs, _ := raw.([]any)
	if i := primaryIndex(orgs); i >= 0 {
		return orgs[i].(map[string]any)
	}
	return nil
}

func primaryIndex(orgs []any) int {
	first := -1
	for i, o := range orgs {
		m, _ := o.(map[string]any)
		if m == nil {
			continue
		}
		if primary, _ := m["primary"].(bool); primary {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

// organizations is current's list with the primary organization's title and
// department set from values (an empty value removes the field); nil when the list
// stays empty.
func organizations(current any, values map[string]any) any {
	orgs, _ := current.([]any)
	p := primaryIndex(orgs)
	entry := map[string]any{}
	if p >= 0 {
		for k, v := range orgs[p].(map[string]any) {
			entry[k] = v
		}
	}
	for field, path := range map[string]string{"title": attrTitle, "department": attrDepartment} {
		if v, ok := values[path]; ok {
			if s, _ := v.(string); s != "" {
				entry[field] = s
			} else {
				delete(entry, field)
			}
		}
	}
	out := []any{}
	if _, title := entry["title"]; title || entry["department"] != nil || p >= 0 {
		entry["primary"] = true
		out = append(out, entry)
	}
	for i, o := range orgs {
		if m, _ := o.(map[string]any); m != nil && i != p {
			out = append(out, m)
		}
	}
	if len(out) == 0 && len(orgs) == 0 {
		return nil
	}
	return out
}

// organizationExternalID is the external id of type "organization", which Roster
// writes.
func organizationExternalID(ids []any) string {
	for _, e := range ids {
		if m, _ := e.(map[string]any); m != nil && m["type"] == "organization" {
			v, _ := m["value"].(string)
			return v
		}
	}
	return ""
}

// externalIDs is current's list with the "organization" id set to id ("" removes it).
func externalIDs(current any, id string) any {
	ids, _ := current.([]any)
	out := []any{}
	for _, e := range ids {
		if m, _ := e.(map[string]any); m != nil && m["type"] != "organization" {
			out = append(out, m)
		}
	}
	if id != "" {
		out = append(out, map[string]any{"type": "organization", "value": id})
	}
	if len(out) == 0 && len(ids) == 0 {
		return nil
	}
	return out
}
