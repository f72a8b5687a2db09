package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/rosterhq/roster/connectors/mapping"
	"github.com/rosterhq/roster/connectors/memory"
)

// groupEngine is an engine that is not running, with a clock the test sets, for the
// member-change batching alone.
func groupEngine(t *testing.T, batch int) (*Engine, *time.Time) {
	t.Helper()
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	e := New(testConfig(t, memory.NewApp()), &fakeSubjects{users: map[string]Subject{}}, nopNotifier{}, &recordedEvents{}, logr.Discard())
	e.now = func() time.Time { return now }
	e.caps.MemberBatch = batch
	return e, &now
}

func joinGroup(e *Engine, group string, from, to int) {
	for i := from; i < to; i++ {
		e.queueGroupsLocked(fmt.Sprintf("user-%d", i), fmt.Sprintf("id-%d", i), []string{group}, nil)
	}
}

func sentSizes(changes []groupChange) []int {
	var out []int
	for _, c := range changes {
		out = append(out, c.size())
	}
	return out
}

func TestGroupMembersGoOutAFullRequestAtATimeWhileUsersAreStillComing(t *testing.T) {
	e, now := groupEngine(t, 3)
	e.dirty["user-99"] = *now // the engine still has a User to plan
	joinGroup(e, "eng", 0, 7)

	due, next := e.dueGroupChangesLocked(*now)
	if fmt.Sprint(sentSizes(due)) != "[6]" {
		t.Fatalf("sent %v at once, want two full requests of 3: [6]", sentSizes(due))
	}
	if want := now.Add(groupQuiet); !next.Equal(want) {
		t.Fatalf("next look at %s, want %s (a busy engine looks again after groupQuiet)", next, want)
	}
	e.settleGroupChangeLocked("eng", due[0])

	*now = now.Add(2 * groupQuiet)
	if due, _ := e.dueGroupChangesLocked(*now); len(due) != 0 {
		t.Fatalf("sent %v while Users are still coming, want the partial request to wait", sentSizes(due))
	}
	*now = now.Add(groupMaxWait)
	if due, _ := e.dueGroupChangesLocked(*now); fmt.Sprint(sentSizes(due)) != "[1]" {
		t.Fatalf("sent %v once the oldest change waited groupMaxWait, want [1]", sentSizes(due))
	}
}

func TestALoneJoinerIsInTheGroupOnceChangesPause(t *testing.T) {
	e, now := groupEngine(t, 100)
	joinGroup(e, "eng", 0, 1)

	if due, next := e.dueGroupChangesLocked(*now); len(due) != 0 || !next.Equal(now.Add(groupQuiet)) {
		t.Fatalf("sent %v, next %s; want nothing before the group is quiet for groupQuiet", sentSizes(due), next)
	}
	*now = now.Add(groupQuiet)
	due, _ := e.dueGroupChangesLocked(*now)
	if fmt.Sprint(sentSizes(due)) != "[1]" {
		t.Fatalf("sent %v once the idle engine's group was quiet, want [1]", sentSizes(due))
	}
}

func TestAJoinerIsCreatedWithTheManagerCreatedInTheSameRun(t *testing.T) {
	app := memory.NewApp()
	subjects := &fakeSubjects{users: map[string]Subject{}}
	subjects.set("boss", func(*Subject) {})
	// Sorted by name, the report is planned before its manager.
	subjects.set("ada", func(s *Subject) { s.Manager, s.ManagerUserName = "boss", "boss@example.com" })
	startEngine(t, testConfig(t, app), subjects)

	eventually(t, "both have accounts", func() bool { return activeAccounts(app) == 2 })
	requests := app.Requests()
	if requests[memory.OpUpdate] != 0 || requests[memory.OpCreate] != 2 {
		t.Fatalf("requests = %v, want two creates and no update", requests)
	}
	for _, a := range app.Accounts() {
		if a.UserName() == "ada@example.com" && a.Attributes[mapping.AttrManagerValue] == nil {
			t.Fatalf("ada's account has no manager: %v", a.Attributes)
		}
	}
}
