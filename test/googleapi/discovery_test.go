package googleapi

import (
	"net/url"
	"strings"
	"testing"
)

// The checks the fake account relies on find what departs from Google's description.
func TestTheDiscoveryDocumentCatchesWhatGoogleWouldRefuse(t *testing.T) {
	d, err := DirectoryDiscovery()
	if err != nil {
		t.Fatal(err)
	}
	insert, params, ok := d.Find("POST", "admin/directory/v1/users")
	if !ok || insert.ID != "directory.users.insert" || len(params) != 0 {
		t.Fatalf("Find(POST users) = %+v, %v", insert, ok)
	}
	member, params, ok := d.Find("DELETE", "admin/directory/v1/groups/eng%40example.com/members/42")
	if !ok || member.ID != "directory.members.delete" || params["groupKey"] != "eng@example.com" || params["memberKey"] != "42" {
		t.Fatalf("Find(DELETE member) = %v %v %v", member, params, ok)
	}
	if _, _, ok := d.Find("POST", "admin/directory/v1/users/42/suspend"); ok {
		t.Fatal("a path the API does not have was found")
	}
	good := `{"primaryEmail":"ada@example.com","name":{"givenName":"Ada","familyName":"Lovelace"},"password":"secret-secret","suspended":false,"organizations":[{"title":"x"}]}`
	if p := d.CheckRequest(insert, []byte(good)); len(p) != 0 {
		t.Fatalf("a valid insert: %v", p)
	}
	for body, want := range map[string]string{
		`{"primaryEmail":"ada@example.com","name":{"givenName":"Ada","familyName":"L"},"password":"secret-secret","lastLoginTime":"x"}`: "lastLoginTime is output only",
		`{"primaryEmail":"ada@example.com","name":{"givenName":"Ada","familyName":"L"},"password":"secret-secret","nickname":"x"}`:      "nickname is not a field",
		`{"primaryEmail":"ada@example.com","name":{"givenName":"Ada","familyName":"L"}}`:                                                "password is required",
		`{"primaryEmail":"ada@example.com","name":{"givenName":1,"familyName":"L"},"password":"secret-secret"}`:                         "name.givenName: is float64, not a string",
		`{"primaryEmail":"ada@example.com","name":{"givenName":"A","familyName":"L"},"password":"secret-secret","suspended":"yes"}`:     "suspended: is string, not a boolean",
	} {
		problems := strings.Join(d.CheckRequest(insert, []byte(body)), "; ")
		if !strings.Contains(problems, want) {
			t.Errorf("%s: problems %q, want %q", body, problems, want)
		}
	}
	list, _, _ := d.Find("GET", "admin/directory/v1/users")
	for query, want := range map[string]string{
		"maxResults=501":        "above the maximum 500",
		"projection=everything": "is not one of",
		"limit=10":              `"limit" is not declared`,
		"prettyPrint=maybe":     "is not a boolean",
	} {
		q, _ := url.ParseQuery(query)
		if problems := strings.Join(d.CheckQuery(list, q), "; "); !strings.Contains(problems, want) {
			t.Errorf("%s: problems %q, want %q", query, problems, want)
		}
	}
	reports, err := ReportsDiscovery()
	if err != nil {
		t.Fatal(err)
	}
	activities, params, ok := reports.Find("GET", "admin/reports/v1/activity/users/all/applications/admin")
	if !ok || activities.ID != "reports.activities.list" || params["applicationName"] != "admin" {
		t.Fatalf("Find(GET activities) = %v %v %v", activities, params, ok)
	}
	for query, want := range map[string]string{"startTime=yesterday": "does not match", "maxResults=1001": "above the maximum 1000"} {
		q, _ := url.ParseQuery(query)
		if problems := strings.Join(reports.CheckQuery(activities, q), "; "); !strings.Contains(problems, want) {
			t.Errorf("%s: problems %q, want %q", query, problems, want)
		}
	}
	if p := reports.CheckQuery(activities, url.Values{"startTime": {"2026-12-03T06:00:00.123456789Z"}}); len(p) != 0 {
		t.Errorf("an RFC 3339 startTime: %v", p)
	}
	if p := d.CheckResponse(list, []byte(`{"kind":"admin#directory#users","users":[{"id":"1","primaryEmail":"a@example.com","suspended":"no"}]}`)); len(p) != 1 {
		t.Errorf("an answer with a string for a boolean: %v", p)
	}
}
