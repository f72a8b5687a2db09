// Package project checks the kubebuilder PROJECT file: the format kubebuilder's
// version 3 config writes, and what it says of Roster's kinds.
package project

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rosterhq/roster/test/testenv"
)

// projectFile is kubebuilder's version 3 PROJECT format, field for field, so that a
// strict read refuses what kubebuilder would not write.
type projectFile struct {
	CLIVersion  string   `json:"cliVersion"`
	Domain      string   `json:"domain"`
	Layout      []string `json:"layout"`
	ProjectName string   `json:"projectName"`
	Repo        string   `json:"repo"`
	Resources   []struct {
		API *struct {
			CRDVersion string `json:"crdVersion"`
			Namespaced bool   `json:"namespaced"`
		} `json:"api"`
		Controller bool   `json:"controller"`
		Domain     string `json:"domain"`
		Group      string `json:"group"`
		Kind       string `json:"kind"`
		Path       string `json:"path"`
		Version    string `json:"version"`
	} `json:"resources"`
	Version string `json:"version"`
}

func TestProjectFileIsAValidKubebuilderProject(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "PROJECT"))
	if err != nil {
		t.Fatal(err)
	}
	var p projectFile
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("PROJECT is not in kubebuilder's version 3 format: %v", err)
	}
	if p.Version != "3" || !slices.Equal(p.Layout, []string{"go.kubebuilder.io/v4"}) {
		t.Errorf("version %q, layout %v; want 3 and go.kubebuilder.io/v4", p.Version, p.Layout)
	}
	if p.Domain != "roster.dev" || p.Repo != "github.com/rosterhq/roster" || p.ProjectName != "roster" {
		t.Errorf("domain %q, repo %q, projectName %q; want roster.dev, github.com/rosterhq/roster, roster", p.Domain, p.Repo, p.ProjectName)
	}
	var kinds []string
	for _, r := range p.Resources {
		if r.Group != "identity" || r.Version != "v1alpha1" || r.Domain != p.Domain || r.API == nil || !r.API.Namespaced ||
			r.API.CRDVersion != "v1" || r.Path != p.Repo+"/api/v1alpha1" {
			t.Errorf("%s: want group identity, version v1alpha1, a namespaced v1 CRD under api/v1alpha1; got %+v", r.Kind, r)
		}
		kinds = append(kinds, r.Kind)
	}
	slices.Sort(kinds)
	if want := []string{"AppAssignment", "AppConnection", "DirectorySync", "Role", "User"}; !slices.Equal(kinds, want) {
		t.Fatalf("kinds = %v, want %v", kinds, want)
	}
}
