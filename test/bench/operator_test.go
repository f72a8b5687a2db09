package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rosterhq/roster/controllers"
	"github.com/rosterhq/roster/test/testenv"
)

// A replica whose manager stops on its own (its leader lease taken) is started again,
// as a Deployment starts its pod again, and the restart is counted; once no replica runs,
// a wait ends with an error instead of running to its timeout.
func TestAReplicaThatStopsOnItsOwnIsStartedAgain(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := t.Context()
	b := &bench{opts: Options{Replicas: 2, KillReplica: true, Log: t.Output()}.Defaults(), env: env}
	if err := b.startOperator(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.op.stop)

	leader := b.waitForLeader(t)
	deposed, _ := leader.current()
	key := client.ObjectKey{Namespace: "default", Name: controllers.LeaseBase}
	hour := int32(3600)
	setHolder(t, env.Client, key, "someone-else", &hour)
	testenv.WaitFor(t, time.Minute, "the leader to stop and start again", func() (bool, string) {
		return b.op.restarts() == 1, fmt.Sprintf("%d restarts", b.op.restarts())
	})
	if alive := b.op.alive(); alive != 2 {
		t.Errorf("%d replicas run after the restart, want 2", alive)
	}
	testenv.WaitFor(t, time.Minute, "the bench to read from the restarted replica's new caches", func() (bool, string) {
		mgr, _ := leader.current()
		return mgr != deposed, "still the stopped manager's"
	})
	setHolder(t, env.Client, key, "", nil) // the lease given up: a replica leads again
	b.waitForLeader(t)

	b.op.stop()
	err = b.waitFor(ctx, time.Hour, time.Millisecond, "something that never happens", func() (bool, string, error) { return false, "not yet", nil })
	if err == nil || !strings.Contains(err.Error(), "no replica of the operator runs") {
		t.Errorf("a wait with no replica running ended with %v", err)
	}
}

// waitForLeader returns the replica whose current manager leads.
func (b *bench) waitForLeader(t *testing.T) *replica {
	t.Helper()
	var leader *replica
	testenv.WaitFor(t, time.Minute, "a replica to lead", func() (bool, string) {
		for _, r := range b.op.replicas {
			mgr, _ := r.current()
			select {
			case <-mgr.Elected():
				leader = r
				return true, ""
			default:
			}
		}
		return false, "no replica leads"
	})
	return leader
}

func setHolder(t *testing.T, c client.Client, key client.ObjectKey, holder string, seconds *int32) {
	t.Helper()
	lease := &coordinationv1.Lease{}
	if err := c.Get(context.Background(), key, lease); err != nil {
		t.Fatal(err)
	}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = nil, seconds, nil
	if holder != "" {
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity, lease.Spec.RenewTime = &holder, &now
	}
	if err := c.Update(context.Background(), lease); err != nil {
		t.Fatal(err)
	}
}
