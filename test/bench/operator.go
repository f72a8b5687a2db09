package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
)

// operator is Roster running in this process, as main.go runs it: one replica, or
// several sharing automatic shards.
type operator struct {
	// cache reads what the (first) replica's informers hold.
	cache client.Client
	// inbound is the base URL of the (first) replica's inbound SCIM server.
	inbound  string
	replicas []*replica
}

// replica is one replica of the operator in this process.
type replica struct {
	cancel context.CancelFunc
	done   chan struct{}
	wire   *wire
	killed bool
	// shards is the part of the work the replica does.
	shards *controllers.Sharding
}

// wire is a replica's connections to the API server, which a kill cuts at once: its
// leases are left to expire and its last writes are lost, as a killed pod's.
type wire struct {
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func (w *wire) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut {
		c.Close()
		return nil, errors.New("this replica was killed")
	}
	w.conns = append(w.conns, c)
	return c, nil
}

func (w *wire) cutAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cut = true
	for _, c := range w.conns {
		c.Close()
	}
}

// The lease timing of replicas sharing automatic shards where one is killed: short, as
// the reliability suite's, so that its shards move within seconds. Otherwise the
// operator's defaults: at 50,000 × 20 on two cores the API server answered a renewal later than
// the short deadline, and shards moved between healthy replicas, each move a listing of
// the app again.
const (
	benchLease       = 4 * time.Second
	benchRenew       = 3 * time.Second
	benchLeaseRetry  = 500 * time.Millisecond
	shardsPerReplica = 4
)

// startOperator starts the operator with the connectors main.go builds in, without
// client-side rate limiting (as main.go, which leaves flow control to the API server):
// Options.Replicas replicas of it, which share automatic shards when more than one.
func (b *bench) startOperator(ctx context.Context) error {
	b.op = &operator{}
	for i := range b.opts.Replicas {
		mgr, inbound, err := b.startReplica(ctx)
		if err != nil {
			b.op.stop()
			return err
		}
		if i == 0 {
			b.op.cache, b.op.inbound = mgr.GetClient(), inbound
		}
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the operator's caches did not sync")
		}
	}
	return nil
}

// startReplica starts one replica; it returns its manager and inbound SCIM URL.
func (b *bench) startReplica(ctx context.Context) (ctrl.Manager, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &replica{cancel: cancel, done: make(chan struct{}), wire: &wire{}}
	b.op.replicas = append(b.op.replicas, r)
	cfg := rest.CopyConfig(b.env.Config)
	cfg.QPS, cfg.Burst, cfg.Dial = -1, 0, r.wire.dial
	opts := ctrl.Options{Scheme: b.env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	sharding, timing := controllers.NewSharding(controllers.MainShard, 0), controllers.LeaseTiming{}
	if b.opts.Replicas > 1 {
		def := controllers.DefaultLeaseTiming
		shared, everyReplica, lease, renew, retry := true, false, def.Duration, def.RenewDeadline, def.RetryPeriod
		if b.opts.KillReplica {
			lease, renew, retry = benchLease, benchRenew, benchLeaseRetry
		}
		opts.LeaderElection, opts.LeaderElectionID, opts.LeaderElectionNamespace = true, controllers.LeaseBase, "default"
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = &lease, &renew, &retry
		opts.Controller = config.Controller{SkipNameValidation: &shared, NeedLeaderElection: &everyReplica}
		sharding = controllers.NewSharding(controllers.MainShard, shardsPerReplica*b.opts.Replicas)
		timing = controllers.LeaseTiming{Namespace: "default", Duration: lease, RenewDeadline: renew, RetryPeriod: retry}
	}
	r.shards = sharding
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(opts))
	if err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	inbound := &controllers.InboundSCIM{Addr: addr, Client: mgr.GetClient(), Log: ctrl.Log.WithName("inbound-scim")}
	registry := controllers.Connectors(memory.NewApps(), inbound)
	if err := controllers.Setup(ctx, mgr, controllers.Options{Registry: registry, Inbound: inbound, Sharding: sharding, Leases: timing}); err != nil {
		return nil, "", err
	}
	go func() {
		defer close(r.done)
		_ = mgr.Start(ctx)
	}()
	return mgr, "http://" + addr, nil
}

// stop stops every replica that runs, as SIGTERM does.
func (o *operator) stop() {
	for _, r := range o.replicas {
		r.cancel()
	}
	for _, r := range o.replicas {
		<-r.done
	}
}

// kill kills the last replica, as SIGKILL does: its connections to the API server are
// cut before it stops, so it gives no lease up and its writes in flight are lost.
func (o *operator) kill() {
	r := o.replicas[len(o.replicas)-1]
	r.wire.cutAll()
	r.cancel()
	<-r.done
	r.killed = true
}

// alive counts the replicas not killed.
func (o *operator) alive() int {
	n := 0
	for _, r := range o.replicas {
		if !r.killed {
			n++
		}
	}
	return n
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// shardSpread reports, when replicas share automatic shards, how many of them hold at
// least one (each should) and that every app is run by exactly one replica alive, with
// how many apps each runs.
func (b *bench) shardSpread(ctx context.Context) error {
	if b.opts.Replicas < 2 {
		return nil
	}
	holders := map[string]float64{}
	shards := shardsPerReplica * b.opts.Replicas
	for i := range shards {
		lease := &coordinationv1.Lease{}
		key := client.ObjectKey{Namespace: "default", Name: fmt.Sprintf("auto-%d.shard.%s", i, controllers.LeaseBase)}
		if err := b.env.Client.Get(ctx, key, lease); err != nil {
			return err
		}
		if h := lease.Spec.HolderIdentity; h != nil && *h != "" {
			holders[*h]++
		}
	}
	alive := b.op.alive()
	b.report.add(atLeast("scale-out", fmt.Sprintf("replicas holding automatic shards, of %d alive", alive),
		float64(len(holders)), float64(alive), "", map[string]float64{"shards": float64(shards), "replicas": float64(b.opts.Replicas)}))
	b.logf("  %d shards over %d replicas: %v\n", shards, alive, holders)
	return b.appSpread(ctx)
}

// appSpread reports how many apps exactly one replica alive runs (each should), and
// how many each replica runs.
func (b *bench) appSpread(ctx context.Context) error {
	var apps identityv1alpha1.AppConnectionList
	if err := b.env.Client.List(ctx, &apps, client.InNamespace(orgNamespace)); err != nil {
		return err
	}
	perReplica := make([]int, len(b.op.replicas))
	once := 0
	for i := range apps.Items {
		runners := 0
		for j, r := range b.op.replicas {
			if !r.killed && r.shards.Owns(&apps.Items[i]) {
				perReplica[j]++
				runners++
			}
		}
		if runners == 1 {
			once++
		}
	}
	details := map[string]float64{"apps": float64(len(apps.Items))}
	for j, n := range perReplica {
		details[fmt.Sprintf("replica%d", j)] = float64(n)
	}
	b.report.add(atLeast("scale-out", "apps run by exactly one replica", float64(once), float64(len(apps.Items)), "", details))
	b.logf("  apps each replica runs: %v\n", perReplica)
	return nil
}
