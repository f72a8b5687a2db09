package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/conformance"
	"github.com/rosterhq/roster/connectors/webhook"
	"github.com/rosterhq/roster/examples/webhook-receiver/receiver"
)

// schemas compiles the protocol's published JSON Schemas.
func schemas(t *testing.T) (request, answer *jsonschema.Schema) {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, name := range []string{"request", "answer"} {
		f, err := os.Open(filepath.Join("..", "..", "config", "webhook", name+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s.schema.json: %v", name, err)
		}
		if err := c.AddResource("urn:roster:webhook:v1:"+name, doc); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if request, err = c.Compile("urn:roster:webhook:v1:request"); err != nil {
		t.Fatal(err)
	}
	if answer, err = c.Compile("urn:roster:webhook:v1:answer"); err != nil {
		t.Fatal(err)
	}
	return request, answer
}

// checked validates every request and every answer that passes through it.
type checked struct {
	t               *testing.T
	next            http.Handler
	request, answer *jsonschema.Schema
	mu              sync.Mutex
	types           map[string]bool
}

func (c *checked) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	c.validate(c.request, "request", body)
	var req webhook.Request
	_ = json.Unmarshal(body, &req)
	if got := r.Header.Get(webhook.HeaderIdempotencyKey); got != req.IdempotencyKey {
		c.t.Errorf("%s: the Idempotency-Key header %q is not the body's %q", req.Type, got, req.IdempotencyKey)
	}
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	if rec.Body.Len() > 0 {
		c.validate(c.answer, "answer to "+req.Type, rec.Body.Bytes())
	}
	c.mu.Lock()
	c.types[req.Type] = true
	c.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (c *checked) validate(s *jsonschema.Schema, what string, body []byte) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err == nil {
		err = s.Validate(doc)
	}
	if err != nil {
		c.t.Errorf("%s does not follow the published schema: %v\n%s", what, err, body)
	}
}

func TestEveryRequestAndAnswerFollowsThePublishedSchemas(t *testing.T) {
	request, answer := schemas(t)
	for _, noList := range []bool{false, true} {
		seen := map[string]bool{}
		var mu sync.Mutex
		conformance.Target(t, func(t *testing.T) connectors.Target {
			c := &checked{t: t, next: newReceiver(t, receiver.Options{NoList: noList}), request: request, answer: answer, types: map[string]bool{}}
			t.Cleanup(func() {
				mu.Lock()
				defer mu.Unlock()
				for k := range c.types {
					seen[k] = true
				}
			})
			return serve(t, c, webhook.Config{Journal: &memoryJournal{entries: map[string][]byte{}}})
		})
		want := []string{webhook.TypeCapabilities, webhook.TypeAccountCreate, webhook.TypeAccountUpdate, webhook.TypeAccountDeactivate,
			webhook.TypeAccountReactivate, webhook.TypeAccountDelete, webhook.TypeGroupEnsure, webhook.TypeGroupMembers}
		if !noList {
			want = append(want, webhook.TypeAccountsList, webhook.TypeAccountsLookup, webhook.TypeGroupsList)
		}
		for _, kind := range want {
			if !seen[kind] {
				t.Errorf("no-list %v: the suite sent no %s, so its schema went unchecked", noList, kind)
			}
		}
	}
}
