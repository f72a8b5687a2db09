package slapd

import (
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
)

func TestStartsAndServes(t *testing.T) {
	s := Start(t)
	s.AddGroup(t, "eng", s.AddPerson(t, "ada", "Ada", "Lovelace", "eng"))
	conn, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Search(goldap.NewSearchRequest(BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, "(uid=ada)", []string{"+"}, nil))
	if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("entryUUID") == "" {
		t.Fatalf("search = %v, %v", res, err)
	}
}
