package connectors

import (
	"fmt"
	"sort"
)

// Registry maps the name of a connector block ("scim", "ldap", "memory", …) on an
// AppConnection or a source block on a DirectorySync to the code that talks to that
// system. It is built in main.go and handed to the controllers; nothing registers itself.
type Registry struct {
	targets map[string]TargetFactory
	sources map[string]SourceFactory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{targets: map[string]TargetFactory{}, sources: map[string]SourceFactory{}}
}

// AddTarget registers the factory for an AppConnection connector block.
func (r *Registry) AddTarget(block string, f TargetFactory) *Registry {
	r.targets[block] = f
	return r
}

// AddSource registers the factory for a DirectorySync source block.
func (r *Registry) AddSource(block string, f SourceFactory) *Registry {
	r.sources[block] = f
	return r
}

// Target returns the factory for a connector block.
func (r *Registry) Target(block string) (TargetFactory, error) {
	f, ok := r.targets[block]
	if !ok {
		return nil, fmt.Errorf("no connector is built in for %q (built in: %v)", block, keys(r.targets))
	}
	return f, nil
}

// Source returns the factory for a source block.
func (r *Registry) Source(block string) (SourceFactory, error) {
	f, ok := r.sources[block]
	if !ok {
		return nil, fmt.Errorf("no directory source is built in for %q (built in: %v)", block, keys(r.sources))
	}
	return f, nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
