package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rosterhq/roster/controllers"
)

// TestAutomaticShardsNeverRunTwice: three replicas share six automatic shards by leases
// in a real API server, round after round. No shard is ever run by two replicas at once:
// not while they spread, not when one is cut off from the API server (it stops its
// shards before the others may take them), not when one stops and gives its shards up.
// Every shard is run by someone within a lease duration of each change.
func TestAutomaticShardsNeverRunTwice(t *testing.T) {
	const shards, lease, renew = 6, 2 * time.Second, 1500 * time.Millisecond
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "leases-"}}
	create(t, ns)
	replicas := make([]*controllers.ShardReplica, 3)
	for i := range replicas {
		replicas[i] = controllers.NewShardReplica(env.Client, ns.Name, shards, lease, renew)
	}
	live, cut := context.Background(), func() context.Context { ctx, cancel := context.WithCancel(context.Background()); cancel(); return ctx }()
	contexts := []context.Context{live, live, live}
	// rounds runs every replica's round, with its context, for d, checking after each
	// that no shard is run twice; it returns who runs what at the end.
	rounds := func(d time.Duration) map[string]int {
		t.Helper()
		var running map[string]int
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(renew / 10) {
			running = map[string]int{}
			for i, r := range replicas {
				if r == nil {
					continue
				}
				r.Round(contexts[i])
				for _, s := range r.Running() {
					running[s]++
				}
			}
			for s, n := range running {
				if n > 1 {
					t.Fatalf("shard %s is run by %d replicas at once", s, n)
				}
			}
		}
		return running
	}
	share := func(want ...int) {
		t.Helper()
		running := rounds(2 * lease)
		if len(running) != shards {
			t.Fatalf("%d of %d shards run: %v", len(running), shards, running)
		}
		for i, r := range replicas {
			if r != nil && len(r.Running()) != want[i] {
				t.Fatalf("replica %d runs %v; every replica's shards: %v", i, r.Running(), runningOf(replicas))
			}
		}
	}

	share(2, 2, 2)
	contexts[1] = cut // cut off: it cannot renew, and must stop before the others take over
	share(3, 0, 3)
	contexts[1] = live // back: it is given a share again
	share(2, 2, 2)
	replicas[2].Stop() // stops, giving its shards up
	replicas[2] = nil
	share(3, 3, 0)
}

func runningOf(replicas []*controllers.ShardReplica) string {
	out := ""
	for i, r := range replicas {
		if r != nil {
			out += fmt.Sprintf(" %d:%v", i, r.Running())
		}
	}
	return out
}
