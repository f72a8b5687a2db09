package main

import (
	"os"
	"strings"
	"testing"
)

// TestReferenceIsCurrent fails when docs/reference.md does not match the CRDs.
func TestReferenceIsCurrent(t *testing.T) {
	want, err := Reference("../../config/crd/bases")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../docs/reference.md")
	if err != nil || string(got) != want {
		t.Fatal("docs/reference.md is stale: run make docs")
	}
	for _, field := range []string{"`spec.userName` (required)", "`spec.members.rule`", "`spec.scim.auth.tokenURL`", "`status.accounts[].externalID`"} {
		if !strings.Contains(want, field) {
			t.Errorf("the reference lacks %s", field)
		}
	}
}
