// Package receiver is a reference receiver of Roster's webhook protocol
// (roster.webhook/v1): it checks every request's signature and timestamp, applies each
// change once whatever number of times it is delivered, keeps accounts and groups in a
// JSON file, and lists them for Roster to observe. Copy it as the start of your own.
package receiver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure a Receiver.
type Options struct {
	// Secrets are the signing secrets accepted: two while one is being rotated.
	Secrets [][]byte
	// Tolerance is how far a request's timestamp may be from this clock; 0 means 5 minutes.
	Tolerance time.Duration
	// File keeps the state between runs; "" keeps it in memory.
	File string
	// NoList makes the receiver say it cannot list, as many scripts cannot.
	NoList bool
	// PageSize is how many accounts a listing page holds; 0 means 100.
	PageSize int
}

// Account and Group are what the receiver holds.
type Account struct {
	ID         string         `json:"id"`
	Active     bool           `json:"active"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

type Group struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Members     []string `json:"members,omitempty"`
}

type answered struct {
	At     time.Time       `json:"at"`
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

type state struct {
	Accounts map[string]*Account `json:"accounts"`
	Groups   map[string]*Group   `json:"groups"`
	// Answered holds the answer to each change by its idempotency key, for a day.
	Answered map[string]answered `json:"answered"`
	NextID   int                 `json:"nextID"`
}

// Receiver is an http.Handler for Roster's webhook requests.
type Receiver struct {
	opts    Options
	mu      sync.Mutex
	st      state
	applied int
}

// Applied counts the changes applied, not counting repeated deliveries.
func (r *Receiver) Applied() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// New returns a Receiver, reading its file if there is one.
func New(opts Options) (*Receiver, error) {
	if opts.Tolerance == 0 {
		opts.Tolerance = 5 * time.Minute
	}
	if opts.PageSize == 0 {
		opts.PageSize = 100
	}
	r := &Receiver{opts: opts, st: state{Accounts: map[string]*Account{}, Groups: map[string]*Group{}, Answered: map[string]answered{}}}
	if opts.File != "" {
		data, err := os.ReadFile(opts.File)
		if err == nil {
			err = json.Unmarshal(data, &r.st)
		}
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	return r, nil
}

// request is what Roster sends; see docs/connectors/webhook.md.
type request struct {
	Version        string   `json:"version"`
	Type           string   `json:"type"`
	IdempotencyKey string   `json:"idempotencyKey"`
	Account        *Account `json:"account"`
	Group          *Group   `json:"group"`
	Members        *struct {
		Add    []string `json:"add"`
		Remove []string `json:"remove"`
	} `json:"members"`
	Cursor string `json:"cursor"`
	Match  *struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	} `json:"match"`
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 4<<20))
	if err != nil || req.Method != http.MethodPost {
		reply(w, http.StatusBadRequest, map[string]any{"error": "send a POST"})
		return
	}
	if err := r.verify(req.Header.Get("Roster-Signature"), body, time.Now()); err != nil {
		reply(w, http.StatusUnauthorized, map[string]any{"error": err.Error()})
		return
	}
	var in request
	if err := json.Unmarshal(body, &in); err != nil || in.Version != "roster.webhook/v1" {
		reply(w, http.StatusBadRequest, map[string]any{"error": "not a roster.webhook/v1 request"})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prior, ok := r.st.Answered[in.IdempotencyKey]; ok && isChange(in.Type) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(prior.Status)
		_, _ = w.Write(prior.Body) // a change delivered again: the same answer, applied once
		return
	}
	status, out := r.handle(in)
	data, _ := json.Marshal(out)
	if isChange(in.Type) {
		r.applied++
		r.st.Answered[in.IdempotencyKey] = answered{At: time.Now(), Status: status, Body: data}
		if r.applied%1000 == 0 {
			r.forgetOldAnswers()
		}
		if err := r.save(); err != nil {
			reply(w, http.StatusInternalServerError, map[string]any{"error": "could not save: " + err.Error()})
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// verify checks the Roster-Signature header: "t=<unix seconds>,v1=<hex>[,v1=<hex>]",
// each v1 an HMAC-SHA256 of "<t>.<body>". The timestamp must be within the tolerance,
// and one signature must match one of the secrets.
func (r *Receiver) verify(header string, body []byte, now time.Time) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sent, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("no signature")
	}
	if d := now.Sub(time.Unix(sent, 0)); d > r.opts.Tolerance || d < -r.opts.Tolerance {
		return fmt.Errorf("the signature's timestamp is %s away from this clock", d.Round(time.Second))
	}
	for _, secret := range r.opts.Secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(ts + "."))
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		for _, got := range sigs {
			if hmac.Equal([]byte(got), []byte(want)) {
				return nil
			}
		}
	}
	return fmt.Errorf("the signature does not match")
}

func isChange(kind string) bool { return kind != "capabilities" && !isRead(kind) }

func isRead(kind string) bool {
	return kind == "accounts.list" || kind == "accounts.lookup" || kind == "groups.list"
}

func (r *Receiver) handle(in request) (int, map[string]any) {
	if isRead(in.Type) && r.opts.NoList {
		return http.StatusNotImplemented, map[string]any{"error": "this receiver cannot list"}
	}
	switch in.Type {
	case "capabilities":
		return 200, map[string]any{"version": "roster.webhook/v1", "capabilities": map[string]bool{"list": !r.opts.NoList, "groups": true}}
	case "accounts.list":
		return 200, r.page(in.Cursor)
	case "accounts.lookup":
		if in.Match == nil {
			return 400, map[string]any{"error": "no match"}
		}
		if a := r.find(in.Match.Key, in.Match.Value); a != nil {
			return 200, map[string]any{"account": a}
		}
		return 404, map[string]any{"error": "no such account"}
	case "groups.list":
		groups := make([]*Group, 0, len(r.st.Groups))
		for _, g := range r.st.Groups {
			groups = append(groups, g)
		}
		return 200, map[string]any{"groups": groups}
	case "group.ensure":
		return r.ensureGroup(in)
	case "group.members":
		return r.changeMembers(in)
	}
	if in.Account == nil {
		return 400, map[string]any{"error": in.Type + " needs an account"}
	}
	return r.accountChange(in)
}

func (r *Receiver) accountChange(in request) (int, map[string]any) {
	a := in.Account
	if in.Type == "account.create" {
		name, _ := a.Attributes["userName"].(string)
		if existing := r.find("userName", name); existing != nil {
			return 409, map[string]any{"error": "userName " + name + " is taken", "account": existing}
		}
		r.st.NextID++
		a.ID = fmt.Sprintf("u%06d", r.st.NextID)
		r.st.Accounts[a.ID] = a
		return 201, map[string]any{"account": a}
	}
	held, ok := r.st.Accounts[a.ID]
	if !ok {
		return 404, map[string]any{"error": "no account " + a.ID}
	}
	switch in.Type {
	case "account.update", "account.reactivate":
		held.Attributes, held.Active = a.Attributes, a.Active
	case "account.deactivate":
		held.Active = false
	case "account.delete":
		delete(r.st.Accounts, a.ID)
		for _, g := range r.st.Groups {
			g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == a.ID })
		}
		return 200, map[string]any{}
	default:
		return 400, map[string]any{"error": "unknown type " + in.Type}
	}
	return 200, map[string]any{"account": held}
}

func (r *Receiver) ensureGroup(in request) (int, map[string]any) {
	if in.Group == nil || in.Group.DisplayName == "" {
		return 400, map[string]any{"error": "group.ensure needs a group's displayName"}
	}
	for _, g := range r.st.Groups {
		if strings.EqualFold(g.DisplayName, in.Group.DisplayName) {
			return 200, map[string]any{"group": g}
		}
	}
	r.st.NextID++
	g := &Group{ID: fmt.Sprintf("g%06d", r.st.NextID), DisplayName: in.Group.DisplayName}
	r.st.Groups[g.ID] = g
	return 201, map[string]any{"group": g}
}

func (r *Receiver) changeMembers(in request) (int, map[string]any) {
	if in.Group == nil || in.Members == nil {
		return 400, map[string]any{"error": "group.members needs a group and members"}
	}
	g, ok := r.st.Groups[in.Group.ID]
	if !ok {
		return 404, map[string]any{"error": "no group " + in.Group.ID}
	}
	g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return slices.Contains(in.Members.Remove, m) })
	for _, m := range in.Members.Add {
		if _, ok := r.st.Accounts[m]; ok && !slices.Contains(g.Members, m) {
			g.Members = append(g.Members, m)
		}
	}
	return 200, map[string]any{"group": g}
}

func (r *Receiver) find(key, value string) *Account {
	for _, a := range r.st.Accounts {
		if value != "" && strings.EqualFold(value, valueOf(a, key)) {
			return a
		}
	}
	return nil
}

func valueOf(a *Account, key string) string {
	if key != "email" {
		s, _ := a.Attributes[key].(string)
		return s
	}
	emails, _ := a.Attributes["emails"].([]any)
	for _, e := range emails {
		if m, ok := e.(map[string]any); ok {
			if s, _ := m["value"].(string); s != "" {
				return s
			}
		}
	}
	return ""
}

func (r *Receiver) page(cursor string) map[string]any {
	ids := make([]string, 0, len(r.st.Accounts))
	for id := range r.st.Accounts {
		if id > cursor {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := map[string]any{}
	accounts := []*Account{}
	for _, id := range ids[:min(len(ids), r.opts.PageSize)] {
		accounts = append(accounts, r.st.Accounts[id])
	}
	out["accounts"] = accounts
	if len(ids) > r.opts.PageSize {
		out["next"] = ids[r.opts.PageSize-1]
	}
	return out
}

// forgetOldAnswers drops answers older than a day: Roster delivers a change again
// within minutes, not days.
func (r *Receiver) forgetOldAnswers() {
	for key, a := range r.st.Answered {
		if time.Since(a.At) > 24*time.Hour {
			delete(r.st.Answered, key)
		}
	}
}

func (r *Receiver) save() error {
	if r.opts.File == "" {
		return nil
	}
	data, err := json.Marshal(r.st)
	if err != nil {
		return err
	}
	tmp := r.opts.File + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.opts.File)
}

// Accounts returns a copy of the accounts held, for tests and tools.
func (r *Receiver) Accounts() []Account {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Account, 0, len(r.st.Accounts))
	for _, a := range r.st.Accounts {
		out = append(out, *a)
	}
	return out
}

// Groups returns a copy of the groups held, for tests and tools.
func (r *Receiver) Groups() []Group {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Group, 0, len(r.st.Groups))
	for _, g := range r.st.Groups {
		c := *g
		c.Members = slices.Clone(g.Members)
		out = append(out, c)
	}
	return out
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
