package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/connectors/httpx"
	"github.com/rosterhq/roster/connectors/webhook"
	"github.com/rosterhq/roster/examples/webhook-receiver/receiver"
)

var secret = []byte("a-signing-secret-of-32-bytes-len")

// memoryJournal is a Journal in a map, as the operator keeps it in ConfigMaps.
type memoryJournal struct {
	mu      sync.Mutex
	entries map[string][]byte
}

func (j *memoryJournal) Entries(context.Context) (map[string][]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range j.entries {
		out[k] = bytes.Clone(v)
	}
	return out, nil
}

func (j *memoryJournal) Put(_ context.Context, key string, value []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries[key] = bytes.Clone(value)
	return nil
}

func (j *memoryJournal) Remove(_ context.Context, key string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.entries, key)
	return nil
}

func newReceiver(t *testing.T, opts receiver.Options) *receiver.Receiver {
	t.Helper()
	if opts.Secrets == nil {
		opts.Secrets = [][]byte{secret}
	}
	r, err := receiver.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// serve starts h on loopback and returns a Target for it.
func serve(t *testing.T, h http.Handler, cfg webhook.Config) *webhook.Target {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.URL, cfg.App = srv.URL, "acme/payroll"
	if cfg.Secrets == nil {
		cfg.Secrets = [][]byte{secret}
	}
	if cfg.HTTP.Timeout == 0 {
		cfg.HTTP.Timeout = 5 * time.Second
	}
	cfg.HTTP.BaseBackoff, cfg.HTTP.MaxBackoff = 10*time.Millisecond, 2*time.Second
	if cfg.HTTP.RequestsPerSecond == 0 {
		cfg.HTTP.RequestsPerSecond, cfg.HTTP.Burst = 1000, 100
	}
	target, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return target
}

func TestConformanceWithAReceiverThatLists(t *testing.T) {
	conformance.Target(t, func(t *testing.T) connectors.Target {
		return serve(t, newReceiver(t, receiver.Options{}), webhook.Config{})
	})
}

func TestConformanceWithAReceiverThatCannotList(t *testing.T) {
	conformance.Target(t, func(t *testing.T) connectors.Target {
		return serve(t, newReceiver(t, receiver.Options{NoList: true}), webhook.Config{Journal: &memoryJournal{entries: map[string][]byte{}}})
	})
}

func account(name string) connectors.Account {
	return connectors.Account{Active: true, Attributes: map[string]any{connectors.AttrUserName: name, "title": "Engineer"}}
}

// counting passes requests to next and counts them by type.
type counting struct {
	next  http.Handler
	mu    sync.Mutex
	types map[string]int
	keys  map[string][]string // idempotency keys of each delivery, by type
}

func newCounting(next http.Handler) *counting {
	return &counting{next: next, types: map[string]int{}, keys: map[string][]string{}}
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req webhook.Request
	_ = json.Unmarshal(body, &req)
	c.mu.Lock()
	c.types[req.Type]++
	c.keys[req.Type] = append(c.keys[req.Type], r.Header.Get(webhook.HeaderIdempotencyKey))
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *counting) count(kind string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.types[kind]
}

func TestARestartDoesNotResendWhatANoListReceiverWasSent(t *testing.T) {
	ctx := context.Background()
	r := newReceiver(t, receiver.Options{NoList: true})
	journal := &memoryJournal{entries: map[string][]byte{}}
	first := serve(t, r, webhook.Config{Journal: journal})
	ada, err := first.Create(ctx, account("ada"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Deactivate(ctx, ada); err != nil {
		t.Fatal(err)
	}
	group, err := first.EnsureGroup(ctx, "payroll-admins")
	if err != nil {
		t.Fatal(err)
	}
	if err := first.ChangeMembers(ctx, group, []string{ada.ID}, nil); err != nil {
		t.Fatal(err)
	}

	seen := newCounting(r)
	restarted := serve(t, seen, webhook.Config{Journal: journal})
	page, err := restarted.ListAccounts(ctx, "")
	if err != nil || len(page.Accounts) != 1 || page.Accounts[0].ID != ada.ID || page.Accounts[0].Active || page.Accounts[0].Attributes["title"] != "Engineer" {
		t.Fatalf("after a restart the listing is %+v, %v; want ada, inactive, with what was sent", page, err)
	}
	groups, err := restarted.ListGroups(ctx, "")
	if err != nil || len(groups.Groups) != 1 || len(groups.Groups[0].Members) != 1 || groups.Groups[0].Members[0] != ada.ID {
		t.Fatalf("after a restart the groups are %+v, %v", groups, err)
	}
	if again, err := restarted.EnsureGroup(ctx, "Payroll-Admins"); err != nil || again.ID != group.ID {
		t.Fatalf("EnsureGroup after a restart = %+v, %v; want the group sent before", again, err)
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.types) != 1 || seen.types[webhook.TypeCapabilities] != 1 {
		t.Fatalf("after a restart the receiver got %v; want only the capabilities asked", seen.types)
	}
}

// TestAChangeWhoseAnswerIsLostIsDeliveredAgainAndAppliedOnce: the receiver applies the
// change but its answer never arrives (a 500 from a proxy after the receiver); Roster
// delivers it again with the same idempotency key, and the receiver applies it once.
func TestAChangeWhoseAnswerIsLostIsDeliveredAgainAndAppliedOnce(t *testing.T) {
	r := newReceiver(t, receiver.Options{})
	var mu sync.Mutex
	lost := 0
	seen := newCounting(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		mu.Lock()
		defer mu.Unlock()
		if strings.Contains(req.Header.Get("Content-Type"), "json") && lost < 2 && rec.Code < 300 && rec.Body.Len() > 0 && strings.Contains(rec.Body.String(), `"account"`) {
			lost++
			http.Error(w, `{"error":"upstream reset"}`, http.StatusBadGateway)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	target := serve(t, seen, webhook.Config{})
	created, err := target.Create(context.Background(), account("grace"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	keys := seen.keys[webhook.TypeAccountCreate]
	if len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("deliveries of the create carried keys %q; want three, all the same", keys)
	}
	if n := len(r.Accounts()); n != 1 || r.Applied() != 1 || created.ID != r.Accounts()[0].ID {
		t.Fatalf("the receiver holds %d accounts after %d changes applied; want the one account, applied once", n, r.Applied())
	}
}

func TestTheSameChangeKeepsItsKeyUntilItLands(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	fail := true
	r := newReceiver(t, receiver.Options{})
	seen := newCounting(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		down := fail
		mu.Unlock()
		if down && req.Header.Get(webhook.HeaderIdempotencyKey) != "" && req.ContentLength > 0 {
			body, _ := io.ReadAll(req.Body)
			if bytes.Contains(body, []byte(webhook.TypeAccountDeactivate)) {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		r.ServeHTTP(w, req)
	}))
	target := serve(t, seen, webhook.Config{HTTP: httpx.Options{MaxAttempts: 1}})
	ada, err := target.Create(ctx, account("ada"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := target.Deactivate(ctx, ada); err == nil {
		t.Fatal("a deactivation answered 503 succeeded")
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if _, err := target.Deactivate(ctx, ada); err != nil {
		t.Fatal(err)
	}
	reactivated, err := target.Update(ctx, connectors.Account{ID: ada.ID, Attributes: ada.Attributes}, ada)
	if err != nil || !reactivated.Active {
		t.Fatalf("reactivate: %v", err)
	}
	if _, err := target.Deactivate(ctx, ada); err != nil {
		t.Fatal(err)
	}
	keys := seen.keys[webhook.TypeAccountDeactivate]
	if len(keys) != 3 || keys[0] != keys[1] || keys[2] == keys[1] {
		t.Fatalf("deactivation keys %q: want the retry of the failed one to carry its key, and the later deactivation a new one", keys)
	}
	if seen.count(webhook.TypeAccountReactivate) != 1 {
		t.Fatalf("requests %v: want the reactivation sent as account.reactivate", seen.types)
	}
	if got := r.Accounts(); len(got) != 1 || got[0].Active {
		t.Fatalf("the receiver holds %+v; want ada, deactivated again", got)
	}
}

func TestSignaturesAndRotation(t *testing.T) {
	ctx := context.Background()
	old, next := []byte("the-old-secret-0123456789abcdef"), []byte("the-new-secret-0123456789abcdef")
	cases := []struct {
		name     string
		sends    [][]byte
		accepts  [][]byte
		accepted bool
	}{
		{"the receiver's secret", [][]byte{old}, [][]byte{old}, true},
		{"a rotation: the new secret and the previous one, to a receiver still on the old", [][]byte{next, old}, [][]byte{old}, true},
		{"a rotation, to a receiver already on the new", [][]byte{next, old}, [][]byte{next}, true},
		{"a receiver that accepts both while it rotates", [][]byte{next}, [][]byte{old, next}, true},
		{"a wrong secret", [][]byte{next}, [][]byte{old}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := serve(t, newReceiver(t, receiver.Options{Secrets: tc.accepts}), webhook.Config{Secrets: tc.sends})
			_, err := target.Validate(ctx)
			if tc.accepted && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.accepted && (!errors.Is(err, connectors.ErrUnauthorized) || !strings.Contains(err.Error(), "signature does not match")) {
				t.Fatalf("got %v; want the receiver's refusal as rejected credentials, with its reason", err)
			}
		})
	}
}

func TestAReplayedRequestIsRefused(t *testing.T) {
	r := newReceiver(t, receiver.Options{})
	body := []byte(`{"version":"roster.webhook/v1","type":"account.deactivate","idempotencyKey":"k1","account":{"id":"u000001"}}`)
	for _, tc := range []struct {
		name   string
		signed time.Time
		want   int
	}{
		{"captured ten minutes ago", time.Now().Add(-10 * time.Minute), http.StatusUnauthorized},
		{"dated in the future", time.Now().Add(10 * time.Minute), http.StatusUnauthorized},
		{"fresh", time.Now(), http.StatusNotFound}, // verified, then: no such account
	} {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set(webhook.HeaderSignature, webhook.Sign(tc.signed, body, secret))
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: the receiver answered %d, want %d (%s)", tc.name, rec.Code, tc.want, rec.Body)
		}
		if err := webhook.Verify(req.Header.Get(webhook.HeaderSignature), body, time.Now(), webhook.DefaultTolerance, secret); (err == nil) != (tc.want != http.StatusUnauthorized) {
			t.Errorf("%s: Verify = %v", tc.name, err)
		}
	}
	tampered := bytes.Replace(body, []byte("u000001"), []byte("u000002"), 1)
	if err := webhook.Verify(webhook.Sign(time.Now(), body, secret), tampered, time.Now(), webhook.DefaultTolerance, secret); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("a tampered body verified: %v", err)
	}
}

func TestAReceiversAnswersBecomeTheRightErrors(t *testing.T) {
	ctx := context.Background()
	answer := func(status int, body string, header ...string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		})
	}
	t.Run("a 4xx is permanent and says what the receiver said", func(t *testing.T) {
		_, err := serve(t, answer(422, `{"error":"department Finance is unknown to the app"}`), webhook.Config{}).Create(ctx, account("ada"))
		if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "department Finance is unknown to the app") || !strings.Contains(err.Error(), "422") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a huge error message is cut", func(t *testing.T) {
		_, err := serve(t, answer(400, `{"error":"`+strings.Repeat("x", 100_000)+`"}`), webhook.Config{}).Create(ctx, account("ada"))
		if err == nil || len(err.Error()) > 600 {
			t.Fatalf("an error of %d bytes", len(err.Error()))
		}
	})
	t.Run("409 is a conflict", func(t *testing.T) {
		_, err := serve(t, answer(409, `{"error":"taken"}`), webhook.Config{}).Create(ctx, account("ada"))
		if !errors.Is(err, connectors.ErrConflict) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a slow receiver times out, and says so", func(t *testing.T) {
		slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		})
		_, err := serve(t, slow, webhook.Config{HTTP: httpx.Options{Timeout: 200 * time.Millisecond}}).Deactivate(ctx, connectors.Account{ID: "u1"})
		if err == nil || connectors.IsPermanent(err) || !strings.Contains(err.Error(), "no answer within 200ms") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("429 is waited out for its Retry-After", func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Time
		r := newReceiver(t, receiver.Options{})
		h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			at = append(at, time.Now())
			first := len(at) == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			r.ServeHTTP(w, req)
		})
		target := serve(t, h, webhook.Config{})
		if _, err := target.Validate(ctx); err != nil {
			t.Fatal(err)
		}
		if len(at) != 2 || at[1].Sub(at[0]) < time.Second {
			t.Fatalf("deliveries at %v; want the second one a second after the 429", at)
		}
	})
	t.Run("a listing that hands back its own cursor stops", func(t *testing.T) {
		_, err := serve(t, answer(200, `{"version":"roster.webhook/v1","capabilities":{"list":true},"accounts":[{"id":"a","active":true}],"next":"c1"}`), webhook.Config{}).ListAccounts(ctx, "c1")
		if !connectors.IsPermanent(err) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("an answer for another protocol version", func(t *testing.T) {
		_, err := serve(t, answer(200, `{"version":"acme/v9","capabilities":{"list":true}}`), webhook.Config{}).Validate(ctx)
		if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "acme/v9") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("an answer that is not JSON", func(t *testing.T) {
		_, err := serve(t, answer(200, `<html>login</html>`), webhook.Config{}).Validate(ctx)
		if err == nil || !strings.Contains(err.Error(), "not the protocol's JSON") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestAnAccountGoneFromANoListReceiverIsForgotten(t *testing.T) {
	ctx := context.Background()
	r := newReceiver(t, receiver.Options{NoList: true})
	target := serve(t, r, webhook.Config{Journal: &memoryJournal{entries: map[string][]byte{}}})
	ada, err := target.Create(ctx, account("ada"))
	if err != nil {
		t.Fatal(err)
	}
	byHand := serve(t, r, webhook.Config{}) // someone deletes it in the app
	if err := byHand.Delete(ctx, ada.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := target.Deactivate(ctx, ada); !errors.Is(err, connectors.ErrNotFound) {
		t.Fatalf("deactivating an account the app no longer has = %v, want ErrNotFound", err)
	}
	if page, err := target.ListAccounts(ctx, ""); err != nil || len(page.Accounts) != 0 {
		t.Fatalf("the account the app answered 404 for is still listed: %+v, %v", page.Accounts, err)
	}
}

// TestAReceiverThatDoesNotDeduplicateStillHoldsOneAccount: a receiver that ignores
// idempotency keys applies a create whose answer was lost, then meets the delivery
// again as a second create of the same userName; its 409 names the account, which is
// adopted: one account.
func TestAReceiverThatDoesNotDeduplicateStillHoldsOneAccount(t *testing.T) {
	r := newReceiver(t, receiver.Options{})
	var mu sync.Mutex
	deliveries := 0
	careless := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var msg map[string]any
		_ = json.Unmarshal(body, &msg)
		mu.Lock()
		deliveries++
		n := deliveries
		mu.Unlock()
		if msg["type"] == webhook.TypeAccountCreate {
			msg["idempotencyKey"] = fmt.Sprintf("%032x", n) // as if it kept no keys
			body, _ = json.Marshal(msg)
			req.Header.Set(webhook.HeaderSignature, webhook.Sign(time.Now(), body, secret))
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		if msg["type"] == webhook.TypeAccountCreate && r.Applied() == 0 {
			r.ServeHTTP(httptest.NewRecorder(), req)
			http.Error(w, `{"error":"gateway timeout"}`, http.StatusGatewayTimeout)
			return
		}
		r.ServeHTTP(w, req)
	})
	target := serve(t, careless, webhook.Config{})
	adopted, wasAdopted, err := connectors.CreateOrAdopt(context.Background(), target, account("ada"), connectors.KeyUserName)
	if err != nil || !wasAdopted {
		t.Fatalf("CreateOrAdopt = %+v adopted=%v, %v; want the account the first delivery made, adopted", adopted, wasAdopted, err)
	}
	if got := r.Accounts(); len(got) != 1 || got[0].ID != adopted.ID {
		t.Fatalf("the receiver holds %+v; want one account, the adopted one", got)
	}
}
