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
	"github.com/rosterhq/roster/controllers/directory"
)

// Syncers runs one directory syncer per DirectorySync, on the leader only.
type Syncers struct {
	client client.Client
	log    logr.Logger

	started chan struct{}
	ctx     context.Context

	mu      sync.Mutex
	running map[types.NamespacedName]*runningSyncer
	changed map[types.NamespacedName]bool

	events chan event.GenericEvent
}

type runningSyncer struct {
	syncer *directory.Syncer
	cancel context.CancelFunc
	done   chan struct{}
}

// NewSyncers returns an empty set of syncers.
func NewSyncers(c client.Client, log logr.Logger) *Syncers {
	return &Syncers{
		client: c, log: log, started: make(chan struct{}),
		running: map[types.NamespacedName]*runningSyncer{}, changed: map[types.NamespacedName]bool{},
		events: make(chan event.GenericEvent, 256),
	}
}

// Start runs until ctx ends, passing the syncers' news on at most once a second each.
func (s *Syncers) Start(ctx context.Context) error {
	s.ctx = ctx
	close(s.started)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			running := s.running
			s.running = map[types.NamespacedName]*runningSyncer{}
			s.mu.Unlock()
			for _, r := range running {
				r.cancel()
				<-r.done
			}
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

// Ensure starts the syncer of a DirectorySync with cfg, or reconfigures it.
func (s *Syncers) Ensure(ctx context.Context, key types.NamespacedName, cfg directory.Config) (*directory.Syncer, error) {
	select {
	case <-s.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.running[key]; ok {
		r.syncer.Configure(cfg)
		return r.syncer, nil
	}
	notify := func() {
		s.mu.Lock()
		s.changed[key] = true
		s.mu.Unlock()
	}
	syncer := directory.New(cfg, s.client, s.log.WithValues("directorysync", key.String()), notify)
	runCtx, cancel := context.WithCancel(s.ctx)
	r := &runningSyncer{syncer: syncer, cancel: cancel, done: make(chan struct{})}
	s.running[key] = r
	go func() {
		defer close(r.done)
		syncer.Run(runCtx)
	}()
	return syncer, nil
}

// Get returns a DirectorySync's syncer, nil if none runs.
func (s *Syncers) Get(key types.NamespacedName) *directory.Syncer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.running[key]; ok {
		return r.syncer
	}
	return nil
}

// Stop stops a DirectorySync's syncer.
func (s *Syncers) Stop(key types.NamespacedName) {
	s.mu.Lock()
	r, ok := s.running[key]
	delete(s.running, key)
	s.mu.Unlock()
	if ok {
		r.cancel()
		<-r.done
		directory.ForgetMetrics(key.String())
	}
}
