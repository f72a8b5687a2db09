package project

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rosterhq/roster/test/testenv"
)

// TestEveryReasonIsDocumentedAndTested: each condition reason Roster sets has a section
// in docs/troubleshooting.md, and some test outside this one names it.
func TestEveryReasonIsDocumentedAndTested(t *testing.T) {
	root := testenv.RepoRoot()
	conditions, err := os.ReadFile(filepath.Join(root, "api", "v1alpha1", "conditions.go"))
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	var tests strings.Builder
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == "bin" || strings.HasPrefix(d.Name(), ".")):
			return filepath.SkipDir
		case strings.HasSuffix(path, "_test.go") && !strings.HasSuffix(path, "reasons_test.go"):
			data, err := os.ReadFile(path)
			tests.Write(data)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reasons := regexp.MustCompile(`(?m)^\s*(Reason\w+)\s*=\s*"(\w+)"`).FindAllStringSubmatch(string(conditions), -1)
	if len(reasons) < 10 {
		t.Fatalf("found %d reasons in conditions.go", len(reasons))
	}
	for _, r := range reasons {
		constant, word := r[1], r[2]
		if !regexp.MustCompile(`(?m)^### .*\b` + word + `\b`).Match(guide) {
			t.Errorf("docs/troubleshooting.md has no section for %s", word)
		}
		if !regexp.MustCompile(`\b` + constant + `\b`).MatchString(tests.String()) {
			t.Errorf("no test names identityv1alpha1.%s", constant)
		}
	}
}
