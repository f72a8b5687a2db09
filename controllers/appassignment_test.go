package controllers

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/engine"
)

// TestAnAssignmentShowsItsFirstFailuresByNameWhateverTheOrderCounted: a Role's members
// are counted in no order, and the failures an assignment shows are the first by name.
func TestAnAssignmentShowsItsFirstFailuresByNameWhateverTheOrderCounted(t *testing.T) {
	var users, want []string
	for i := range 3 * maxFailures {
		users = append(users, fmt.Sprintf("u%03d", i))
	}
	want = slices.Clone(users[:maxFailures])
	for range 5 {
		rand.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		var first []identityv1alpha1.AssignmentFailure
		for _, u := range users {
			first = firstFailures(first, u, engine.AccountStatus{Message: "refused " + u, LastSyncTime: time.Now()})
		}
		var got []string
		for _, f := range first {
			if f.Message != "refused "+f.User {
				t.Fatalf("%s shows %q", f.User, f.Message)
			}
			got = append(got, f.User)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("failures shown: %v, want %v", got, want)
		}
	}
}
