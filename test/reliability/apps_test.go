package reliability

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"

	"github.com/rosterhq/roster/connectors/scim"
)

// app is a SCIM app on loopback, reached by the operator through a toxiproxy proxy, with
// faults toxiproxy has no toxic for (5xx bursts, 429 with Retry-After, truncated JSON)
// answered by a handler in front of it. Its store does not refuse a second user with a
// taken userName, as some apps do not: a client that creates twice leaves a duplicate.
// It takes only its organisation's token: earlier tests' AppConnections stay behind,
// retrying apps that have gone, and one whose port a new app happens to take must not
// provision into it.
type app struct {
	name  string
	token string
	store *scim.MemoryStore
	srv   *httptest.Server
	proxy *toxiproxy.Proxy

	mu       sync.Mutex
	fault    httpFault
	requests map[string]int // "POST /Users", "GET /Users?filter" …
	faulted  int            // account writes the fault answered itself, never reaching the app
	// repeats counts writes that came again exactly as before (method, path, body): a
	// retry after a lost answer.
	repeats int
	seen    map[string]bool
	// posted keeps when each userName's creates arrived, to tell a duplicate's story.
	posted map[string][]time.Time
}

// tally is what an app has seen: writes to accounts, the part of them that a fault
// answered or that repeated an earlier one, and lookups by filter.
type tally struct{ writes, faulted, repeats, lookups int }

func (a *app) tally() tally {
	a.mu.Lock()
	defer a.mu.Unlock()
	tl := tally{faulted: a.faulted, repeats: a.repeats, lookups: a.requests["GET /Users?filter"]}
	for _, m := range []string{"POST", "PATCH", "PUT", "DELETE"} {
		tl.writes += a.requests[m+" /Users"]
	}
	return tl
}

func (t tally) minus(before tally) tally {
	return tally{t.writes - before.writes, t.faulted - before.faulted, t.repeats - before.repeats, t.lookups - before.lookups}
}

// httpFault is a fault at the HTTP level.
type httpFault string

const (
	noFault      httpFault = ""
	serverErrors httpFault = "5xx"      // 503 to every request
	tooMany      httpFault = "429"      // 429 with Retry-After: 1 to every request
	truncated    httpFault = "truncate" // the write is done, its answer cut in half
)

func newApp(t *testing.T, name, token string) *app {
	t.Helper()
	a := &app{name: name, token: token, store: scim.NewLenientMemoryStore(), requests: map[string]int{}, seen: map[string]bool{}, posted: map[string][]time.Time{}}
	server := scim.NewServer(scim.ServerOptions{Store: a.store, Authorize: a.authorized})
	a.srv = httptest.NewServer(http.StripPrefix("/scim/v2", a.faulty(server)))
	t.Cleanup(a.srv.Close)
	a.proxy = proxyTo(t, name, strings.TrimPrefix(a.srv.URL, "http://"))
	return a
}

// proxyTo puts a toxiproxy proxy in front of a test server (host:port).
func proxyTo(t *testing.T, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	p := toxiproxy.NewProxy(suite.toxics, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// url is the app's SCIM base URL, through the proxy.
func (a *app) url() string { return "http://" + a.proxy.Listen + "/scim/v2" }

func (a *app) setFault(f httpFault) {
	a.mu.Lock()
	a.fault = f
	a.mu.Unlock()
}

func (a *app) authorized(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bearer "+a.token
}

func (a *app) faulty(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			next.ServeHTTP(w, r) // refused, and not counted: another organisation's operator
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		kind := r.Method + " /" + strings.Split(strings.Trim(r.URL.Path, "/"), "/")[0]
		if r.URL.Query().Has("filter") {
			kind += "?filter"
		}
		isWrite := r.Method != http.MethodGet && strings.HasSuffix(kind, " /Users")
		a.mu.Lock()
		fault := a.fault
		a.requests[kind]++
		answeredByFault := fault == serverErrors || fault == tooMany // a cut answer is the app's
		if answeredByFault && isWrite {
			a.faulted++
		}
		if write := r.Method + " " + r.URL.Path + " " + string(body); isWrite && !answeredByFault {
			if a.seen[write] {
				a.repeats++
			}
			a.seen[write] = true // it reaches the store
		}
		if r.Method == http.MethodPost && kind == "POST /Users" {
			var u struct{ UserName string }
			_ = json.Unmarshal(body, &u)
			a.posted[strings.ToLower(u.UserName)] = append(a.posted[strings.ToLower(u.UserName)], time.Now())
		}
		a.mu.Unlock()
		switch fault {
		case serverErrors:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
		case tooMany:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case truncated:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			body := rec.Body.Bytes()
			w.Header().Set("Content-Length", strconv.Itoa(len(body)/2))
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body[:len(body)/2])
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// counts returns the requests the app has seen, by kind, and how many account writes a
// fault answered.
func (a *app) counts() (map[string]int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.requests))
	for k, v := range a.requests {
		out[k] = v
	}
	return out, a.faulted
}

// createsOf says when the creates of a userName arrived.
func (a *app) createsOf(userName string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var at []string
	for _, t := range a.posted[strings.ToLower(userName)] {
		at = append(at, t.Format("15:04:05.000"))
	}
	return strings.Join(at, ", ")
}

// accounts returns each userName (lower-cased) with how many accounts hold it and how
// many of those are active.
func (a *app) accounts() (held, active map[string]int) {
	held, active = map[string]int{}, map[string]int{}
	a.store.Range(scim.Users, func(r scim.Resource) bool {
		name, _ := r["userName"].(string)
		held[strings.ToLower(name)]++
		if r.Active() {
			active[strings.ToLower(name)]++
		}
		return true
	})
	return held, active
}

// addToxic adds a toxic (toxiproxy's JSON: type, stream, toxicity, attributes).
func addToxic(t *testing.T, p *toxiproxy.Proxy, name, typ, stream string, attrs map[string]any) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":{`, name, typ, stream)
	first := true
	for k, v := range attrs {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:%v", k, v)
	}
	b.WriteString("}}")
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(b.String())); err != nil {
		t.Fatalf("adding toxic %s: %v", name, err)
	}
}

func removeToxic(t *testing.T, p *toxiproxy.Proxy, name string) {
	t.Helper()
	if err := p.Toxics.RemoveToxic(t.Context(), name); err != nil {
		t.Fatalf("removing toxic %s: %v", name, err)
	}
}
