package testenv

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DependOnTree tells Go's test cache that the test reads every file under dirs through a
// program it runs (kubectl kustomize, helm), which the cache cannot see: a
// directory the test lists is recorded with the size and time of every entry, so a change
// there runs the test again instead of reporting a cached pass.
func DependOnTree(dirs ...string) error {
	for _, dir := range dirs {
		if err := filepath.WalkDir(dir, func(_ string, _ fs.DirEntry, err error) error { return err }); err != nil {
			return err
		}
	}
	return nil
}

// DependOnGoBuild does the same for `go build` of the package in dir: this module's
// go.mod and go.sum, and the directory of every package of this module it imports.
// Like DependOnTree, it must be called from a test: what TestMain reads before m.Run
// is not recorded.
func DependOnGoBuild(dir string) error {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", ".")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go list -deps: %w", err)
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		if _, err := os.Stat(filepath.Join(RepoRoot(), name)); err != nil {
			return err
		}
	}
	for _, pkg := range strings.Fields(string(out)) {
		if _, err := os.ReadDir(pkg); err != nil {
			return err
		}
	}
	return nil
}
