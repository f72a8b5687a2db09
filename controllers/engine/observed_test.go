package engine

import (
	"reflect"
	"testing"

	"github.com/go-logr/logr"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/memory"
)

func TestAnAccountIsKeptPackedAndUnpackedWhole(t *testing.T) {
	e := New(testConfig(t, memory.NewApp()), &fakeSubjects{users: map[string]Subject{}}, nopNotifier{}, &recordedEvents{}, logr.Discard())
	attrs := map[string]any{
		"userName": "ada@example.com", "externalId": "E1", "name.givenName": "Ada",
		"emails": []any{map[string]any{"value": "ada@work.example", "type": "work"}, map[string]any{"value": "ada@example.com", "primary": true}},
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "eng",
	}
	e.app.put("42", pack(&connectors.Account{ID: "42", Active: true, Version: `W/"3"`, Attributes: attrs}, e.cfg.MatchBy))

	kept := e.app.accounts["42"]
	if kept.Attributes != nil || kept.userName != "ada@example.com" {
		t.Fatalf("kept %v and userName %q, want no attributes and the userName aside", kept.Attributes, kept.userName)
	}
	if e.app.byKey[keyIndex(connectors.KeyUserName, "ADA@example.com")] != "42" {
		t.Fatal("the kept account is not found by its userName, ignoring letter case")
	}
	full := kept.unpack()
	if !reflect.DeepEqual(full.Attributes, attrs) || full.ID != "42" || !full.Active || full.Version != `W/"3"` {
		t.Fatalf("unpacked %+v, want every attribute back", full)
	}
	if connectors.Differences(attrs, full.Attributes) != nil {
		t.Fatal("an unpacked account differs from what the app showed")
	}

	e.cfg.MatchBy = connectors.KeyEmail
	e.app.rekey(e.cfg.MatchBy)
	if e.app.byKey[keyIndex(connectors.KeyEmail, "Ada@Example.com")] != "42" || e.app.byKey[keyIndex(connectors.KeyExternalID, "e1")] != "42" || len(e.app.byKey) != 2 {
		t.Fatalf("after the matching key changed to email, the index is %v; want the email and the externalId", e.app.byKey)
	}

	e.app.put("42", nil)
	if len(e.app.accounts)+len(e.app.byKey) != 0 {
		t.Fatalf("a deleted account leaves %d accounts and %d index entries behind", len(e.app.accounts), len(e.app.byKey))
	}
}
