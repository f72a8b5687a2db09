// Package project checks the kubebuilder PROJECT file against kubebuilder's own loader.
package project

import (
	"path/filepath"
	"sort"
	"testing"

	"github.com/spf13/afero"
	"sigs.k8s.io/kubebuilder/v4/pkg/config/store/yaml"
	_ "sigs.k8s.io/kubebuilder/v4/pkg/config/v3" // registers the version 3 format
	"sigs.k8s.io/kubebuilder/v4/pkg/machinery"

	"github.com/rosterhq/roster/test/testenv"
)

func TestProjectFileIsAValidKubebuilderProject(t *testing.T) {
	store := yaml.New(machinery.Filesystem{FS: afero.NewBasePathFs(afero.NewOsFs(), testenv.RepoRoot())})
	if err := store.LoadFrom(filepath.Base("PROJECT")); err != nil {
		t.Fatalf("kubebuilder cannot load PROJECT: %v", err)
	}
	cfg := store.Config()
	if got := cfg.GetDomain(); got != "roster.dev" {
		t.Errorf("domain = %q, want roster.dev", got)
	}
	if got := cfg.GetRepository(); got != "github.com/rosterhq/roster" {
		t.Errorf("repo = %q, want github.com/rosterhq/roster", got)
	}
	resources, err := cfg.GetResources()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range resources {
		if r.Group != "identity" || r.Version != "v1alpha1" || r.API == nil || !r.API.Namespaced {
			t.Errorf("%s: want group identity, version v1alpha1, a namespaced API; got %+v", r.Kind, r)
		}
		kinds = append(kinds, r.Kind)
	}
	sort.Strings(kinds)
	want := []string{"AppAssignment", "AppConnection", "DirectorySync", "Role", "User"}
	if len(kinds) != len(want) {
		t.Fatalf("kinds = %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("kinds = %v, want %v", kinds, want)
		}
	}
}
