package memory

import (
	"context"
	"sync"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// Apps holds the in-memory apps of one operator by instance name. It is created in
// main.go (or a test) and shared by the AppConnections that name the same instance.
type Apps struct {
	mu   sync.Mutex
	apps map[string]*App
}

// NewApps returns an empty set of apps.
func NewApps() *Apps { return &Apps{apps: map[string]*App{}} }

// Get returns the app with this instance name, creating it empty the first time.
func (s *Apps) Get(instance string) *App {
	s.mu.Lock()
	defer s.mu.Unlock()
	app, ok := s.apps[instance]
	if !ok {
		app = NewApp()
		s.apps[instance] = app
	}
	return app
}

// InstanceName is the app an AppConnection's memory block names: its instance, or the
// AppConnection's own namespace/name.
func InstanceName(conn *identityv1alpha1.AppConnection) string {
	if m := conn.Spec.Memory; m != nil && m.Instance != "" {
		return m.Instance
	}
	return conn.Namespace + "/" + conn.Name
}

// TargetFactory builds the Target for an AppConnection's memory block.
func (s *Apps) TargetFactory() connectors.TargetFactory {
	return func(_ context.Context, conn *identityv1alpha1.AppConnection, _ connectors.SecretReader) (connectors.Target, error) {
		return s.Get(InstanceName(conn)), nil
	}
}
