package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
)

// operator is Roster running in this process, as main.go runs it: one replica, or
// several sharing automatic shards.
type operator struct {
	// cache reads what the (first) replica's informers hold.
	cache client.Client
	// inbound is the base URL of the (first) replica's inbound SCIM server.
	inbound string
	cancel  context.CancelFunc
	done    []chan struct{}
}

// The lease timing of replicas sharing automatic shards: short, as the reliability
// suite's, so that shards spread within seconds.
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
	runCtx, cancel := context.WithCancel(ctx)
	b.op = &operator{cancel: cancel}
	for i := range b.opts.Replicas {
		mgr, inbound, err := b.startReplica(runCtx)
		if err != nil {
			cancel()
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
	cfg := rest.CopyConfig(b.env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	opts := ctrl.Options{Scheme: b.env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	sharding, timing := controllers.NewSharding(controllers.MainShard, 0), controllers.LeaseTiming{}
	if b.opts.Replicas > 1 {
		shared, everyReplica, lease, renew, retry := true, false, benchLease, benchRenew, benchLeaseRetry
		opts.LeaderElection, opts.LeaderElectionID, opts.LeaderElectionNamespace = true, controllers.LeaseBase, "default"
		opts.LeaseDuration, opts.RenewDeadline, opts.RetryPeriod = &lease, &renew, &retry
		opts.Controller = config.Controller{SkipNameValidation: &shared, NeedLeaderElection: &everyReplica}
		sharding = controllers.NewSharding(controllers.MainShard, shardsPerReplica*b.opts.Replicas)
		timing = controllers.LeaseTiming{Namespace: "default", Duration: lease, RenewDeadline: renew, RetryPeriod: retry}
	}
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
	done := make(chan struct{})
	b.op.done = append(b.op.done, done)
	go func() {
		defer close(done)
		_ = mgr.Start(ctx)
	}()
	return mgr, "http://" + addr, nil
}

func (o *operator) stop() {
	o.cancel()
	for _, done := range o.done {
		<-done
	}
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
// least one: each should.
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
	b.report.add(atLeast("scale-out", fmt.Sprintf("replicas holding automatic shards, of %d", b.opts.Replicas),
		float64(len(holders)), float64(b.opts.Replicas), "", map[string]float64{"shards": float64(shards)}))
	b.logf("  %d shards over %d replicas: %v\n", shards, b.opts.Replicas, holders)
	return nil
}
