package controllers

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors/memory"
)

// exactlyOne matches the spec rule that admits one block among several.
var exactlyOne = regexp.MustCompile(`^\[(has\(self\.\w+\)(, )?)+\]\.filter\(x, x\)\.size\(\) == 1$`)

// admittedBlocks reads, from a generated CRD, the blocks its spec's "exactly one" rule
// admits: what the API server lets a user apply.
func admittedBlocks(t *testing.T, crdFile string) []string {
	t.Helper()
	raw, err := os.ReadFile("../config/crd/bases/" + crdFile)
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	for _, rule := range spec.XValidations {
		if exactlyOne.MatchString(rule.Rule) {
			return regexp.MustCompile(`has\(self\.(\w+)\)`).FindAllString(rule.Rule, -1)
		}
	}
	t.Fatalf("%s has no rule admitting exactly one block", crdFile)
	return nil
}

// withBlock returns a spec whose field with the JSON name block is set.
func withBlock[S any](t *testing.T, block string) *S {
	t.Helper()
	var spec S
	typ := reflect.TypeFor[S]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if strings.Split(f.Tag.Get("json"), ",")[0] == block && f.Type.Kind() == reflect.Pointer {
			reflect.ValueOf(&spec).Elem().Field(i).Set(reflect.New(f.Type.Elem()))
			return &spec
		}
	}
	t.Fatalf("%s has no block field %q", typ.Name(), block)
	return nil
}

// TestEveryConnectorBlockOfTheAPIHasAProvider: the API admits only what Roster serves.
// The blocks are read from the CRDs' schema rules, so a block added to the API without
// a provider, or without its name in ConnectorName/SourceName, fails here.
func TestEveryConnectorBlockOfTheAPIHasAProvider(t *testing.T) {
	registry := Connectors(memory.NewApps(), &InboundSCIM{})
	name := func(has string) string { return strings.TrimSuffix(strings.TrimPrefix(has, "has(self."), ")") }

	targets := admittedBlocks(t, "identity.roster.dev_appconnections.yaml")
	for _, has := range targets {
		block := name(has)
		if got := withBlock[identityv1alpha1.AppConnectionSpec](t, block).ConnectorName(); got != block {
			t.Errorf("an AppConnection with the block %q names its connector %q", block, got)
		}
		if _, err := registry.Target(block); err != nil {
			t.Errorf("the AppConnection block %q has no provider: %v", block, err)
		}
	}
	sources := admittedBlocks(t, "identity.roster.dev_directorysyncs.yaml")
	for _, has := range sources {
		block := name(has)
		if got := withBlock[identityv1alpha1.DirectorySyncSpec](t, block).SourceName(); got != block {
			t.Errorf("a DirectorySync with the block %q names its source %q", block, got)
		}
		if _, err := registry.Source(block); err != nil {
			t.Errorf("the DirectorySync block %q has no provider: %v", block, err)
		}
	}
	if !slices.Contains(targets, "has(self.scim)") || !slices.Contains(sources, "has(self.hris)") {
		t.Fatalf("read connector blocks %v and source blocks %v: the rules were misread", targets, sources)
	}
}
