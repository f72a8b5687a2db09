package scim

import (
	"encoding/json"
	"reflect"
	"testing"
)

func ops(t *testing.T, doc string) []PatchOperation {
	t.Helper()
	var p PatchRequest
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	return p.Operations
}

func TestApplyPatchAsIdentityProvidersSendIt(t *testing.T) {
	cases := []struct {
		reason string
		start  string
		patch  string
		check  func(Resource) bool
	}{
		{
			reason: "Okta deactivates with a no-path replace",
			start:  ada,
			patch:  `{"Operations":[{"op":"replace","value":{"active":false}}]}`,
			check:  func(r Resource) bool { return !r.Active() },
		},
		{
			reason: `Entra ID capitalises op names and sends "False" as a string`,
			start:  ada,
			patch:  `{"Operations":[{"op":"Replace","path":"active","value":"False"}]}`,
			check:  func(r Resource) bool { v, _ := r["active"].(bool); return !v && r["active"] == false },
		},
		{
			reason: "Entra ID (aadOptscim062020) sends a no-path replace with dotted keys",
			start:  ada,
			patch:  `{"Operations":[{"op":"Replace","value":{"name.givenName":"Augusta","displayName":"Augusta Ada"}}]}`,
			check: func(r Resource) bool {
				v, _ := r.Get(Path{Attr: "name", Sub: "givenName"})
				fam, _ := r.Get(Path{Attr: "name", Sub: "familyName"})
				return v == "Augusta" && fam == "Lovelace" && r["displayName"] == "Augusta Ada"
			},
		},
		{
			reason: "Entra ID replaces the work email through a filtered path",
			start:  ada,
			patch:  `{"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"augusta@example.com"}]}`,
			check: func(r Resource) bool {
				f, _ := ParseFilter(`emails[type eq "work"].value eq "augusta@example.com"`)
				g, _ := ParseFilter(`emails[type eq "home"].value eq "ada@home.example"`)
				return f.Match(r) && g.Match(r)
			},
		},
		{
			reason: "an enterprise attribute by its full path",
			start:  ada,
			patch:  `{"Operations":[{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Ops"}]}`,
			check: func(r Resource) bool {
				v, _ := r.Get(Path{Schema: SchemaEnterpriseUser, Attr: "department"})
				return v == "Ops"
			},
		},
		{
			reason: "a no-path value holding the extension as an object",
			start:  ada,
			patch:  `{"Operations":[{"op":"add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"costCenter":"42"}}}]}`,
			check: func(r Resource) bool {
				cc, _ := r.Get(Path{Schema: SchemaEnterpriseUser, Attr: "costCenter"})
				dep, _ := r.Get(Path{Schema: SchemaEnterpriseUser, Attr: "department"})
				return cc == "42" && dep == "R&D"
			},
		},
		{
			reason: "removing an attribute",
			start:  ada,
			patch:  `{"Operations":[{"op":"remove","path":"title"}]}`,
			check:  func(r Resource) bool { _, ok := r["title"]; return !ok },
		},
		{
			reason: "Okta removes a group member by filter and adds another",
			start:  `{"id":"g1","displayName":"eng","members":[{"value":"u1"},{"value":"u2"}]}`,
			patch:  `{"Operations":[{"op":"remove","path":"members[value eq \"u1\"]"},{"op":"add","path":"members","value":[{"value":"u3"}]}]}`,
			check:  func(r Resource) bool { return reflect.DeepEqual(memberIDs(r), []string{"u2", "u3"}) },
		},
		{
			reason: "Entra ID removes members as a value array",
			start:  `{"id":"g1","displayName":"eng","members":[{"value":"u1"},{"value":"u2"},{"value":"u3"}]}`,
			patch:  `{"Operations":[{"op":"Remove","path":"members","value":[{"value":"u1"},{"value":"u3"}]}]}`,
			check:  func(r Resource) bool { return reflect.DeepEqual(memberIDs(r), []string{"u2"}) },
		},
		{
			reason: "adding a member twice keeps one",
			start:  `{"id":"g1","displayName":"eng","members":[{"value":"u1"}]}`,
			patch:  `{"Operations":[{"op":"Add","path":"members","value":[{"value":"u1"},{"value":"u2"}]}]}`,
			check:  func(r Resource) bool { return reflect.DeepEqual(memberIDs(r), []string{"u1", "u2"}) },
		},
		{
			reason: "a batch naming a member twice adds it once",
			start:  `{"id":"g1","displayName":"eng","members":[{"value":"u1"}]}`,
			patch:  `{"Operations":[{"op":"add","path":"members","value":[{"value":"u2"},{"value":"u2"},{"value":"u3"}]}]}`,
			check:  func(r Resource) bool { return reflect.DeepEqual(memberIDs(r), []string{"u1", "u2", "u3"}) },
		},
		{
			reason: "Okta renames a group with a no-path replace that echoes the id",
			start:  `{"id":"g1","displayName":"eng","members":[{"value":"u1"}]}`,
			patch:  `{"Operations":[{"op":"replace","value":{"id":"g1","displayName":"engineering"}}]}`,
			check: func(r Resource) bool {
				return r["id"] == "g1" && r["displayName"] == "engineering" && len(memberIDs(r)) == 1
			},
		},
		{
			reason: "removing a member that is not there is fine",
			start:  `{"id":"g1","displayName":"eng","members":[{"value":"u1"}]}`,
			patch:  `{"Operations":[{"op":"remove","path":"members[value eq \"u9\"]"}]}`,
			check:  func(r Resource) bool { return reflect.DeepEqual(memberIDs(r), []string{"u1"}) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			r := resource(t, tc.start)
			if err := ApplyPatch(r, ops(t, tc.patch)); err != nil {
				t.Fatalf("ApplyPatch: %v", err)
			}
			if !tc.check(r) {
				b, _ := json.Marshal(r)
				t.Fatalf("after the patch: %s", b)
			}
		})
	}
}

func TestApplyPatchRefusesWhatItCannotDo(t *testing.T) {
	cases := []struct{ reason, patch, scimType string }{
		{"an unknown op", `{"Operations":[{"op":"move","path":"title"}]}`, ErrInvalidSyntax},
		{"remove without a path", `{"Operations":[{"op":"remove"}]}`, ErrNoTarget},
		{"a no-path op with a scalar value", `{"Operations":[{"op":"replace","value":"x"}]}`, ErrInvalidValue},
		{"a path that is not one", `{"Operations":[{"op":"replace","path":"emails[","value":"x"}]}`, ErrInvalidPath},
		{"changing id", `{"Operations":[{"op":"replace","path":"id","value":"x"}]}`, ErrMutability},
		{"replacing an element no filter matches", `{"Operations":[{"op":"replace","path":"emails[type eq \"other\"]","value":{"value":"x"}}]}`, ErrNoTarget},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			err := ApplyPatch(resource(t, ada), ops(t, tc.patch))
			pe, ok := asPatchError(err)
			if !ok || pe.ScimType != tc.scimType {
				t.Fatalf("got %v, want a %s error", err, tc.scimType)
			}
		})
	}
}

// TestAPatchThatNamesAnAttributeTwiceHasOneResult: an object that names one attribute
// twice, in two letter cases or whole and by a sub-attribute, and a resource that holds
// two keys differing only in case, are hostile or careless input; the patch must still
// give one result, not one per walk of a map.
func TestAPatchThatNamesAnAttributeTwiceHasOneResult(t *testing.T) {
	start := `{"userName":"ada","Title":"a","TITLE":"b","name":{"givenName":"Ada"}}`
	patch := `{"Operations":[{"op":"replace","value":{"title":"x","nAme":"y","name.givenName":"g","Name":{"familyName":"f"}}},` +
		`{"op":"add","path":"tItle","value":"z"}]}`
	var first []byte
	for range 64 {
		r := resource(t, start)
		if err := ApplyPatch(r, ops(t, patch)); err != nil {
			t.Fatalf("ApplyPatch: %v", err)
		}
		got, _ := json.Marshal(r)
		if first == nil {
			first = got
		} else if string(got) != string(first) {
			t.Fatalf("the same patch gave %s and %s", first, got)
		}
	}
	if title, _ := resource(t, string(first)).Get(Path{Attr: "title"}); title != "z" {
		t.Fatalf("after the patch %s, title is %v, want z", first, title)
	}
}

func memberIDs(r Resource) []string {
	var ids []string
	members, _ := r["members"].([]any)
	for _, m := range members {
		ids = append(ids, m.(map[string]any)["value"].(string))
	}
	return ids
}

func FuzzApplyPatch(f *testing.F) {
	f.Add(ada, `{"Operations":[{"op":"Replace","value":{"active":"False","name.givenName":"x"}}]}`)
	f.Add(`{"members":[{"value":"u1"}]}`, `{"Operations":[{"op":"remove","path":"members[value eq \"u1\"]"}]}`)
	f.Add(ada, `{"Operations":[{"op":"add","path":"emails[type eq \"work\"].value","value":"a@b"}]}`)
	f.Add(`{"members":[{"value":"u1"},{"value":"U2"},"u3"]}`, `{"Operations":[{"op":"remove","path":"members[value eq \"u2\"]"},{"op":"remove","path":"members[value eq \"u1\"]"},{"op":"remove","path":"members[value eq \"u3\"]"}]}`)
	f.Add(`{"urn:a:b":1}`, `{"Operations":[{"op":"add","path":"urn:a:b:c.d","value":1}]}`)
	f.Add(`{"A":"","Ab":{},"aB":[]}`, `{"Operations":[{"op":"add","value":{"A":"","a.A2A0":"","ab":"x"}}]}`)
	f.Fuzz(func(t *testing.T, start, doc string) {
		var p PatchRequest
		var r Resource
		if json.Unmarshal([]byte(doc), &p) != nil || json.Unmarshal([]byte(start), &r) != nil || r == nil {
			return
		}
		var oneByOne Resource
		_ = json.Unmarshal([]byte(start), &oneByOne)
		err := ApplyPatch(r, p.Operations)
		var errOneByOne error
		for _, op := range p.Operations {
			if errOneByOne = applyOne(oneByOne, op); errOneByOne != nil {
				break
			}
		}
		if (err == nil) != (errOneByOne == nil) || err == nil && !reflect.DeepEqual(r, oneByOne) {
			t.Fatalf("the patch gave %v (%v), its operations one by one %v (%v)", r, err, oneByOne, errOneByOne)
		}
	})
}

// TestRemovingMembersByValueInOnePass: a run of `remove members[value eq "…"]`
// operations, as Roster's client and Entra ID send them, is applied in one pass over the
// group, with the result of applying each on its own: letter case ignored, absent
// members skipped, order with other operations kept.
func TestRemovingMembersByValueInOnePass(t *testing.T) {
	group := `{"members":[{"value":"u1"},{"value":"u2"},{"value":"U3"},{"value":"u4"}],"emails":[{"value":"u1"}]}`
	cases := []struct {
		reason, patch string
		members       []string
	}{
		{"some removed, one absent, one in another case",
			`{"Operations":[{"op":"remove","path":"members[value eq \"u1\"]"},{"op":"Remove","path":"members[value eq \"x\"]"},{"op":"remove","path":"members[value eq \"u3\"]"}]}`,
			[]string{"u2", "u4"}},
		{"every member removed",
			`{"Operations":[{"op":"remove","path":"members[value eq \"u1\"]"},{"op":"remove","path":"members[value eq \"u2\"]"},{"op":"remove","path":"members[value eq \"u3\"]"},{"op":"remove","path":"urn:ietf:params:scim:schemas:core:2.0:Group:members[value eq \"u4\"]"}]}`,
			nil},
		{"an add between removes keeps its place",
			`{"Operations":[{"op":"remove","path":"members[value eq \"u1\"]"},{"op":"add","path":"members","value":[{"value":"u1"}]},{"op":"remove","path":"members[value eq \"u2\"]"}]}`,
			[]string{"U3", "u4", "u1"}},
		{"a remove on another attribute ends the run",
			`{"Operations":[{"op":"remove","path":"members[value eq \"u2\"]"},{"op":"remove","path":"emails[value eq \"u1\"]"},{"op":"remove","path":"members[value eq \"u4\"]"}]}`,
			[]string{"u1", "U3"}},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			r := resource(t, group)
			if err := ApplyPatch(r, ops(t, tc.patch)); err != nil {
				t.Fatal(err)
			}
			if got := memberIDs(r); !reflect.DeepEqual(got, tc.members) {
				t.Fatalf("members %v, want %v", got, tc.members)
			}
			if _, present := r["members"]; present == (tc.members == nil) {
				t.Fatalf("members present %v with %v left", present, tc.members)
			}
			oneByOne := resource(t, group)
			for _, op := range ops(t, tc.patch) {
				if err := applyOne(oneByOne, op); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(r, oneByOne) {
				t.Fatalf("in one pass %v, one by one %v", r, oneByOne)
			}
		})
	}
}
