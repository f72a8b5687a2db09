// Package githubapi is a GitHub organization served on loopback for tests and the
// bench: members, invitations, outside collaborators, teams and GitHub App installation
// tokens, with GitHub's rate-limit headers, secondary limits and invitation limit. Every
// request it is sent and every answer it gives is validated against GitHub's published
// OpenAPI description (@octokit/openapi from npm), so it cannot drift from the real API.
package githubapi

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/rosterhq/roster/test/npm"
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
	const file = "node_modules/@octokit/openapi/generated/api.github.com.json"
	dir, err := npm.Install(filepath.Join(filepath.Dir(self), "openapi"), "github-openapi", nil, file)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, file), nil
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
