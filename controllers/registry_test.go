package controllers

import (
	"reflect"
	"testing"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
)

// blocks sets each pointer-to-struct field of a spec in turn and reports the block
// names the spec says are set: its connector or source blocks.
func blocks[S any](name func(*S) string) []string {
	var out []string
	typ := reflect.TypeFor[S]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct {
			continue
		}
		var spec S
		reflect.ValueOf(&spec).Elem().Field(i).Set(reflect.New(f.Type.Elem()))
		if block := name(&spec); block != "" {
			out = append(out, block)
		}
	}
	return out
}

// TestEveryConnectorBlockOfTheAPIHasAProvider: the API admits only what Roster serves.
func TestEveryConnectorBlockOfTheAPIHasAProvider(t *testing.T) {
	registry := Connectors(memory.NewApps(), &InboundSCIM{})
	targets := blocks((*identityv1alpha1.AppConnectionSpec).ConnectorName)
	sources := blocks((*identityv1alpha1.DirectorySyncSpec).SourceName)
	if len(targets) < 2 || len(sources) < 3 {
		t.Fatalf("found connector blocks %v and source blocks %v: the API's blocks are not found", targets, sources)
	}
	for _, block := range targets {
		if _, err := registry.Target(block); err != nil {
			t.Errorf("the AppConnection block %q has no provider: %v", block, err)
		}
	}
	for _, block := range sources {
		if _, err := registry.Source(block); err != nil {
			t.Errorf("the DirectorySync block %q has no provider: %v", block, err)
		}
	}
}
