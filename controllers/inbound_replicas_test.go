package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
)

// standby starts a second replica of the operator that does not lead (another holds
// its lease for the whole test), as a replica beside the leader does: it runs no
// controller and no syncer, and serves inbound SCIM.
func standby(t *testing.T) string {
	t.Helper()
	leaseName := "standby-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	holder, hour := "the-leader", int32(3600)
	now := metav1.NewMicroTime(time.Now())
	create(t, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: leaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &hour, AcquireTime: &now, RenewTime: &now}})
	wait := time.Hour
	second := &controllers.InboundSCIM{Addr: freeAddr(), Log: ctrl.Log.WithName("inbound-scim-standby")}
	runReplica(t, ctrl.Options{LeaderElection: true, LeaderElectionID: leaseName, LeaderElectionNamespace: "default", LeaseDuration: &wait},
		controllers.Options{Registry: controllers.Connectors(memory.NewApps(), second), Inbound: second})
	return second.Addr
}

// runReplica runs a second replica of the operator in the test's process until the test
// ends, with the options given beside those every replica of the suite has.
func runReplica(t *testing.T, opts ctrl.Options, setup controllers.Options) (stop func()) {
	t.Helper()
	twice := true // the suite's replica's controllers have the same names
	opts.Scheme, opts.Metrics, opts.HealthProbeBindAddress = env.Scheme, metricsserver.Options{BindAddress: "0"}, "0"
	opts.Controller = config.Controller{SkipNameValidation: &twice}
	mgr, err := ctrl.NewManager(env.Config, controllers.ManagerOptions(opts))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx)
	if err := controllers.Setup(ctx, mgr, setup); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the second replica stopped: %v", err)
		}
	})
	t.Cleanup(stop)
	return stop
}

// TestEveryReplicaServesInboundSCIM: a replica that does not lead takes pushes as the
// leader does; they reach their Users through the leader, and pushes to the same user
// through both replicas at once all land.
func TestEveryReplicaServesInboundSCIM(t *testing.T) {
	ns := namespace(t)
	leader := scimSync(t, ns)
	other := &idp{t: t, base: "http://" + standby(t) + "/scim/v2/" + ns + "/okta"}
	waitFor(t, "the standby serves", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, other.base+"/Users?count=1", nil)
		req.Header.Set("Authorization", "Bearer "+idpToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error() // not listening yet
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	ada := other.expect(http.MethodPost, "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"ada@example.com",
		"name":{"givenName":"Ada","familyName":"Lovelace"},"emails":[{"value":"ada@example.com","primary":true}],"active":true}`, http.StatusCreated)
	id := ada["id"].(string)
	waitFor(t, "ada's User, written by the leader", func() (bool, string) {
		u, ok := userByUserName(t, ns, "ada@example.com")
		return ok && u.Spec.Name.GivenName == "Ada", fmt.Sprint(ok)
	})
	waitFor(t, "the leader answers what the standby kept", func() (bool, string) {
		status, body := leader.do(http.MethodGet, "/Users/"+id, "")
		return status == http.StatusOK, body
	})

	// Both replicas change the same user at once, each its own attribute, again and again.
	const rounds = 10
	var wg sync.WaitGroup
	for i, p := range []*idp{leader, other} {
		attr := []string{"title", "nickName"}[i]
		wg.Go(func() {
			for round := range rounds {
				status, body := p.do(http.MethodPatch, "/Users/"+id, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
					"Operations":[{"op":"Replace","path":%q,"value":"%s-%d"}]}`, attr, attr, round))
				if status != http.StatusOK {
					t.Errorf("patch %s round %d: %d %s", attr, round, status, body)
				}
			}
		})
	}
	wg.Wait()
	for _, p := range []*idp{leader, other} {
		waitFor(t, "both replicas' last changes, on both", func() (bool, string) {
			_, body := p.do(http.MethodGet, "/Users/"+id, "")
			return strings.Contains(body, fmt.Sprintf(`"title":"title-%d"`, rounds-1)) && strings.Contains(body, fmt.Sprintf(`"nickName":"nickName-%d"`, rounds-1)), body
		})
	}
	waitFor(t, "the User has the last title", func() (bool, string) {
		u, _ := userByUserName(t, ns, "ada@example.com")
		return u.Spec.Title == fmt.Sprintf("title-%d", rounds-1), u.Spec.Title
	})

	// A group and a deactivation pushed through the standby reach the User.
	other.expect(http.MethodPost, "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"engineering",
		"members":[{"value":"`+id+`"}]}`, http.StatusCreated)
	other.expect(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations":[{"op":"replace","value":{"active":false}}]}`, http.StatusOK)
	waitFor(t, "ada in engineering, and suspended", func() (bool, string) {
		u, _ := userByUserName(t, ns, "ada@example.com")
		return u.Spec.State == identityv1alpha1.UserStateSuspended && len(u.Spec.Groups) == 1 && u.Spec.Groups[0] == "engineering",
			fmt.Sprintf("%s %v", u.Spec.State, u.Spec.Groups)
	})
	other.expect(http.MethodDelete, "/Users/"+id, "", http.StatusNoContent)
	waitFor(t, "the leader no longer answers for ada", func() (bool, string) {
		status, body := leader.do(http.MethodGet, "/Users/"+id, "")
		return status == http.StatusNotFound, body
	})
}
