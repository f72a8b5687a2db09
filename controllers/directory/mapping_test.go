package directory

import (
	"strings"
	"testing"

	"github.com/rosterhq/roster/connectors/mapping"
)

// TestDefaultMappingsCompile: every source's defaults compile and map a typical record.
func TestDefaultMappingsCompile(t *testing.T) {
	records := map[string]map[string]any{
		"ldap": {"id": "u1", "userName": "ada", "givenName": "Ada", "sn": "Lovelace", "cn": "Ada Lovelace",
			"all": map[string]any{"mail": []any{"ada@example.com"}}, "departmentNumber": "eng", "groups": []any{"eng"}, "disabled": false},
		"scim": {"id": "u1", "userName": "ada", "name": map[string]any{"givenName": "Ada"}, "active": true, "groups": []any{}, "disabled": false,
			enterpriseUser: map[string]any{"department": "eng", "manager": map[string]any{"value": "m1"}}},
		"hris": {"id": "E1", "email": "ada@example.com", "firstName": "Ada", "department": "eng", "hireDate": "2026-01-05", "groups": []any{}, "disabled": false},
	}
	env, err := mapping.NewEnv("record")
	if err != nil {
		t.Fatal(err)
	}
	for source, record := range records {
		m, err := env.CompileMappings(DefaultMapping(source), nil)
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		values, err := m.Apply(map[string]any{"record": record})
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		if values["department"] != "eng" || values["name.givenName"] != "Ada" || values["state"] != "Active" {
			t.Errorf("%s mapped %v", source, values)
		}
	}
}

func TestObjectNamesAreStableValidAndDistinct(t *testing.T) {
	cases := map[string]string{
		"7c8a4f3e-1b2d-4c5e-9f0a-123456789abc": "corp-7c8a4f3e-1b2d-4c5e-9f0a-123456789abc",
		"e1001":                                "corp-e1001",
		"E1001":                                "corp-e1001-69050a4187",
	}
	for id, want := range cases {
		if got := objectName("corp", id); got != want {
			t.Errorf("objectName(%q) = %q, want %q", id, got, want)
		}
	}
	if got := objectName("corp", "CN=Ada Lovelace,OU=People"); !strings.HasPrefix(got, "corp-cn-ada-lovelace-ou-people-") {
		t.Errorf("a DN keeps what it can, got %q", got)
	}
	if got := objectName("corp", "@@@"); len(got) != len("corp-")+10 {
		t.Errorf("an id with nothing usable should hash, got %q", got)
	}
	seen := map[string]string{}
	for _, id := range []string{"E-10/ÄB", "E-10/ÖB", "e-10-b", "E-10-B", "e-10-b-", strings.Repeat("x", 300), strings.Repeat("x", 301)} {
		name := objectName("people", id)
		if other, taken := seen[name]; taken {
			t.Errorf("%q and %q both become %q", other, id, name)
		}
		seen[name] = id
		if len(name) > 253 || nameChars.MatchString(name) || strings.Trim(name, "-.") != name {
			t.Errorf("%q is not a valid object name", name)
		}
	}
}
