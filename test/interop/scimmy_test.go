// Package interop proves Roster's connectors against implementations maintained by
// others, started on loopback by the tests.
package interop

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/connectors/scim"
	"github.com/rosterhq/roster/test/npm"
)

const scimmyToken = "interop-token"

// startSCIMMY installs the pinned SCIMMY packages into a cache directory (once per
// lockfile) and starts test/interop/scimmy/server.mjs; it returns the SCIM base URL.
func startSCIMMY(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run make test, which installs Node.js and npm")
	}
	dir := installSCIMMY(t)
	cmd := exec.Command(node, "server.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SCIM_TOKEN="+scimmyToken)
	cmd.Stderr = testWriter{t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the SCIMMY app: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	port := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if p, ok := strings.CutPrefix(scanner.Text(), "listening "); ok {
				port <- p
			}
		}
	}()
	select {
	case p := <-port:
		return "http://127.0.0.1:" + p + "/scim/v2"
	case <-time.After(60 * time.Second):
		t.Fatal("the SCIMMY app did not start listening within 60s")
		return ""
	}
}

func installSCIMMY(t *testing.T) string {
	t.Helper()
	dir, err := npm.Install("scimmy", "scimmy", []string{"server.mjs"}, "node_modules/scimmy-routers/package.json")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type secrets map[string]string

func (s secrets) SecretValue(_ context.Context, _, key string) ([]byte, error) {
	v, ok := s[key]
	if !ok {
		return nil, connectors.ErrSecretNotFound
	}
	return []byte(v), nil
}

func scimClient(t *testing.T, baseURL string) connectors.Target {
	t.Helper()
	burst := int32(100)
	conn := &identityv1alpha1.AppConnection{
		ObjectMeta: metav1.ObjectMeta{Namespace: "interop", Name: "scimmy"},
		Spec: identityv1alpha1.AppConnectionSpec{RateLimit: &identityv1alpha1.RateLimit{Requests: 1000, Burst: &burst}, SCIM: &identityv1alpha1.SCIMConnector{
			BaseURL: baseURL, Profile: "generic",
			Auth: identityv1alpha1.SCIMAuth{Type: identityv1alpha1.SCIMAuthBearer, SecretRef: identityv1alpha1.LocalObjectReference{Name: "scimmy"}},
		}},
	}
	target, err := scim.NewFactory()(context.Background(), conn, secrets{scim.KeyToken: scimmyToken})
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// TestSCIMClientAgainstSCIMMY runs the connector contract (create, find by userName
// in any letter case, update, deactivate, reactivate, groups and their members,
// delete, list all) against SCIMMY.
func TestSCIMClientAgainstSCIMMY(t *testing.T) {
	base := startSCIMMY(t)
	conformance.Target(t, func(t *testing.T) connectors.Target { return scimClient(t, base) })
}

// TestSCIMMYFilterComparesWithLetterCase shows the quirk the client lives with: SCIMMY's
// userName eq filter compares with letter case, yet Lookup finds the account.
func TestSCIMMYFilterComparesWithLetterCase(t *testing.T) {
	base := startSCIMMY(t)
	client := scimClient(t, base)
	ctx := context.Background()
	created, err := client.Create(ctx, connectors.Account{Active: true, Attributes: map[string]any{"userName": "Quirk.Case@Example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/Users?"+url.Values{"filter": {scim.Eq("userName", "quirk.case@example.com")}}.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+scimmyToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"totalResults":0`) {
		t.Fatalf("SCIMMY's filter matched across letter case (%s); the quirk this test documents is gone", body)
	}
	found, err := client.Lookup(ctx, connectors.Key{Kind: connectors.KeyUserName, Value: "quirk.case@example.com"})
	if err != nil || found.ID != created.ID {
		t.Fatalf("Lookup = %q, %v; want %q", found.ID, err, created.ID)
	}
}
