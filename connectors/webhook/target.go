package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// Secret keys of the signing Secret.
const (
	KeySecret         = "secret"
	KeyPreviousSecret = "previousSecret"
)

// maxAnswerBytes bounds a receiver's answer; a listing page of 1,000 accounts is far less.
const maxAnswerBytes = 16 << 20

// memberBatch is the most member changes one group.members request carries.
const memberBatch = 1000

// NewFactory returns the TargetFactory for AppConnections with a webhook block.
func NewFactory() connectors.TargetFactory {
	return func(ctx context.Context, conn *identityv1alpha1.AppConnection, secrets connectors.SecretReader) (connectors.Target, error) {
		spec := conn.Spec.Webhook
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the AppConnection has no webhook block"}
		}
		signing, err := SigningSecrets(ctx, spec.SigningSecretRef.Name, secrets)
		if err != nil {
			return nil, err
		}
		opts := httpx.Options{App: conn.Namespace + "/" + conn.Name, MaxBodyBytes: maxAnswerBytes, Header: http.Header{}}
		httpx.ApplyRateLimit(&opts, conn.Spec.RateLimit)
		if spec.RequestTimeout != nil {
			opts.Timeout = spec.RequestTimeout.Duration
		}
		if err := httpx.FromSpec(ctx, &opts, spec.Headers, spec.TLS, secrets); err != nil {
			return nil, err
		}
		var journal connectors.Journal
		if k, ok := secrets.(connectors.JournalKeeper); ok {
			journal = k.Journal()
		}
		return New(Config{URL: spec.URL, App: opts.App, Secrets: signing, HTTP: opts, Journal: journal})
	}
}

// SigningSecrets reads the current secret and, when set, the previous one.
func SigningSecrets(ctx context.Context, name string, secrets connectors.SecretReader) ([][]byte, error) {
	current, err := secrets.SecretValue(ctx, name, KeySecret)
	if err != nil {
		return nil, err
	}
	if len(current) < 16 {
		return nil, &connectors.PermanentError{Message: fmt.Sprintf("the signing secret in Secret %s is shorter than 16 bytes", name)}
	}
	out := [][]byte{current}
	if previous, err := secrets.SecretValue(ctx, name, KeyPreviousSecret); err == nil && len(previous) > 0 {
		out = append(out, previous)
	} else if err != nil && !errors.Is(err, connectors.ErrSecretNotFound) {
		return nil, err
	}
	return out, nil
}

// Config configures a Target.
type Config struct {
	URL string
	// App names the AppConnection in every request.
	App string
	// Secrets sign every request: the current one first.
	Secrets [][]byte
	HTTP    httpx.Options
	// Journal keeps what was sent to a receiver that cannot list; nil keeps it in memory.
	Journal connectors.Journal
}

// Target provisions through a webhook receiver.
type Target struct {
	url, app string
	http     *httpx.Client
	keys     changeKeys

	mu   sync.Mutex
	caps *Capabilities
	sent *sentState // what was sent, for a receiver that cannot list; nil otherwise
	// journal backs sent.
	journal connectors.Journal
}

var _ connectors.GroupTarget = (*Target)(nil)

// New returns a Target.
func New(cfg Config) (*Target, error) {
	secrets := cfg.Secrets
	cfg.HTTP.Auth = func(r *http.Request) error {
		body, err := requestBody(r)
		if err != nil {
			return err
		}
		r.Header.Set(HeaderSignature, Sign(time.Now(), body, secrets...))
		return nil
	}
	client, err := httpx.New(cfg.HTTP)
	if err != nil {
		return nil, err
	}
	return &Target{url: cfg.URL, app: cfg.App, http: client, journal: cfg.Journal, keys: changeKeys{pending: map[string]string{}}}, nil
}

func requestBody(r *http.Request) ([]byte, error) {
	if r.GetBody == nil {
		return nil, nil
	}
	rc, err := r.GetBody()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Validate asks the receiver what it implements.
func (t *Target) Validate(ctx context.Context) (connectors.Capabilities, error) {
	var a Answer
	if err := t.send(ctx, Request{Type: TypeCapabilities}, &a); err != nil {
		return connectors.Capabilities{}, err
	}
	if a.Version != Version || a.Capabilities == nil {
		return connectors.Capabilities{}, &connectors.PermanentError{
			Message: fmt.Sprintf("the receiver answered capabilities for protocol %q, not %s with its capabilities", a.Version, Version)}
	}
	caps := *a.Capabilities
	if err := t.setCapabilities(ctx, caps); err != nil {
		return connectors.Capabilities{}, err
	}
	return connectors.Capabilities{Groups: caps.Groups, Filter: caps.List, CursorPaging: caps.List, MemberBatch: memberBatch}, nil
}

// setCapabilities records what the receiver implements; one that cannot list is
// observed through what was sent, read back from the journal once.
func (t *Target) setCapabilities(ctx context.Context, caps Capabilities) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.caps = &caps
	if caps.List || t.sent != nil {
		return nil
	}
	sent, err := loadSent(ctx, t.journal)
	if err != nil {
		return fmt.Errorf("reading what was sent to the receiver: %w", err)
	}
	t.sent = sent
	return nil
}

// observed is what was sent, for a receiver that cannot list; nil for one that lists.
func (t *Target) observed(ctx context.Context) (*sentState, error) {
	t.mu.Lock()
	known := t.caps != nil
	t.mu.Unlock()
	if !known {
		if _, err := t.Validate(ctx); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent, nil
}

// Lookup finds an account by key.
func (t *Target) Lookup(ctx context.Context, key connectors.Key) (connectors.Account, error) {
	sent, err := t.observed(ctx)
	if err != nil || sent != nil {
		if err != nil {
			return connectors.Account{}, err
		}
		return sent.lookup(key)
	}
	var a Answer
	if err := t.send(ctx, Request{Type: TypeAccountsLookup, Match: &Match{Key: matchKeys[key.Kind], Value: key.Value}}, &a); err != nil {
		return connectors.Account{}, err
	}
	if a.Account == nil || !key.Matches(fromAccount(*a.Account)) {
		return connectors.Account{}, connectors.ErrNotFound // a receiver's loose match is no match
	}
	return fromAccount(*a.Account), nil
}

// ListAccounts returns one page of accounts.
func (t *Target) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	sent, err := t.observed(ctx)
	if err != nil || sent != nil {
		if err != nil {
			return connectors.AccountPage{}, err
		}
		return sent.accountPage(cursor), nil
	}
	var a Answer
	if err := t.send(ctx, Request{Type: TypeAccountsList, Cursor: cursor}, &a); err != nil {
		return connectors.AccountPage{}, err
	}
	if a.Next != "" && a.Next == cursor {
		return connectors.AccountPage{}, &connectors.PermanentError{Message: "the receiver answered a listing with the cursor it was asked for: it would never end"}
	}
	page := connectors.AccountPage{Next: a.Next, Accounts: make([]connectors.Account, 0, len(a.Accounts))}
	for _, acc := range a.Accounts {
		if acc.ID != "" {
			page.Accounts = append(page.Accounts, fromAccount(acc))
		}
	}
	return page, nil
}

// Create sends account.create; a receiver that answers without an id gets the
// account's userName as its id.
func (t *Target) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	var a Answer
	err := t.change(ctx, Request{Type: TypeAccountCreate, Account: toAccount(desired)}, &a)
	sent, oerr := t.observed(ctx)
	if oerr != nil {
		return connectors.Account{}, oerr
	}
	if errors.Is(err, connectors.ErrConflict) && a.Account != nil && a.Account.ID != "" && sent != nil {
		// The receiver named what holds the key: kept, the engine's lookup finds it next.
		return connectors.Account{}, errors.Join(err, sent.put(ctx, fromAccount(*a.Account)))
	}
	if err != nil {
		return connectors.Account{}, err
	}
	created := desired
	switch {
	case a.Account != nil && a.Account.ID != "":
		created.ID = a.Account.ID
	default:
		created.ID = desired.UserName()
	}
	if created.ID == "" {
		return connectors.Account{}, &connectors.PermanentError{Message: "the receiver created the account but named no id, and it has no userName to use instead"}
	}
	return created, sent.put(ctx, created)
}

// Update sends account.update, or account.reactivate when it makes the account active.
func (t *Target) Update(ctx context.Context, current, desired connectors.Account) (connectors.Account, error) {
	kind := TypeAccountUpdate
	if desired.Active && !current.Active {
		kind = TypeAccountReactivate
	}
	desired.ID = current.ID
	req := Request{Type: kind, Account: toAccount(desired), Changed: connectors.Differences(desired.Attributes, current.Attributes)}
	return t.accountChange(ctx, req, desired)
}

// Deactivate sends account.deactivate.
func (t *Target) Deactivate(ctx context.Context, current connectors.Account) (connectors.Account, error) {
	current.Active = false
	return t.accountChange(ctx, Request{Type: TypeAccountDeactivate, Account: toAccount(current)}, current)
}

func (t *Target) accountChange(ctx context.Context, req Request, want connectors.Account) (connectors.Account, error) {
	err := t.change(ctx, req, nil)
	sent, oerr := t.observed(ctx)
	switch {
	case oerr != nil:
		return connectors.Account{}, oerr
	case errors.Is(err, connectors.ErrNotFound):
		return connectors.Account{}, errors.Join(err, sent.remove(ctx, accountKey(want.ID))) // gone from the app: made again if still wanted
	case err != nil:
		return connectors.Account{}, err
	}
	return want, sent.put(ctx, want)
}

// Delete sends account.delete; an account the receiver does not know is deleted.
func (t *Target) Delete(ctx context.Context, id string) error {
	err := t.change(ctx, Request{Type: TypeAccountDelete, Account: &Account{ID: id}}, nil)
	if err != nil && !errors.Is(err, connectors.ErrNotFound) {
		return err
	}
	sent, err := t.observed(ctx)
	if err != nil {
		return err
	}
	return sent.remove(ctx, accountKey(id))
}

// ListGroups returns one page of groups with their members.
func (t *Target) ListGroups(ctx context.Context, cursor string) (connectors.GroupPage, error) {
	sent, err := t.observed(ctx)
	if err != nil || sent != nil {
		if err != nil {
			return connectors.GroupPage{}, err
		}
		return sent.groupPage(), nil
	}
	var a Answer
	if err := t.send(ctx, Request{Type: TypeGroupsList, Cursor: cursor}, &a); err != nil {
		return connectors.GroupPage{}, err
	}
	if a.Next != "" && a.Next == cursor {
		return connectors.GroupPage{}, &connectors.PermanentError{Message: "the receiver answered a group listing with the cursor it was asked for: it would never end"}
	}
	page := connectors.GroupPage{Next: a.Next}
	for _, g := range a.Groups {
		page.Groups = append(page.Groups, connectors.Group{ID: g.ID, DisplayName: g.DisplayName, Members: g.Members})
	}
	return page, nil
}

// EnsureGroup sends group.ensure; the receiver answers the group, made if it was not.
func (t *Target) EnsureGroup(ctx context.Context, displayName string) (connectors.Group, error) {
	sent, err := t.observed(ctx)
	if err != nil {
		return connectors.Group{}, err
	}
	if g, ok := sent.groupNamed(displayName); ok {
		return g, nil
	}
	var a Answer
	if err := t.change(ctx, Request{Type: TypeGroupEnsure, Group: &Group{DisplayName: displayName}}, &a); err != nil {
		return connectors.Group{}, err
	}
	g := connectors.Group{ID: displayName, DisplayName: displayName}
	if a.Group != nil && a.Group.ID != "" {
		g.ID = a.Group.ID
	}
	return g, sent.putGroup(ctx, g)
}

// ChangeMembers sends group.members, up to memberBatch changes a request.
func (t *Target) ChangeMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	for len(add)+len(remove) > 0 {
		n := min(len(add), memberBatch)
		m := min(len(remove), memberBatch-n)
		req := Request{Type: TypeGroupMembers, Group: &Group{ID: group.ID, DisplayName: group.DisplayName}, Members: &Members{Add: add[:n], Remove: remove[:m]}}
		if err := t.change(ctx, req, nil); err != nil {
			return err
		}
		sent, err := t.observed(ctx)
		if err != nil {
			return err
		}
		if err := sent.changeMembers(ctx, group, add[:n], remove[:m]); err != nil {
			return err
		}
		add, remove = add[n:], remove[m:]
	}
	return nil
}

// change sends a change with its idempotency key: the same for every delivery of the
// same change until one lands.
func (t *Target) change(ctx context.Context, req Request, answer *Answer) error {
	digest, key := t.keys.keyFor(req)
	req.IdempotencyKey = key
	err := t.send(ctx, req, answer)
	if err == nil || connectors.IsPermanent(err) || errors.Is(err, connectors.ErrConflict) || errors.Is(err, connectors.ErrNotFound) {
		t.keys.landed(digest)
	}
	return err
}

// send posts one request and reads the answer into answer (nil: ignored).
func (t *Target) send(ctx context.Context, req Request, answer *Answer) error {
	req.Version, req.App = Version, t.app
	if req.IdempotencyKey == "" {
		req.IdempotencyKey = newKey()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return &connectors.PermanentError{Message: err.Error()}
	}
	header := http.Header{"Content-Type": {"application/json"}, HeaderIdempotencyKey: {req.IdempotencyKey}}
	resp, err := t.http.Do(ctx, http.MethodPost, t.url, header, body)
	if err != nil {
		return fmt.Errorf("%s: %w", req.Type, err)
	}
	var a Answer
	if len(bytes.TrimSpace(resp.Body)) > 0 {
		if jerr := json.Unmarshal(resp.Body, &a); jerr != nil && resp.Status < 300 {
			return &connectors.TransientError{Err: fmt.Errorf("%s: the receiver's answer is not the protocol's JSON: %v", req.Type, jerr)}
		}
	}
	if answer != nil {
		*answer = a
	}
	return statusError(req.Type, resp.Status, a.Error)
}

// statusError maps a receiver's status to the errors the engine decides on.
func statusError(kind string, status int, said string) error {
	if status < 300 {
		return nil
	}
	if len(said) > 300 {
		said = said[:300] + "…"
	}
	msg := fmt.Sprintf("%s: the receiver answered %d", kind, status)
	if said != "" {
		msg += ": " + said
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden:
		return &connectors.PermanentError{Status: status, Message: msg + " (is the signing secret the receiver's?)", Err: connectors.ErrUnauthorized}
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", msg, connectors.ErrNotFound)
	case http.StatusConflict:
		return fmt.Errorf("%s: %w", msg, connectors.ErrConflict)
	}
	return &connectors.PermanentError{Status: status, Message: msg}
}

// changeKeys hands out idempotency keys: one per change until it lands, so that a
// change retried after an unknown outcome is the same change to the receiver.
type changeKeys struct {
	mu      sync.Mutex
	pending map[string]string // by digest of the change
}

// maxPendingKeys bounds the keys of changes that have not landed.
const maxPendingKeys = 100_000

func (k *changeKeys) keyFor(req Request) (digest, key string) {
	body, _ := json.Marshal(req)
	sum := sha256.Sum256(body)
	digest = string(sum[:])
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.pending[digest]; ok {
		return digest, key
	}
	if len(k.pending) >= maxPendingKeys {
		clear(k.pending)
	}
	key = newKey()
	k.pending[digest] = key
	return digest, key
}

func (k *changeKeys) landed(digest string) {
	k.mu.Lock()
	delete(k.pending, digest)
	k.mu.Unlock()
}

func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
