package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// rateBurst is the rate-limited app's burst, and the AppConnection's.
const rateBurst = 10

// rateBudget provisions into an app that allows RateBudget writes a minute and answers
// 429 beyond, with an AppConnection that declares that write budget, for RateDuration's
// worth of writes, and measures the rate achieved, the 429s and the accounts lost.
func (b *bench) rateBudget(ctx context.Context) error {
	const ns, name, label = "rated", "rated", "bench.roster.dev/rated"
	perMinute := b.opts.RateBudget
	n := int(float64(perMinute)*b.opts.RateDuration.Minutes()) * 100 / 102 // room for the member batches
	if err := b.apps.configure(AppConfig{Name: name, WritesPerMinute: perMinute, WriteBurst: rateBurst}); err != nil {
		return err
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-token"}, StringData: map[string]string{"token": appToken}},
		&identityv1alpha1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everyone"}, Spec: identityv1alpha1.RoleSpec{
			Members: identityv1alpha1.RoleMembers{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}}},
			Grants:  []identityv1alpha1.RoleGrant{{App: name, Entitlements: identityv1alpha1.Entitlements{Groups: []string{"everyone"}}}},
		}},
	}
	for _, p := range people("R", 1, n) {
		u := floorUser(ns, p)
		u.Name, u.Labels, u.Spec.Manager = "r-"+strings.ToLower(p.id), map[string]string{label: "true"}, nil
		objs = append(objs, u)
	}
	if err := b.createAll(ctx, objs...); err != nil {
		return err
	}
	// The app counts writes; reads have a budget of their own, well above.
	burst, concurrency, writes := int32(rateBurst), int32(4), int32(perMinute)
	conn := b.appConnection(ns, name, &identityv1alpha1.RateLimit{Requests: 10 * int32(perMinute), Writes: &writes,
		Period: &metav1.Duration{Duration: time.Minute}, Burst: &burst, MaxConcurrency: &concurrency})
	if err := b.createAll(ctx, conn); err != nil {
		return err
	}
	timeout := 3*b.opts.RateDuration + time.Minute
	err := b.waitFor(ctx, timeout, 250*time.Millisecond, "provisioning under the rate budget", func() (bool, string, error) {
		stats, err := b.apps.stats()
		if err != nil {
			return false, "", err
		}
		st := stats[name]
		if st.Active != n || st.Members["everyone"] != n {
			return false, fmt.Sprintf("%d/%d accounts, %d in the group", st.Active, n, st.Members["everyone"]), nil
		}
		return b.objectsReady(ctx, ns)
	})
	if err != nil {
		return err
	}
	stats, err := b.apps.stats()
	if err != nil {
		return err
	}
	st := stats[name]
	span := st.LastWrite.Sub(st.FirstWrite)
	sustained := float64(st.Writes-rateBurst) / span.Minutes()
	b.report.add(atLeast("rate budget", fmt.Sprintf("write rate achieved, %% of %d/min", perMinute), 100*sustained/float64(perMinute), 95, "%",
		map[string]float64{"writes": float64(st.Writes), "writesPerMinute": sustained, "seconds": span.Seconds()}))
	b.report.add(atMost("rate budget", "429 answers, % of requests", 100*float64(st.Throttled)/float64(st.Total()), 1, "%",
		map[string]float64{"throttled": float64(st.Throttled), "requests": float64(st.Total())}))
	b.report.add(atMost("rate budget", "accounts lost", float64(n-st.Active), 0, "", map[string]float64{"accounts": float64(n)}))
	b.logf("  %d writes at %.1f/min (budget %d), %d of %d requests answered 429\n", st.Writes, sustained, perMinute, st.Throttled, st.Total())
	return nil
}
