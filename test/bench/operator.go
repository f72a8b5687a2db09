package bench

import (
	"context"
	"errors"
	"net"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rosterhq/roster/connectors/memory"
	"github.com/rosterhq/roster/controllers"
)

// operator is Roster running in this process, as main.go runs it.
type operator struct {
	// cache reads what the operator's informers hold.
	cache client.Client
	// inbound is the base URL of the inbound SCIM server.
	inbound string
	cancel  context.CancelFunc
	done    chan struct{}
}

// startOperator starts the operator with the connectors main.go builds in, without
// client-side rate limiting (as main.go, which leaves flow control to the API server).
func (b *bench) startOperator(ctx context.Context) error {
	cfg := rest.CopyConfig(b.env.Config)
	cfg.QPS, cfg.Burst = -1, 0
	mgr, err := ctrl.NewManager(cfg, controllers.ManagerOptions(ctrl.Options{
		Scheme: b.env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	}))
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	inbound := &controllers.InboundSCIM{Addr: addr, Client: mgr.GetClient(), Log: ctrl.Log.WithName("inbound-scim")}
	registry := controllers.Connectors(memory.NewApps(), inbound)
	runCtx, cancel := context.WithCancel(ctx)
	if err := controllers.Setup(runCtx, mgr, controllers.Options{Registry: registry, Inbound: inbound}); err != nil {
		cancel()
		return err
	}
	b.op = &operator{cache: mgr.GetClient(), inbound: "http://" + addr, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.op.done)
		_ = mgr.Start(runCtx)
	}()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("the operator's caches did not sync")
	}
	return nil
}

func (o *operator) stop() {
	o.cancel()
	<-o.done
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
