// Command krew packages kubectl-roster for krew: one archive per platform in dist/krew,
// and the plugin manifest dist/krew/roster.yaml naming each with its sha256. Run by
// make krew VERSION=v0.1.0 URL=https://releases.example.com/roster/v0.1.0.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// Platforms are the operating systems and architectures the plugin is built for.
var Platforms = [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}}

func main() {
	version := flag.String("version", "v0.0.0", "the release's version")
	url := flag.String("url", "", "where the archives are published (the manifest appends each archive's name)")
	out := flag.String("out", "dist/krew", "the directory to write to")
	flag.Parse()
	if err := run(*version, strings.TrimSuffix(*url, "/"), *out, Platforms); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(version, url, out string, targets [][2]string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var platforms []Platform
	for _, p := range targets {
		binary := "kubectl-roster"
		if p[0] == "windows" {
			binary += ".exe"
		}
		built := filepath.Join(out, p[0]+"-"+p[1], binary)
		cmd := exec.Command("go", "build", "-trimpath", "-o", built, "./cmd/kubectl-roster")
		cmd.Env = append(os.Environ(), "GOOS="+p[0], "GOARCH="+p[1])
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building for %s/%s: %v: %s", p[0], p[1], err, msg)
		}
		archive := fmt.Sprintf("kubectl-roster_%s_%s_%s.tar.gz", version, p[0], p[1])
		sum, err := pack(filepath.Join(out, archive), built, binary)
		if err != nil {
			return err
		}
		platforms = append(platforms, Platform{Selector: Selector{MatchLabels: map[string]string{"os": p[0], "arch": p[1]}},
			URI: url + "/" + archive, SHA256: sum, Bin: binary})
	}
	data, err := yaml.Marshal(Manifest(version, platforms))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "roster.yaml"), data, 0o644)
}

// pack writes a tar.gz holding the binary and returns its sha256.
func pack(archive, binary, name string) (string, error) {
	f, err := os.Create(archive)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	gz := gzip.NewWriter(io.MultiWriter(f, h))
	tw := tar.NewWriter(gz)
	data, err := os.ReadFile(binary)
	if err != nil {
		return "", err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))}); err != nil {
		return "", err
	}
	if _, err := tw.Write(data); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
