package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/webhook"
	"github.com/rosterhq/roster/controllers/notify"
	"github.com/rosterhq/roster/test/testenv"
)

// secrets are a namespace's Secrets, by "name/key".
type secrets map[string]string

func (s secrets) SecretValue(_ context.Context, name, key string) ([]byte, error) {
	v, ok := s[name+"/"+key]
	if !ok {
		return nil, fmt.Errorf("the Secret %s has no key %q: %w", name, key, connectors.ErrSecretNotFound)
	}
	return []byte(v), nil
}

func (s secrets) ConfigMapValue(context.Context, string, string) ([]byte, error) {
	return nil, connectors.ErrSecretNotFound
}

const signingSecret = "a-signing-secret-of-32-bytes-len"

// receiver is a signed webhook's receiving end: it checks every signature and keeps
// what it was sent; answer decides the status of each request.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	messages []notify.WebhookMessage
	keys     []string
	attempts int
	answer   func(attempt int) int
}

func newReceiver(t *testing.T, answer func(attempt int) int) *receiver {
	r := &receiver{answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := webhook.Verify(req.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute, []byte(signingSecret)); err != nil {
			t.Errorf("a message without a valid signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.mu.Lock()
		r.attempts++
		status := http.StatusOK
		if r.answer != nil {
			status = r.answer(r.attempts)
		}
		if status < 300 {
			var m notify.WebhookMessage
			if err := json.Unmarshal(body, &m); err != nil {
				t.Errorf("a message that is not JSON: %v", err)
			}
			r.messages = append(r.messages, m)
			r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() []notify.WebhookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.WebhookMessage(nil), r.messages...)
}

// runHub runs a hub with one Notifier posting to r, gathering bursts for quiet.
func runHub(t *testing.T, r *receiver, quiet time.Duration) (*notify.Hub, types.NamespacedName) {
	t.Helper()
	channel, kind, err := notify.NewChannel(context.Background(), &identityv1alpha1.NotifierSpec{Webhook: &identityv1alpha1.WebhookChannel{
		URL: r.URL, SigningSecretRef: identityv1alpha1.LocalObjectReference{Name: "signing"}}}, secrets{"signing/secret": signingSecret})
	if err != nil || kind != "Webhook" {
		t.Fatalf("channel %s: %v", kind, err)
	}
	hub := notify.NewHub()
	key := types.NamespacedName{Namespace: "acme", Name: "ops"}
	hub.Set(key, notify.Config{Channel: channel, Quiet: quiet, MaxWait: time.Minute, Interval: time.Millisecond}, notify.Stats{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = hub.Start(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	return hub, key
}

func joiner(i int) notify.Event {
	name := fmt.Sprintf("joiner-%04d", i)
	return notify.Event{Kind: identityv1alpha1.NotifyJoiner, Namespace: "acme", Key: "joiner/" + name,
		Title: name + "@example.com has every account ready: wiki", Apps: []string{"wiki"}, Person: &notify.Person{Name: name}}
}

// A burst of 1,000 joiners is one message, a digest listing 50 and counting the rest;
// an event published twice, and one of another namespace, are not in it.
func TestABurstIsOneDigestAndRepeatsAreDropped(t *testing.T) {
	r := newReceiver(t, nil)
	hub, key := runHub(t, r, 500*time.Millisecond)
	for i := range 1000 {
		hub.Publish(joiner(i))
	}
	hub.Publish(joiner(7))
	other := joiner(1001)
	other.Namespace = "elsewhere"
	hub.Publish(other)
	testenv.WaitFor(t, 30*time.Second, "the digest delivered", func() (bool, string) {
		s, _ := hub.Stats(key)
		return s.Delivered == 1000 && s.Pending == 0, fmt.Sprintf("%+v", s)
	})
	got := r.received()
	if len(got) != 1 {
		t.Fatalf("%d messages for a burst, want 1", len(got))
	}
	m := got[0]
	if m.Title != "1000 joiners have every account ready" || len(m.Events) != 1000 || m.Kind != "Joiner" {
		t.Fatalf("digest: title %q, %d events", m.Title, len(m.Events))
	}
	if lines := strings.Count(m.Text, "• "); lines != 50 || !strings.HasSuffix(m.Text, "… and 950 more") {
		t.Fatalf("the digest lists %d and ends %q", lines, m.Text[max(0, len(m.Text)-40):])
	}
	if s, _ := hub.Stats(key); s.Deduplicated != 1 || s.Messages != 1 {
		t.Fatalf("stats: %+v", s)
	}
}

// A channel that fails is retried with the same Idempotency-Key, and the events that
// came meanwhile join the retry; one that refuses for good is given up at once and says
// why, without the URL.
func TestFailuresAreRetriedOrGivenUp(t *testing.T) {
	flaky := newReceiver(t, func(attempt int) int {
		if attempt <= 4 { // the client's own retries of the first delivery, then one more
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	hub, key := runHub(t, flaky, 50*time.Millisecond)
	hub.Publish(joiner(1))
	testenv.WaitFor(t, 30*time.Second, "a failed attempt", func() (bool, string) {
		s, _ := hub.Stats(key)
		return s.LastError != "", fmt.Sprintf("%+v", s)
	})
	hub.Publish(joiner(2))
	testenv.WaitFor(t, 60*time.Second, "both delivered", func() (bool, string) {
		s, _ := hub.Stats(key)
		return s.Delivered == 2, fmt.Sprintf("%+v", s)
	})
	if got := flaky.received(); len(got) != 1 || len(got[0].Events) != 2 {
		t.Fatalf("after the retry: %+v", got)
	}

	gone := newReceiver(t, func(int) int { return http.StatusNotFound })
	hub, key = runHub(t, gone, 10*time.Millisecond)
	hub.Publish(joiner(3))
	testenv.WaitFor(t, 30*time.Second, "given up", func() (bool, string) {
		s, _ := hub.Stats(key)
		return s.Failed == 1 && s.Permanent, fmt.Sprintf("%+v", s)
	})
	if s, _ := hub.Stats(key); strings.Contains(s.LastError, gone.URL) || !strings.Contains(s.LastError, "404") {
		t.Fatalf("the failure says %q", s.LastError)
	}
}

// Templates word an event; one that fails on an event leaves the default wording and
// says why; a template cannot produce unbounded output.
func TestTemplates(t *testing.T) {
	tpl, err := notify.CompileTemplates([]identityv1alpha1.NotificationTemplate{
		{Event: identityv1alpha1.NotifyJoiner, Title: "Welcome {{.Person.Name}}", Text: "{{range .Apps}}{{.}} {{end}}in {{.Namespace}}"},
		{Event: identityv1alpha1.NotifyLeaver, Title: "{{.Nothing}}"},
		{Event: identityv1alpha1.NotifyMover, Text: `{{range $i, $_ := .Apps}}{{range $.Apps}}{{printf "%09999d" 1}}{{end}}{{end}}`},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := notify.Render([]notify.Event{joiner(1)}, 0, tpl)
	if err != nil || m.Title != "Welcome joiner-0001" || m.Text != "wiki in acme" {
		t.Fatalf("joiner: %q %q %v", m.Title, m.Text, err)
	}
	leaver := notify.Event{Kind: identityv1alpha1.NotifyLeaver, Namespace: "acme", Title: "ada left"}
	if m, err := notify.Render([]notify.Event{leaver}, 0, tpl); err == nil || m.Title != "ada left" {
		t.Fatalf("a failing template: %q %v", m.Title, err)
	}
	mover := notify.Event{Kind: identityv1alpha1.NotifyMover, Namespace: "acme", Title: "ada moved", Apps: []string{"a", "b", "c", "d"}, Lines: []string{"gained: d"}}
	if m, err := notify.Render([]notify.Event{mover}, 0, tpl); err == nil || m.Text != "gained: d" {
		t.Fatalf("an unbounded template: %d bytes, %v", len(m.Text), err)
	}
	if _, err := notify.CompileTemplates([]identityv1alpha1.NotificationTemplate{{Event: identityv1alpha1.NotifyJoiner, Text: "{{.Person"}}); err == nil ||
		!strings.Contains(err.Error(), "the Joiner text template") {
		t.Fatalf("a template that does not parse: %v", err)
	}
}
