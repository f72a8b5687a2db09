package scim

import (
	"testing"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
)

func TestConformance(t *testing.T) {
	variants := []struct {
		name    string
		opts    ServerOptions
		profile string
		quirk   func(*testApp)
	}{
		{name: "generic", profile: "generic"},
		{name: "PUT only, ETags, small pages", opts: ServerOptions{DisablePatch: true, ETags: true, MaxResults: 50}, profile: "generic"},
		{name: "PUT only without ETags", opts: ServerOptions{DisablePatch: true}, profile: "generic"},
		{name: "cursor paging", opts: ServerOptions{CursorPaging: true}, profile: "generic"},
		{name: "case-sensitive filter", profile: "generic", quirk: func(a *testApp) { a.intercept = caseSensitiveFilter(a) }},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			conformance.Target(t, func(t *testing.T) connectors.Target {
				app := newTestApp(t, v.opts)
				if v.quirk != nil {
					v.quirk(app)
				}
				return newTestClient(t, connection(app.baseURL(), v.profile), bearerSecrets)
			})
		})
	}
}
