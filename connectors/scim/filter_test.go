package scim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func resource(t *testing.T, doc string) Resource {
	t.Helper()
	var r Resource
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

const ada = `{
  "id": "2819c223", "externalId": "E1", "userName": "Ada@Example.com", "active": true,
  "name": {"givenName": "Ada", "familyName": "Lovelace"},
  "title": "Engineer", "meta": {"created": "2026-01-05T09:00:00Z"},
  "emails": [{"value": "ada@example.com", "type": "work", "primary": true}, {"value": "ada@home.example", "type": "home"}],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "m1"}}
}`

func TestFilterMatching(t *testing.T) {
	r := resource(t, ada)
	cases := []struct {
		filter string
		want   bool
	}{
		{`userName eq "ada@example.com"`, true}, // caseExact=false
		{`USERNAME EQ "ADA@EXAMPLE.COM"`, true}, // attribute names and operators ignore case
		{`externalId eq "e1"`, false},           // caseExact=true
		{`externalId eq "E1"`, true},
		{`userName ne "bob"`, true},
		{`userName sw "ada"`, true},
		{`userName ew "example.com"`, true},
		{`userName co "@"`, true},
		{`title pr`, true},
		{`nickName pr`, false},
		{`active eq true`, true},
		{`active eq false`, false},
		{`name.familyName eq "Lovelace"`, true},
		{`emails eq "ada@home.example"`, true},
		{`emails.type eq "home"`, true},
		{`emails[type eq "work" and primary eq true]`, true},
		{`emails[type eq "work"].value eq "ada@example.com"`, true}, // Entra ID's email lookup
		{`emails[type eq "home"].value eq "ada@example.com"`, false},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "R&D"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1"`, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada@example.com"`, true},
		{`meta.created gt "2026-01-01T00:00:00Z"`, true},
		{`title eq "Engineer" and not (active eq false)`, true},
		{`title eq "Manager" or userName sw "ada"`, true},
		{`title eq "Manager" or userName sw "bob" and active eq true`, false},
		{`(title eq "Manager" or userName sw "ada") and active eq true`, true},
		{`nickName eq null`, true},
	}
	for _, tc := range cases {
		f, err := ParseFilter(tc.filter)
		if err != nil {
			t.Errorf("%s: %v", tc.filter, err)
			continue
		}
		if got := f.Match(r); got != tc.want {
			t.Errorf("%s matched %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, bad := range []string{
		``, `userName`, `userName eq`, `userName zz "x"`, `userName eq "unterminated`,
		`(userName eq "x"`, `emails[type eq "work"`, `userName eq "x" and`, `userName eq "x" extra`, `1userName eq "x"`,
	} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("%q parsed, want an error", bad)
		}
	}
}

func TestEqQuotesValues(t *testing.T) {
	f, err := ParseFilter(Eq("userName", `o"brien\x`))
	if err != nil {
		t.Fatal(err)
	}
	if _, v, ok := Equality(f); !ok || v != `o"brien\x` {
		t.Fatalf("round trip gave %q", v)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		`userName eq "a"`, `emails[type eq "work"].value eq "x"`, `not (a pr) or b gt 3`, `a eq null and (b sw "x" or c ne true)`,
	} {
		f.Add(seed)
	}
	r := Resource{"userName": "a", "emails": []any{map[string]any{"value": "x", "type": "work"}}}
	f.Fuzz(func(t *testing.T, s string) {
		if parsed, err := ParseFilter(s); err == nil {
			parsed.Match(r)
		}
	})
}

func TestFilterNestingAndLengthAreBounded(t *testing.T) {
	cases := []struct {
		reason, filter string
		ok             bool
	}{
		{"nesting at the bound parses", strings.Repeat("(", MaxFilterDepth) + `userName eq "a"` + strings.Repeat(")", MaxFilterDepth), true},
		{"one level deeper is refused", strings.Repeat("(", MaxFilterDepth+1) + `userName eq "a"` + strings.Repeat(")", MaxFilterDepth+1), false},
		{"800 KB of parentheses is refused before it is lexed", strings.Repeat("(", 800_000), false},
		{"value paths count as nesting", strings.Repeat("not (", MaxFilterDepth) + `emails[type eq "work"]` + strings.Repeat(")", MaxFilterDepth), false},
		{"a long filter is refused", `userName eq "` + strings.Repeat("a", MaxFilterLength) + `"`, false},
	}
	for _, tc := range cases {
		_, err := ParseFilter(tc.filter)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.reason, err)
		}
	}
}

func TestADeeplyNestedFilterIsAnsweredInvalidFilter(t *testing.T) {
	app := newTestApp(t, ServerOptions{})
	deep := strings.Repeat("(", 2000) + `userName eq "a"` + strings.Repeat(")", 2000)
	req, _ := http.NewRequest(http.MethodGet, app.baseURL()+"/Users?filter="+url.QueryEscape(deep), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"invalidFilter"`) || resp.Header.Get("Content-Type") != MediaType {
		t.Fatalf("a deeply nested filter got %d %s %q, want 400 invalidFilter as SCIM JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
