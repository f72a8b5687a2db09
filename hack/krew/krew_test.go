package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rosterhq/roster/test/testenv"
)

// The manifest names this platform's archive with its sha256, and the archive holds a
// kubectl-roster that runs.
func TestKrewPackage(t *testing.T) {
	out := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(testenv.RepoRoot()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chdir(wd) }()
	if err := run("v0.1.0", "https://releases.example.com/roster/v0.1.0", out, [][2]string{{runtime.GOOS, runtime.GOARCH}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "roster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p Plugin
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != "Plugin" || p.Metadata.Name != "roster" || p.Spec.Version != "v0.1.0" || len(p.Spec.Platforms) != 1 || p.Spec.ShortDescription == "" {
		t.Fatalf("manifest: %+v", p)
	}
	platform := p.Spec.Platforms[0]
	archive := filepath.Join(out, filepath.Base(platform.URI))
	if !strings.HasPrefix(platform.URI, "https://releases.example.com/roster/v0.1.0/kubectl-roster_v0.1.0_") {
		t.Fatalf("uri %s", platform.URI)
	}
	f, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(f); hex.EncodeToString(sum[:]) != platform.SHA256 {
		t.Fatal("the manifest's sha256 is not the archive's")
	}
	gz, err := gzip.NewReader(strings.NewReader(string(f)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	header, err := tr.Next()
	if err != nil || header.Name != platform.Bin {
		t.Fatalf("the archive holds %v (%v), want %s", header, err, platform.Bin)
	}
	bin := filepath.Join(t.TempDir(), platform.Bin)
	body, _ := io.ReadAll(tr)
	if err := os.WriteFile(bin, body, 0o755); err != nil {
		t.Fatal(err)
	}
	help, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "diff") {
		t.Fatalf("the packaged plugin: %v\n%s", err, help)
	}
}
