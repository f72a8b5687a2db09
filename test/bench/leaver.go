package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
)

// leavers suspends Users one at a time (the kill switch, spec.state) and measures the
// time until the apps have deactivated every one of their accounts: first with nothing
// else to do, then all at once (a burst, as when a team is let go), then, unless
// LeaversIdleOnly, while a second organisation of the same size joins. The operator's
// CPU is profiled while it deprovisions the first two.
func (b *bench) leavers(ctx context.Context) error {
	n := b.opts.Leavers
	// Leaves of the org chart, from the end of the export.
	idle := initial.people[len(initial.people)-n:]
	loaded := initial.people[len(initial.people)-2*n : len(initial.people)-n]
	burst := initial.people[len(initial.people)-3*n : len(initial.people)-2*n]

	stopProfile, err := b.startCPUProfile("leavers")
	if err != nil {
		return err
	}
	idleLatencies, err := b.idleLeavers(ctx, idle)
	var burstLatencies []time.Duration
	if err == nil {
		burstLatencies, err = b.leaverBurst(ctx, burst)
	}
	stopProfile()
	if err != nil {
		return err
	}
	b.logf("  idle: p50 %s p99 %s; %d at once: p50 %s p99 %s\n",
		percentile(idleLatencies, 50).Round(time.Millisecond), percentile(idleLatencies, 99).Round(time.Millisecond),
		len(burst), percentile(burstLatencies, 50).Round(time.Millisecond), percentile(burstLatencies, 99).Round(time.Millisecond))
	if b.opts.LeaversIdleOnly {
		return nil
	}
	return b.leaversWhileJoining(ctx, loaded)
}

// idleLeavers suspends these people one at a time, each once the last is off
// everywhere, and returns, sorted, the time from each one's suspension until every app
// deactivated their account.
func (b *bench) idleLeavers(ctx context.Context, ps []person) ([]time.Duration, error) {
	var latencies []time.Duration
	for _, p := range ps {
		start := time.Now()
		if err := b.suspend(ctx, p); err != nil {
			return nil, err
		}
		done, err := b.waitDeactivated(ctx, []person{p})
		if err != nil {
			return nil, err
		}
		latencies = append(latencies, done[p.email].Sub(start))
	}
	slices.Sort(latencies)
	b.report.add(atMost("leaver", "p50 until every account is deactivated", percentile(latencies, 50).Seconds(), 1, "s",
		map[string]float64{"leavers": float64(len(ps)), "accountsEach": float64(b.opts.Apps), "maxSeconds": latencies[len(latencies)-1].Seconds()}))
	b.report.add(atMost("leaver", "p99 until every account is deactivated", percentile(latencies, 99).Seconds(), 3, "s", nil))
	return latencies, nil
}

// leaverBurst suspends these people all at once and returns, sorted, the time from
// each one's suspension until every app deactivated their account.
func (b *bench) leaverBurst(ctx context.Context, ps []person) ([]time.Duration, error) {
	var deactivated map[string]time.Time
	var waitErr error
	var wg sync.WaitGroup
	wg.Go(func() { deactivated, waitErr = b.waitDeactivated(ctx, ps) })
	starts := make([]time.Time, len(ps))
	for i, p := range ps {
		starts[i] = time.Now()
		if err := b.suspend(ctx, p); err != nil {
			return nil, err
		}
	}
	wg.Wait()
	if waitErr != nil {
		return nil, waitErr
	}
	latencies := make([]time.Duration, len(ps))
	for i, p := range ps {
		latencies[i] = deactivated[p.email].Sub(starts[i])
	}
	slices.Sort(latencies)
	b.report.add(atMost("leaver", fmt.Sprintf("p99 of %d suspended at once", len(ps)), percentile(latencies, 99).Seconds(), 1, "s",
		map[string]float64{"leavers": float64(len(ps)), "p50Seconds": percentile(latencies, 50).Seconds(),
			"lastSeconds": deactivated[ps[len(ps)-1].email].Sub(starts[0]).Seconds()}))
	return latencies, nil
}

// leaversWhileJoining suspends these people one every 100 ms while a second
// organisation of the same size joins, and measures their p99.
func (b *bench) leaversWhileJoining(ctx context.Context, loaded []person) error {
	n := len(loaded)
	// A second organisation joins: its DirectorySync starts an initial sync of as many
	// Users, into the same apps, and the leavers are suspended while it runs.
	acquired := people("Q", 1, b.opts.Users)
	url := b.exports.put("/acquired.csv", csvOf(acquired))
	loadStart := time.Now()
	if err := b.createAll(ctx, directorySync("acquired", url)); err != nil {
		return err
	}
	if err := b.waitCreating(ctx, len(initial.people)+min(100, len(acquired)/10)); err != nil {
		return err
	}
	starts := map[string]time.Time{}
	var mu sync.Mutex
	var deactivated map[string]time.Time
	var waitErr error
	var wg sync.WaitGroup
	wg.Go(func() { deactivated, waitErr = b.waitDeactivated(ctx, loaded) })
	for _, p := range loaded {
		mu.Lock()
		starts[p.email] = time.Now()
		mu.Unlock()
		if err := b.suspend(ctx, p); err != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	if waitErr != nil {
		return waitErr
	}
	// The idle, burst and loaded leavers: 3n of the first organisation are suspended.
	want := expect{users: 2 * len(initial.people), active: 2*len(initial.people) - 3*n}
	if err := b.waitConverged(ctx, "the second initial sync", want); err != nil {
		return err
	}
	loadTook := time.Since(loadStart)
	loadEnd := loadStart.Add(loadTook)

	var loadedLatencies []time.Duration
	underLoad := 0
	for _, p := range loaded {
		loadedLatencies = append(loadedLatencies, deactivated[p.email].Sub(starts[p.email]))
		if deactivated[p.email].Before(loadEnd) {
			underLoad++
		}
	}
	slices.Sort(loadedLatencies)
	b.report.add(atMost("leaver", fmt.Sprintf("p99 while %d Users join", len(acquired)), percentile(loadedLatencies, 99).Seconds(), 5, "s",
		map[string]float64{"leavers": float64(n), "deactivatedWhileJoining": float64(underLoad),
			"p50Seconds": percentile(loadedLatencies, 50).Seconds(), "joinSeconds": loadTook.Seconds()}))
	b.logf("  while %d join (%s): p50 %s p99 %s\n", len(acquired), loadTook.Round(time.Millisecond),
		percentile(loadedLatencies, 50).Round(time.Millisecond), percentile(loadedLatencies, 99).Round(time.Millisecond))
	return nil
}

// suspend flips a User's kill switch, as an admin would with kubectl patch.
func (b *bench) suspend(ctx context.Context, p person) error {
	u := &identityv1alpha1.User{}
	u.Namespace, u.Name = orgNamespace, "hr-"+strings.ToLower(p.id)
	return b.env.Client.Patch(ctx, u, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"state":"Suspended"}}`)))
}

// waitDeactivated waits until every app has deactivated these people's accounts, and
// returns when the last app did so for each.
func (b *bench) waitDeactivated(ctx context.Context, ps []person) (map[string]time.Time, error) {
	emails := make([]string, len(ps))
	for i, p := range ps {
		emails[i] = p.email
	}
	done := map[string]time.Time{}
	err := b.waitFor(ctx, timeoutFor(len(ps)*1000), 5*time.Millisecond, "deactivating the leavers' accounts", func() (bool, string, error) {
		at, err := b.apps.deactivated(emails)
		if err != nil {
			return false, "", err
		}
		for _, email := range emails {
			var last time.Time
			for _, name := range appNames(b.opts.Apps) {
				t, ok := at[name][email]
				if !ok {
					return false, email + " still active in " + name, nil
				}
				if t.After(last) {
					last = t
				}
			}
			done[email] = last
		}
		return true, "", nil
	})
	return done, err
}

// waitCreating waits until the first app holds n accounts: the second initial sync is
// under way.
func (b *bench) waitCreating(ctx context.Context, n int) error {
	return b.waitFor(ctx, timeoutFor(n), 20*time.Millisecond, "the second initial sync to start", func() (bool, string, error) {
		stats, err := b.apps.stats()
		if err != nil {
			return false, "", err
		}
		return stats[appName(0)].Users >= n, "", nil
	})
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(0, rank-1)]
}
