package directory

import (
	"slices"
	"testing"
)

// duplicates lists the records the report says share a userName.
func duplicates(n names) []string {
	var out []string
	problems, _ := n.report()
	for _, p := range problems {
		if p.Reason == ProblemDuplicateUserName {
			out = append(out, p.Record)
		}
	}
	return out
}

func TestDuplicateUserNamesFollowEachRecordsChanges(t *testing.T) {
	n := newNames()
	steps := []struct {
		id, userName string
		want         []string
	}{
		{"e1", "Ada@corp.example", nil},
		{"e2", "ada@CORP.example", []string{"e1", "e2"}},
		{"e3", "ADA@corp.example", []string{"e1", "e2", "e3"}},
		{"e2", "grace@corp.example", []string{"e1", "e3"}},
		{"e1", "", nil}, // e1 left the source: e3 holds the name alone
		{"e4", "grace@corp.example", []string{"e2", "e4"}},
		{"e3", "ada@corp.example", []string{"e2", "e4"}}, // the same name again
		{"e4", "ada@corp.example", []string{"e3", "e4"}},
		{"e3", "", nil},
		{"e5", "ada@corp.example", []string{"e4", "e5"}}, // e4 still holds it
	}
	for i, s := range steps {
		n.setUserName(s.id, s.userName)
		if got := duplicates(n); !slices.Equal(got, s.want) {
			t.Fatalf("step %d (%s → %q): duplicates %v, want %v", i+1, s.id, s.userName, got, s.want)
		}
	}
	if len(n.shared) != 1 || len(n.holder) != 1 || len(n.userNames) != 3 {
		t.Errorf("kept %d shared names, %d held alone and %d records' names; want 1, 1 and 3", len(n.shared), len(n.holder), len(n.userNames))
	}
}
