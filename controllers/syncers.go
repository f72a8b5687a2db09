package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/httpx"
	"github.com/rosterhq/roster/controllers/directory"
)

// Syncers runs one directory syncer per DirectorySync, on the leader only.
type Syncers struct {
	client client.Client
	log    logr.Logger

	running *workers[*directory.Syncer]

	mu      sync.Mutex
	changed map[types.NamespacedName]bool

	events chan event.GenericEvent
}

// NewSyncers returns an empty set of syncers.
func NewSyncers(c client.Client, log logr.Logger) *Syncers {
	s := &Syncers{
		client: c, log: log, changed: map[types.NamespacedName]bool{},
		events: make(chan event.GenericEvent, 256),
	}
	s.running = newWorkers[*directory.Syncer]("directorysync", log, s.changedNow)
	return s
}

// Start runs until ctx ends, passing the syncers' news on at most once a second each.
func (s *Syncers) Start(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		s.running.run(ctx)
		close(stopped)
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-stopped
			return nil
		case <-tick.C:
			s.mu.Lock()
			changed := s.changed
			s.changed = map[types.NamespacedName]bool{}
			s.mu.Unlock()
			for key := range changed {
				s.events <- event.GenericEvent{Object: &identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}}
			}
		}
	}
}

// NeedLeaderElection: only the leader writes Users.
func (s *Syncers) NeedLeaderElection() bool { return true }

// Ensure starts the syncer of a DirectorySync with cfg, or reconfigures it, while ours
// says its shard is this replica's (errNotOurs when not).
func (s *Syncers) Ensure(ctx context.Context, key types.NamespacedName, ours func() bool, cfg directory.Config) (*directory.Syncer, error) {
	return s.running.ensure(ctx, key, ours, func(syncer *directory.Syncer) { syncer.Configure(cfg) }, func() *directory.Syncer {
		return directory.New(cfg, s.client, s.log.WithValues("directorysync", key.String()), func() { s.changedNow(key) })
	})
}

// changedNow passes a DirectorySync's news on at the next tick.
func (s *Syncers) changedNow(key types.NamespacedName) {
	s.mu.Lock()
	s.changed[key] = true
	s.mu.Unlock()
}

// Get returns a DirectorySync's syncer, nil if none runs.
func (s *Syncers) Get(key types.NamespacedName) *directory.Syncer {
	syncer, _ := s.running.get(key)
	return syncer
}

// StopWhere stops the syncers of the DirectorySyncs that match.
func (s *Syncers) StopWhere(match func(types.NamespacedName) bool) {
	for _, key := range s.running.stopWhere(match) {
		directory.ForgetMetrics(key.String())
		httpx.ForgetMetrics(key.String())
	}
}

// Stop stops a DirectorySync's syncer.
func (s *Syncers) Stop(key types.NamespacedName) {
	if s.running.stop(key) {
		directory.ForgetMetrics(key.String())
		httpx.ForgetMetrics(key.String())
	}
}
