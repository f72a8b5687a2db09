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
	cache client.Reader
	// inbound is the base URL of the (first) replica's inbound SCIM server.
	inbound  string
	replicas []*replica
}

// replica is one replica of the operator in this process. A manager that stops on its
// own (its leader lease lost) is started again, as a Deployment starts its pod again.
type replica struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once the replica runs no more
	wire   *wire
	killed bool
	// inbound is the address its inbound SCIM server listens on, kept across restarts.
	inbound string

	mu  sync.Mutex
	mgr ctrl.Manager
	// shards is the part of the work the replica does.
	shards   *controllers.Sharding
	restarts int
}

func (r *replica) current() (ctrl.Manager, *controllers.Sharding) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mgr, r.shards
}

// reader reads from a replica's informers, through whichever manager runs it now.
type reader struct{ r *replica }

func (c reader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	mgr, _ := c.r.current()
	return mgr.GetClient().Get(ctx, key, obj, opts...)
}

func (c reader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	mgr, _ := c.r.current()
	return mgr.GetClient().List(ctx, list, opts...)
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
		r, err := b.startReplica(ctx)
		if err != nil {
			b.op.stop()
			return err
		}
		if i == 0 {
			b.op.cache, b.op.inbound = reader{r}, "http://"+r.inbound
		}
	}
	return nil
}

// startReplica starts one replica, once its caches have synced.
func (b *bench) startReplica(ctx context.Context) (*replica, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &replica{cancel: cancel, done: make(chan struct{}), wire: &wire{}}
	b.op.replicas = append(b.op.replicas, r)
	var err error
	if r.inbound, err = freeAddr(); err != nil {
		close(r.done)
		return nil, err
	}
	if r.mgr, r.shards, err = b.newManager(ctx, r); err != nil {
		close(r.done)
		return nil, err
	}
	go b.keepRunning(ctx, r, len(b.op.replicas)-1, r.mgr)
	if !r.mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, errors.New("the operator's caches did not sync")
	}
	return r, nil
}

// keepRunning runs a replica's manager until the replica is stopped or killed, and
// starts a new one whenever the manager stops on its own.
func (b *bench) keepRunning(ctx context.Context, r *replica, i int, mgr ctrl.Manager) {
	defer close(r.done)
	for {
		err := mgr.Start(ctx)
		if ctx.Err() != nil {
			return
		}
		b.logf("  replica %d stopped on its own (%v); starting it again\n", i, err)
		var sharding *controllers.Sharding
		if mgr, sharding, err = b.newManager(ctx, r); err != nil {
			b.logf("  replica %d could not start again: %v\n", i, err)
			return
		}
		r.mu.Lock()
		r.shards = sharding
		r.restarts++
		r.mu.Unlock()
		go r.readFrom(ctx, mgr)
	}
}

// readFrom sends the bench's reads to a restarted replica's caches once they hold
// everything.
func (r *replica) readFrom(ctx context.Context, mgr ctrl.Manager) {
	if mgr.GetCache().WaitForCacheSync(ctx) {
		r.mu.Lock()
		r.mgr = mgr
		r.mu.Unlock()
	}
}

// newManager builds a replica's manager, with the inbound SCIM server on its address.
func (b *bench) newManager(ctx context.Context, r *replica) (ctrl.Manager, *controllers.Sharding, error) {
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
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(opts))
	if err != nil {
		return nil, nil, err
	}
	inbound := &controllers.InboundSCIM{Addr: r.inbound, Client: mgr.GetClient(), Log: ctrl.Log.WithName("inbound-scim")}
	registry := controllers.Connectors(memory.NewApps(), inbound)
	if err := controllers.Setup(ctx, mgr, controllers.Options{Registry: registry, Inbound: inbound, Sharding: sharding, Leases: timing}); err != nil {
		return nil, nil, err
	}
	return mgr, sharding, nil
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

// alive counts the replicas still running: not killed, and started again whenever
// they stopped on their own.
func (o *operator) alive() int {
	n := 0
	for _, r := range o.replicas {
		select {
		case <-r.done:
		default:
			n++
		}
	}
	return n
}

// restarts counts the times replicas stopped on their own and were started again.
func (o *operator) restarts() int {
	n := 0
	for _, r := range o.replicas {
		r.mu.Lock()
		n += r.restarts
		r.mu.Unlock()
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
		float64(len(holders)), float64(alive), "", map[string]float64{"shards": float64(shards), "replicas": float64(b.opts.Replicas), "restarts": float64(b.op.restarts())}))
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
			if _, shards := r.current(); !r.killed && shards.Owns(&apps.Items[i]) {
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
