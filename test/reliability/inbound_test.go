package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/controllers/directory"
)

const idpToken = "idp-bearer-token-0123456789abcdef"

// service stands for the inbound SCIM Service: it sends each request to one replica,
// the same one while it answers (a kept-alive connection), the next one once it does
// not (the dead pod leaves the Service's endpoints).
type service struct {
	mu       sync.Mutex
	replicas []string // host:port
	current  int
}

func (s *service) pick() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replicas[s.current]
}

func (s *service) failed(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replicas[s.current] == addr {
		s.current = (s.current + 1) % len(s.replicas)
	}
}

// pusher is an identity provider: it retries a push that failed for want of an answer,
// a 5xx or a 429, as Okta and Entra ID do, up to five times with a growing pause.
type pusher struct {
	svc    *service
	path   string // /scim/v2/<namespace>/<name>
	client *http.Client

	mu      sync.Mutex
	retried int // attempts that failed and were made again
	failed  []string
}

const pushAttempts = 5

// push sends one request until it is answered by the endpoint, and returns the answer.
func (p *pusher) push(method, path, body string) (int, map[string]any) {
	pause := 250 * time.Millisecond
	var last string
	for attempt := 1; attempt <= pushAttempts; attempt++ {
		addr := p.svc.pick()
		status, out, err := p.send(addr, method, path, body)
		if err == nil && status < 500 && status != http.StatusTooManyRequests {
			return status, out
		}
		last = fmt.Sprintf("%s %s: %d %v", method, path, status, err)
		p.svc.failed(addr)
		p.mu.Lock()
		p.retried++
		p.mu.Unlock()
		time.Sleep(pause)
		pause *= 2
	}
	p.mu.Lock()
	p.failed = append(p.failed, last)
	p.mu.Unlock()
	return 0, nil
}

func (p *pusher) send(addr, method, path, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, "http://"+addr+p.path+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+idpToken)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out, nil
}

// create pushes a new user as Okta (even i) or Entra ID (odd i) does, and returns its
// id. A create whose first answer was lost meets 409 when sent again; the identity
// provider then looks the user up, as both do.
func (p *pusher) create(t *testing.T, i int) string {
	t.Helper()
	userName := fmt.Sprintf("q%04d@example.com", i)
	var body string
	if i%2 == 0 {
		body = fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":%q,"name":{"givenName":"Person","familyName":"%d"},
			"emails":[{"primary":true,"value":%q,"type":"work"}],"displayName":"Person %d","active":true}`, userName, i, userName, i)
	} else {
		p.push(http.MethodGet, "/Users?filter="+url.QueryEscape(fmt.Sprintf("userName eq %q", userName)), "")
		body = fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			"externalId":"e%d","userName":%q,"active":true,"displayName":"Person %d","emails":[{"primary":true,"type":"work","value":%q}],
			"name":{"formatted":"Person %d","familyName":"%d","givenName":"Person"},
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"eng"}}`, i, userName, i, userName, i, i)
	}
	status, out := p.push(http.MethodPost, "/Users", body)
	if status == http.StatusConflict {
		status, out = p.push(http.MethodGet, "/Users?filter="+url.QueryEscape(fmt.Sprintf("userName eq %q", userName)), "")
		if resources, _ := out["Resources"].([]any); len(resources) == 1 {
			out = resources[0].(map[string]any)
		}
	}
	id, _ := out["id"].(string)
	if status == 0 || id == "" {
		t.Errorf("creating %s: %d %v", userName, status, out)
	}
	return id
}

// retitle changes a user's title, as Okta (a no-path replace) or Entra ID (a replace
// of the path, its op capitalised) does.
func (p *pusher) retitle(t *testing.T, i int, id, title string) {
	t.Helper()
	op := fmt.Sprintf(`{"op":"replace","value":{"title":%q}}`, title)
	if i%2 == 1 {
		op = fmt.Sprintf(`{"op":"Replace","path":"title","value":%q}`, title)
	}
	if status, _ := p.push(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+op+`]}`); status != http.StatusOK && status != 0 {
		t.Errorf("retitling %s: %d", id, status)
	}
}

// deactivate turns a user off, as Okta (active false) or Entra ID ("False") does.
func (p *pusher) deactivate(t *testing.T, i int, id string) {
	t.Helper()
	op := `{"op":"replace","value":{"active":false}}`
	if i%2 == 1 {
		op = `{"op":"Replace","path":"active","value":"False"}`
	}
	if status, _ := p.push(http.MethodPatch, "/Users/"+id, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[`+op+`]}`); status != http.StatusOK && status != 0 {
		t.Errorf("deactivating %s: %d", id, status)
	}
}

// TestKillTheReplicaServingInboundSCIM: two replicas serve inbound SCIM; an identity
// provider pushes a stream of Okta- and Entra-shaped joiners, title changes and
// deactivations to the one serving it, the leader, which is killed mid-stream. The
// other replica takes the pushes at once (before it leads), no push fails after the
// identity provider's retries, and every push reaches its User once.
func TestKillTheReplicaServingInboundSCIM(t *testing.T) {
	people := size(60, 600)
	ns := suite.env.Namespace(t)
	// A fifth of the people are deactivated: more than the default threshold lets
	// through, which has tests of its own.
	unlimited := int32(1000000)
	suite.env.Create(t,
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "idp-token"}, StringData: map[string]string{"token": idpToken}},
		&identityv1alpha1.DirectorySync{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "okta"},
			Spec: identityv1alpha1.DirectorySyncSpec{
				SCIM:            &identityv1alpha1.SCIMSource{TokenSecretRef: identityv1alpha1.SecretKeySelector{Name: "idp-token", Key: "token"}},
				SafetyThreshold: &identityv1alpha1.SafetyThreshold{MaxCount: &unlimited}}})
	stale := leader()
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startOperator(t, "a", suite.kubeconfig, "--scim-bind-address="+addrA)
	waitForLeader(t, leaseName, stale)
	startOperator(t, "b", suite.kubeconfig, "--scim-bind-address="+addrB)
	idp := &pusher{svc: &service{replicas: []string{addrA, addrB}}, path: "/scim/v2/" + ns + "/okta", client: &http.Client{Timeout: 10 * time.Second}}
	for _, addr := range []string{addrA, addrB} {
		waitUntil(t, time.Minute, "the endpoint serves on "+addr, func() (bool, string) {
			status, body, err := idp.send(addr, http.MethodGet, "/Users?count=1", "")
			return err == nil && status == http.StatusOK, fmt.Sprint(status, body, err)
		})
	}

	ids := make([]string, people)
	titles, deactivated := map[int]string{}, map[int]bool{}
	var killedAt time.Time
	tookOver := make(chan time.Duration, 1)
	for i := range people {
		if i == people/2 {
			held := leader()
			a.kill()
			killedAt = time.Now()
			go func() {
				for now := leader(); now == "" || now == held; now = leader() {
					time.Sleep(50 * time.Millisecond)
				}
				tookOver <- time.Since(killedAt)
			}()
		}
		ids[i] = idp.create(t, i)
		if j := i - 2; j >= 0 && i%3 == 0 && ids[j] != "" {
			titles[j] = fmt.Sprintf("title-%d", i)
			idp.retitle(t, j, ids[j], titles[j])
		}
		if j := i - 4; j >= 0 && i%5 == 0 && ids[j] != "" {
			deactivated[j] = true
			idp.deactivate(t, j, ids[j])
		}
	}
	pushedAfterKill := time.Since(killedAt)
	if len(idp.failed) > 0 {
		t.Fatalf("%d pushes failed after the identity provider's retries: %v", len(idp.failed), idp.failed)
	}

	waitUntil(t, 3*time.Minute, "every push in its User, once", func() (bool, string) {
		return pushesApplied(t, ns, people, titles, deactivated)
	})
	applied := time.Since(killedAt)
	t.Logf("%d people pushed (%d title changes, %d deactivations) by an identity provider whose serving replica, the leader, was killed halfway: "+
		"0 pushes failed, %d attempts were retried; the second half was answered within %s of the kill, the standby took the lead after %s, "+
		"and every push was in its User, once, %s after the kill",
		people, len(titles), len(deactivated), idp.retried, pushedAfterKill.Round(time.Millisecond), (<-tookOver).Round(time.Millisecond), applied.Round(time.Millisecond))
}

// waitForLeader waits until an operator started by this scenario leads: the lease
// holder is no longer the one an earlier scenario's operator left.
func waitForLeader(t *testing.T, leaseName, stale string) {
	t.Helper()
	waitUntil(t, 30*time.Second, "the first replica leads by "+leaseName, func() (bool, string) {
		now := holder(leaseName)
		return now != "" && now != stale, "lease held by " + now
	})
}

// pushesApplied reports whether the DirectorySync's Users are exactly the people pushed,
// one each, with their last title and their state.
func pushesApplied(t *testing.T, ns string, people int, titles map[int]string, deactivated map[int]bool) (bool, string) {
	t.Helper()
	var users identityv1alpha1.UserList
	if err := suite.env.Client.List(context.Background(), &users, client.InNamespace(ns), client.MatchingLabels{directory.LabelDirectorySync: "okta"}); err != nil {
		return false, err.Error()
	}
	byName := map[string][]identityv1alpha1.User{}
	for _, u := range users.Items {
		byName[u.Spec.UserName] = append(byName[u.Spec.UserName], u)
	}
	var wrong bytes.Buffer
	for i := range people {
		name := fmt.Sprintf("q%04d@example.com", i)
		found := byName[name]
		state := identityv1alpha1.UserStateActive
		if deactivated[i] {
			state = identityv1alpha1.UserStateSuspended
		}
		if len(found) != 1 {
			fmt.Fprintf(&wrong, "%s: %d Users; ", name, len(found))
			continue
		}
		got := found[0].Spec.State
		if got == "" {
			got = identityv1alpha1.UserStateActive
		}
		switch {
		case found[0].Spec.Title != titles[i]:
			fmt.Fprintf(&wrong, "%s: title %q, want %q; ", name, found[0].Spec.Title, titles[i])
		case got != state:
			fmt.Fprintf(&wrong, "%s: %s, want %s; ", name, got, state)
		}
	}
	if len(users.Items) != people {
		fmt.Fprintf(&wrong, "%d Users for %d people", len(users.Items), people)
	}
	return wrong.Len() == 0, truncate(wrong.String(), 400)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
