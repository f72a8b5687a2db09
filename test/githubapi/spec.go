// Package githubapi is a GitHub organization served on loopback for tests and the
// bench: members, invitations, outside collaborators, teams and GitHub App installation
// tokens, with GitHub's rate-limit headers, secondary limits and invitation limit. Every
// request it is sent and every answer it gives is validated against GitHub's published
// OpenAPI description (@octokit/openapi from npm), so it cannot drift from the real API.
package githubapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// paths are the operations the GitHub connector uses; the description is cut down to
// them (and what they refer to) before it is loaded.
var paths = []string{
	"/orgs/{org}",
	"/orgs/{org}/members",
	"/orgs/{org}/memberships/{username}",
	"/orgs/{org}/invitations",
	"/orgs/{org}/outside_collaborators",
	"/orgs/{org}/outside_collaborators/{username}",
	"/orgs/{org}/teams",
	"/orgs/{org}/teams/{team_slug}/members",
	"/orgs/{org}/teams/{team_slug}/memberships/{username}",
	"/app/installations/{installation_id}/access_tokens",
}

var (
	loadOnce sync.Once
	router   routers.Router
	loadErr  error
)

// Router returns a router over GitHub's description of the paths above, installing
// @octokit/openapi with npm into the user's cache on first use.
func Router() (routers.Router, error) {
	loadOnce.Do(func() { router, loadErr = load() })
	return router, loadErr
}

func load() (routers.Router, error) {
	file, err := install()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pruned, err := prune(data)
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(pruned)
	if err != nil {
		return nil, fmt.Errorf("loading GitHub's OpenAPI description: %w", err)
	}
	doc.Servers = openapi3.Servers{{URL: "/"}}
	return gorillamux.NewRouter(doc)
}

// install puts @octokit/openapi, at the version package-lock.json pins, under the
// cache and returns the path of api.github.com.json.
func install() (string, error) {
	_, self, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(self), "openapi")
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "roster", "npm", "github-openapi-"+hex.EncodeToString(sum[:6]))
	file := filepath.Join(dir, "node_modules", "@octokit", "openapi", "generated", "api.github.com.json")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Test binaries of several packages may install at once: one does, the others wait.
	guard, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer guard.Close()
	if err := syscall.Flock(int(guard.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer func() { _ = syscall.Flock(int(guard.Fd()), syscall.LOCK_UN) }()
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			return "", err
		}
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is not installed: run make test-tools, which installs Node.js and npm")
	}
	cmd := exec.CommandContext(context.Background(), npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci in %s: %v: %s", dir, err, out)
	}
	return file, nil
}

// prune keeps the paths above and the components they refer to, transitively.
func prune(data []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	all, _ := doc["paths"].(map[string]any)
	kept := map[string]any{}
	for _, p := range paths {
		if all[p] == nil {
			return nil, fmt.Errorf("GitHub's description has no path %s", p)
		}
		kept[p] = all[p]
	}
	components, _ := doc["components"].(map[string]any)
	keptComponents := map[string]map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				if len(parts) == 2 {
					section, _ := components[parts[0]].(map[string]any)
					if keptComponents[parts[0]] == nil {
						keptComponents[parts[0]] = map[string]any{}
					}
					if _, seen := keptComponents[parts[0]][parts[1]]; !seen && section[parts[1]] != nil {
						keptComponents[parts[0]][parts[1]] = section[parts[1]]
						walk(section[parts[1]])
					}
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(kept)
	out := map[string]any{"openapi": doc["openapi"], "info": doc["info"], "paths": kept, "components": keptComponents}
	return json.Marshal(out)
}
