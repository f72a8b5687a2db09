package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rosterhq/roster/connectors"
	"github.com/rosterhq/roster/connectors/httpx"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is the app's SCIM base, the URL /Users and /Groups are under.
	BaseURL string
	Profile Profile
	HTTP    *httpx.Client
	// MemberBatchSize overrides the profile's.
	MemberBatchSize int
}

// Client provisions accounts into a SCIM 2.0 app. It implements connectors.Target.
type Client struct {
	base    string
	http    *httpx.Client
	profile Profile

	mu         sync.Mutex
	discovered bool
	spc        ServiceProviderConfig
}

var _ connectors.GroupTarget = (*Client)(nil)

// NewClient returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, &connectors.PermanentError{Message: fmt.Sprintf("baseURL %q is not an http(s) URL", cfg.BaseURL)}
	}
	p := cfg.Profile
	if p.Name == "" {
		p = Profiles["generic"]
	}
	if cfg.MemberBatchSize > 0 {
		p.MemberBatchSize = cfg.MemberBatchSize
	}
	return &Client{base: strings.TrimSuffix(cfg.BaseURL, "/"), http: cfg.HTTP, profile: p}, nil
}

// Validate reads /ServiceProviderConfig and makes one authenticated read of Users and of
// Groups, which proves the credentials and finds out whether the app has groups.
func (c *Client) Validate(ctx context.Context) (connectors.Capabilities, error) {
	spc, err := c.discover(ctx)
	if err != nil {
		return connectors.Capabilities{}, err
	}
	if _, err := c.get(ctx, "/Users?"+url.Values{"startIndex": {"1"}, "count": {"1"}}.Encode()); err != nil {
		return connectors.Capabilities{}, fmt.Errorf("listing users: %w", err)
	}
	caps := connectors.Capabilities{
		Patch:        c.usePatch(),
		Filter:       bool(spc.Filter.Supported),
		ETag:         bool(spc.ETag.Supported),
		Bulk:         bool(spc.Bulk.Supported),
		CursorPaging: c.paging() == PagingCursor,
		MaxResults:   spc.Filter.MaxResults,
		Groups:       true,
	}
	if caps.Patch {
		caps.MemberBatch = max(1, c.profile.MemberBatchSize)
	}
	if _, err := c.get(ctx, "/Groups?"+url.Values{"startIndex": {"1"}, "count": {"1"}, "excludedAttributes": {"members"}}.Encode()); err != nil {
		if !errors.Is(err, connectors.ErrNotFound) && !errors.Is(err, connectors.ErrUnsupported) {
			return connectors.Capabilities{}, fmt.Errorf("listing groups: %w", err)
		}
		caps.Groups = false
	}
	return caps, nil
}

// discover reads /ServiceProviderConfig once. An app without one is taken to follow
// the RFC's defaults: PATCH and filters supported, no ETags, index paging. A failure is
// not remembered: the next call tries again.
func (c *Client) discover(ctx context.Context) (ServiceProviderConfig, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.discovered {
		return c.spc, nil
	}
	spc := ServiceProviderConfig{Patch: Supported{true}, Filter: FilterConfig{Supported: true}}
	body, err := c.get(ctx, "/ServiceProviderConfig")
	switch {
	case errors.Is(err, connectors.ErrNotFound):
	case err != nil:
		return ServiceProviderConfig{}, fmt.Errorf("reading /ServiceProviderConfig: %w", err)
	default:
		if err := json.Unmarshal(body, &spc); err != nil {
			return ServiceProviderConfig{}, &connectors.PermanentError{Message: "/ServiceProviderConfig is not valid JSON: " + err.Error()}
		}
	}
	c.spc, c.discovered = spc, true
	return spc, nil
}

func (c *Client) usePatch() bool {
	switch c.profile.Update {
	case UpdatePatch:
		return true
	case UpdatePut:
		return false
	}
	return bool(c.spc.Patch.Supported)
}

// paging is what the app says it offers (RFC 9865 pagination in
// /ServiceProviderConfig), the profile's choice between what it offers, and the
// profile's knowledge only where the app says nothing.
func (c *Client) paging() string {
	p := c.spc.Pagination
	if p == nil {
		if c.profile.Paging == PagingCursor {
			return PagingCursor
		}
		return PagingIndex
	}
	if bool(p.Cursor) && (c.profile.Paging == PagingCursor || !bool(p.Index)) {
		return PagingCursor
	}
	return PagingIndex
}

func (c *Client) pageSize() int {
	size := c.profile.PageSize
	if size <= 0 {
		size = 100
	}
	if m := c.spc.Filter.MaxResults; m > 0 && m < size {
		size = m
	}
	return size
}

// Lookup finds an account by key. The app's filter narrows the search; the match is
// confirmed here ignoring letter case. When the app's filter may compare with letter
// case (the profile does not vouch for it) or the app refuses the filter, a miss is
// confirmed by listing.
func (c *Client) Lookup(ctx context.Context, key connectors.Key) (connectors.Account, error) {
	attr := map[connectors.KeyKind]string{
		connectors.KeyUserName: "userName", connectors.KeyExternalID: "externalId", connectors.KeyEmail: "emails.value",
	}[key.Kind]
	if attr == "" {
		return connectors.Account{}, &connectors.PermanentError{Message: fmt.Sprintf("unknown key kind %q", key.Kind)}
	}
	account, answered, err := c.lookupByFilter(ctx, attr, key)
	switch {
	case err != nil:
		return connectors.Account{}, err
	case account.ID != "":
		return account, nil
	case answered && c.profile.TrustFilterCase:
		return connectors.Account{}, connectors.ErrNotFound
	}
	return c.scan(ctx, key)
}

// lookupByFilter asks the app's filter; answered is false when the app refused it.
func (c *Client) lookupByFilter(ctx context.Context, attr string, key connectors.Key) (connectors.Account, bool, error) {
	if _, err := c.discover(ctx); err != nil {
		return connectors.Account{}, false, err
	}
	query := url.Values{"filter": {Eq(attr, key.Value)}, "startIndex": {"1"}, "count": {"10"}}
	body, err := c.get(ctx, "/Users?"+query.Encode())
	switch {
	case errors.Is(err, connectors.ErrNotFound): // Okta's convention: 404 for no match
		return connectors.Account{}, true, nil
	case connectors.IsPermanent(err) && !errors.Is(err, connectors.ErrUnauthorized):
		return connectors.Account{}, false, nil
	case err != nil:
		return connectors.Account{}, false, err
	}
	list, err := decodeList(body)
	if err != nil {
		return connectors.Account{}, false, err
	}
	for _, r := range list.Resources {
		if a := accountFrom(r); key.Matches(a) {
			return a, true, nil
		}
	}
	return connectors.Account{}, true, nil
}

// scan looks an account up by reading every page, keeping only the accounts that match.
func (c *Client) scan(ctx context.Context, key connectors.Key) (connectors.Account, error) {
	matches, err := connectors.ListAll(ctx, "accounts", func(ctx context.Context, cursor string) ([]connectors.Account, string, error) {
		page, err := c.ListAccounts(ctx, cursor)
		return slices.DeleteFunc(page.Accounts, func(a connectors.Account) bool { return !key.Matches(a) }), page.Next, err
	})
	if err != nil {
		return connectors.Account{}, err
	}
	if len(matches) == 0 {
		return connectors.Account{}, connectors.ErrNotFound
	}
	return matches[0], nil
}

// ListAccounts returns one page of users.
func (c *Client) ListAccounts(ctx context.Context, cursor string) (connectors.AccountPage, error) {
	resources, next, err := c.listPage(ctx, Users, cursor, nil)
	if err != nil {
		return connectors.AccountPage{}, err
	}
	page := connectors.AccountPage{Next: next, Accounts: make([]connectors.Account, len(resources))}
	for i, r := range resources {
		page.Accounts[i] = accountFrom(r)
	}
	return page, nil
}

// listPage reads one page. Cursors are "i:<startIndex>" for index paging and
// "c:<cursor>" for cursor paging.
func (c *Client) listPage(ctx context.Context, typ, cursor string, extra url.Values) ([]Resource, string, error) {
	if _, err := c.discover(ctx); err != nil {
		return nil, "", err
	}
	q := url.Values{"count": {strconv.Itoa(c.pageSize())}}
	for k, v := range extra {
		q[k] = v
	}
	cursorPaging := c.paging() == PagingCursor
	start := 1
	switch {
	case cursorPaging:
		q.Set("cursor", strings.TrimPrefix(cursor, "c:"))
	case cursor != "":
		n, err := strconv.Atoi(strings.TrimPrefix(cursor, "i:"))
		if err != nil {
			return nil, "", &connectors.PermanentError{Message: fmt.Sprintf("bad page cursor %q", cursor)}
		}
		start = n
	}
	if !cursorPaging {
		q.Set("startIndex", strconv.Itoa(start))
	}
	body, err := c.get(ctx, "/"+typ+"?"+q.Encode())
	if err != nil {
		return nil, "", err
	}
	list, err := decodeList(body)
	if err != nil {
		return nil, "", err
	}
	if cursorPaging {
		if list.NextCursor == "" {
			return list.Resources, "", nil
		}
		return list.Resources, "c:" + list.NextCursor, nil
	}
	// Honour what the server served, which may be fewer than asked (itemsPerPage).
	served := list.ItemsPerPage
	if served <= 0 || served > len(list.Resources) {
		served = len(list.Resources)
	}
	next := start + served
	if served == 0 || (list.TotalResults > 0 && next > list.TotalResults) {
		return list.Resources, "", nil
	}
	return list.Resources, "i:" + strconv.Itoa(next), nil
}

// Create creates a user. A conflict comes back as connectors.ErrConflict.
func (c *Client) Create(ctx context.Context, desired connectors.Account) (connectors.Account, error) {
	r, err := c.userResource(desired.Attributes, desired.Active)
	if err != nil {
		return connectors.Account{}, err
	}
	body, err := c.send(ctx, http.MethodPost, "/Users", "", r)
	if err != nil {
		return connectors.Account{}, err
	}
	created, _, err := accountFromBody(body, connectors.Account{})
	return created, err
}

// Update changes current into desired: a PATCH of the changed attributes, or a PUT of
// the whole resource (every attribute the app holds kept) where PATCH is not available.
func (c *Client) Update(ctx context.Context, current, desired connectors.Account) (connectors.Account, error) {
	if _, err := c.discover(ctx); err != nil {
		return connectors.Account{}, err
	}
	out := c.outgoing(desired.Attributes)
	changed := connectors.Differences(out, current.Attributes)
	if len(changed) == 0 && current.Active == desired.Active {
		return current, nil
	}
	if !c.usePatch() {
		return c.put(ctx, current, desired.Attributes, desired.Active)
	}
	var ops []PatchOperation
	for _, path := range changed {
		if connectors.IsEmpty(out[path]) {
			ops = append(ops, PatchOperation{Op: "remove", Path: path})
		} else {
			ops = append(ops, PatchOperation{Op: "replace", Path: path, Value: out[path]})
		}
	}
	if current.Active != desired.Active {
		ops = append(ops, PatchOperation{Op: "replace", Path: "active", Value: desired.Active})
	}
	patched, answered, err := c.patchUser(ctx, current, ops, desired)
	if err != nil || c.profile.Update != UpdateAuto || !answered {
		return patched, err
	}
	kept := map[string]any{}
	for _, path := range changed {
		kept[path] = out[path]
	}
	if len(connectors.Differences(kept, patched.Attributes)) == 0 {
		return patched, nil
	}
	// The app answered without what was patched (some ignore sub-attribute paths):
	// replace the whole resource, once.
	return c.put(ctx, patched, desired.Attributes, desired.Active)
}

// Deactivate sets active=false and keeps the account.
func (c *Client) Deactivate(ctx context.Context, current connectors.Account) (connectors.Account, error) {
	return c.setActive(ctx, current, false)
}

func (c *Client) setActive(ctx context.Context, current connectors.Account, active bool) (connectors.Account, error) {
	if current.Active == active {
		return current, nil
	}
	if _, err := c.discover(ctx); err != nil {
		return connectors.Account{}, err
	}
	// Zoom and others that update by PUT still take PATCH for active; a server that
	// refuses PATCH altogether gets the whole resource back with active changed.
	if bool(c.spc.Patch.Supported) || c.profile.Update == UpdatePatch {
		desired := current
		desired.Active = active
		a, _, err := c.patchUser(ctx, current, []PatchOperation{{Op: "replace", Path: "active", Value: active}}, desired)
		if err == nil || !errors.Is(err, connectors.ErrUnsupported) {
			return a, err
		}
	}
	return c.put(ctx, current, nil, active)
}

// patchUser sends a PATCH; answered says whether the account returned is the app's
// answer (200) or what was sent (204 echoes nothing).
func (c *Client) patchUser(ctx context.Context, current connectors.Account, ops []PatchOperation, desired connectors.Account) (acc connectors.Account, answered bool, err error) {
	body, err := c.send(ctx, http.MethodPatch, "/Users/"+url.PathEscape(current.ID), c.ifMatch(current.Version), NewPatch(ops...))
	if err != nil {
		return connectors.Account{}, false, c.notFoundMeansInactive(err, current)
	}
	desired.ID, desired.Version = current.ID, ""
	return accountFromBody(body, desired)
}

// put replaces the whole user: what the app holds, overlaid with the desired attributes.
func (c *Client) put(ctx context.Context, current connectors.Account, desired map[string]any, active bool) (connectors.Account, error) {
	attrs := map[string]any{}
	for k, v := range current.Attributes {
		if !strings.EqualFold(k, "groups") && !strings.HasPrefix(strings.ToLower(k), "groups.") {
			attrs[k] = v
		}
	}
	for k, v := range c.outgoing(desired) {
		if connectors.IsEmpty(v) {
			delete(attrs, k)
		} else {
			attrs[k] = v
		}
	}
	r, err := c.userResource(attrs, active)
	if err != nil {
		return connectors.Account{}, err
	}
	r["id"] = current.ID
	body, err := c.send(ctx, http.MethodPut, "/Users/"+url.PathEscape(current.ID), c.ifMatch(current.Version), r)
	if err != nil {
		return connectors.Account{}, c.notFoundMeansInactive(err, current)
	}
	acc, _, err := accountFromBody(body, connectors.Account{ID: current.ID, Active: active, Attributes: attrs})
	return acc, err
}

// notFoundMeansInactive explains a 404 from an app that hides deactivated accounts.
func (c *Client) notFoundMeansInactive(err error, current connectors.Account) error {
	if c.profile.DeactivatedNotFound && errors.Is(err, connectors.ErrNotFound) && current.ID != "" {
		return &connectors.PermanentError{Status: http.StatusNotFound, Err: connectors.ErrUnsupported,
			Message: fmt.Sprintf("%s hides deactivated accounts (404); reactivate %s in the app's administration first", c.profile.Name, current.UserName())}
	}
	return err
}

// Delete deletes a user; a user that is already gone is fine.
func (c *Client) Delete(ctx context.Context, id string) error {
	_, err := c.send(ctx, http.MethodDelete, "/Users/"+url.PathEscape(id), "", nil)
	if errors.Is(err, connectors.ErrNotFound) {
		return nil
	}
	return err
}

// ListGroups returns one page of groups with their members.
func (c *Client) ListGroups(ctx context.Context, cursor string) (connectors.GroupPage, error) {
	resources, next, err := c.listPage(ctx, Groups, cursor, nil)
	if err != nil {
		return connectors.GroupPage{}, err
	}
	page := connectors.GroupPage{Next: next, Groups: make([]connectors.Group, len(resources))}
	for i, r := range resources {
		page.Groups[i] = groupFrom(r)
	}
	return page, nil
}

// EnsureGroup finds a group by display name (without reading its members) or creates
// it with no members.
func (c *Client) EnsureGroup(ctx context.Context, displayName string) (connectors.Group, error) {
	if g, err := c.findGroup(ctx, displayName); !errors.Is(err, connectors.ErrNotFound) {
		return g, err
	}
	r := Resource{"schemas": []any{SchemaGroup}, "displayName": displayName, "members": []any{}}
	body, err := c.send(ctx, http.MethodPost, "/Groups", "", r)
	if errors.Is(err, connectors.ErrConflict) {
		return c.findGroup(ctx, displayName)
	}
	if err != nil {
		return connectors.Group{}, err
	}
	var created Resource
	if err := json.Unmarshal(body, &created); err != nil {
		return connectors.Group{}, fmt.Errorf("reading the created group: %w", err)
	}
	g := groupFrom(created)
	g.Members = []string{}
	return g, nil
}

func (c *Client) findGroup(ctx context.Context, displayName string) (connectors.Group, error) {
	q := url.Values{"filter": {Eq("displayName", displayName)}, "excludedAttributes": {"members"}}
	body, err := c.get(ctx, "/Groups?"+q.Encode())
	if err != nil {
		return connectors.Group{}, err
	}
	list, err := decodeList(body)
	if err != nil {
		return connectors.Group{}, err
	}
	for _, r := range list.Resources {
		if g := groupFrom(r); strings.EqualFold(g.DisplayName, displayName) {
			g.Members = nil // not read: unknown
			return g, nil
		}
	}
	return connectors.Group{}, connectors.ErrNotFound
}

// ChangeMembers sends member changes in PATCH requests of at most MemberBatchSize
// changes, or one PUT of the whole member list where PATCH is not available.
func (c *Client) ChangeMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	if _, err := c.discover(ctx); err != nil {
		return err
	}
	if !bool(c.spc.Patch.Supported) {
		return c.putMembers(ctx, group, add, remove)
	}
	batch := max(1, c.profile.MemberBatchSize)
	changes := make([]PatchOperation, 0, len(add)+len(remove))
	for _, id := range remove {
		changes = append(changes, PatchOperation{Op: "remove", Path: `members[value eq ` + quote(id) + `]`})
	}
	for _, id := range add {
		changes = append(changes, PatchOperation{Op: "add", Path: "members", Value: []any{map[string]any{"value": id}}})
	}
	for start := 0; start < len(changes); start += batch {
		ops := mergeAdds(changes[start:min(start+batch, len(changes))])
		if _, err := c.send(ctx, http.MethodPatch, "/Groups/"+url.PathEscape(group.ID), "", NewPatch(ops...)); err != nil {
			return fmt.Errorf("changing members of group %s: %w", group.DisplayName, err)
		}
	}
	return nil
}

// mergeAdds folds the add operations of one batch into a single add of many members.
func mergeAdds(ops []PatchOperation) []PatchOperation {
	var out []PatchOperation
	var members []any
	for _, op := range ops {
		if op.Op == "add" {
			members = append(members, op.Value.([]any)...)
			continue
		}
		out = append(out, op)
	}
	if len(members) > 0 {
		out = append(out, PatchOperation{Op: "add", Path: "members", Value: members})
	}
	return out
}

// putMembers changes members where PATCH is not available: a PUT of the whole list.
// Without ETags to catch a stale list, the list is read first, so that no member added
// meanwhile is lost.
func (c *Client) putMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	if group.Members == nil || !bool(c.spc.ETag.Supported) {
		fresh, err := c.readGroup(ctx, group.ID)
		if err != nil {
			return err
		}
		group = fresh
	}
	err := c.putGroup(ctx, group, add, remove)
	var stale *connectors.TransientError
	if errors.As(err, &stale) && stale.Status == http.StatusPreconditionFailed {
		// The group changed since it was read: read it again and apply the change to that.
		fresh, err := c.readGroup(ctx, group.ID)
		if err != nil {
			return err
		}
		return c.putGroup(ctx, fresh, add, remove)
	}
	return err
}

func (c *Client) readGroup(ctx context.Context, id string) (connectors.Group, error) {
	body, err := c.get(ctx, "/Groups/"+url.PathEscape(id))
	if err != nil {
		return connectors.Group{}, err
	}
	var r Resource
	if err := json.Unmarshal(body, &r); err != nil {
		return connectors.Group{}, fmt.Errorf("reading group %s: %w", id, err)
	}
	return groupFrom(r), nil
}

// putGroup replaces the group's member list with its members plus add minus remove.
func (c *Client) putGroup(ctx context.Context, group connectors.Group, add, remove []string) error {
	removed := map[string]bool{}
	for _, id := range remove {
		removed[id] = true
	}
	seen := map[string]bool{}
	list := make([]any, 0, len(group.Members)+len(add))
	for _, id := range append(slices.Clone(group.Members), add...) {
		if !removed[id] && !seen[id] {
			seen[id] = true
			list = append(list, map[string]any{"value": id})
		}
	}
	r := Resource{"schemas": []any{SchemaGroup}, "id": group.ID, "displayName": group.DisplayName, "members": list}
	_, err := c.send(ctx, http.MethodPut, "/Groups/"+url.PathEscape(group.ID), c.ifMatch(group.Version), r)
	return err
}

// outgoing adapts desired attributes to the profile (one email where only one is kept).
func (c *Client) outgoing(attrs map[string]any) map[string]any {
	if !c.profile.SingleEmail {
		return attrs
	}
	emails, ok := attrs[connectors.AttrEmails].([]any)
	if !ok || len(emails) <= 1 {
		return attrs
	}
	out := make(map[string]any, len(attrs))
	for k, v := range attrs {
		out[k] = v
	}
	primary := connectors.Account{Attributes: attrs}.Email()
	for _, e := range emails {
		if m, _ := e.(map[string]any); m["value"] == primary {
			out[connectors.AttrEmails] = []any{e}
			break
		}
	}
	return out
}

func (c *Client) userResource(attrs map[string]any, active bool) (Resource, error) {
	out := map[string]any{}
	for k, v := range c.outgoing(attrs) {
		if !connectors.IsEmpty(v) {
			out[k] = v
		}
	}
	r, err := Unflatten(out)
	if err != nil {
		return nil, &connectors.PermanentError{Message: err.Error()}
	}
	schemas := []any{SchemaUser}
	if _, ok := findKey(r, SchemaEnterpriseUser); ok {
		schemas = append(schemas, SchemaEnterpriseUser)
	}
	r["schemas"] = schemas
	r["active"] = active
	return r, nil
}

func accountFrom(r Resource) connectors.Account {
	return connectors.Account{ID: r.ID(), Active: r.Active(), Version: r.Version(), Attributes: r.Flatten()}
}

// accountFromBody reads the app's answer to a write it carried out; answered says
// whether the account returned is the app's answer or, for an empty answer to a write
// on an existing account (a 204), what was sent. An answer that cannot be read (cut,
// empty for a create, without an id) leaves the write done and its result unknown: the
// error is temporary, so that a create is looked up before it is sent again (an app
// need not refuse a second account of the same name) and an update is sent again.
func accountFromBody(body []byte, sent connectors.Account) (acc connectors.Account, answered bool, err error) {
	unread := func(why string) error {
		return &connectors.TransientError{Err: errors.New("the app did the write but its answer cannot be read: " + why)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if sent.ID != "" {
			return sent, false, nil
		}
		return connectors.Account{}, false, unread("it has no body")
	}
	var r Resource
	if err := json.Unmarshal(body, &r); err != nil {
		return connectors.Account{}, false, unread("it is not a SCIM resource: " + err.Error())
	}
	if r.ID() == "" {
		return connectors.Account{}, false, unread("it has no id")
	}
	return accountFrom(r), true, nil
}

func groupFrom(r Resource) connectors.Group {
	g := connectors.Group{ID: r.ID(), Version: r.Version()}
	g.DisplayName, _ = r.lookup("displayName").(string)
	members, _ := r.lookup("members").([]any)
	g.Members = make([]string, 0, len(members))
	for _, m := range members {
		if mm, ok := m.(map[string]any); ok {
			if id, ok := Resource(mm).lookup("value").(string); ok {
				g.Members = append(g.Members, id)
			}
		}
	}
	return g
}

func decodeList(body []byte) (ListResponse, error) {
	var list ListResponse
	if err := json.Unmarshal(body, &list); err != nil {
		return list, &connectors.PermanentError{Message: "the app's answer is not a SCIM ListResponse: " + err.Error()}
	}
	return list, nil
}

// ifMatch is the version to send in If-Match: only to apps that support ETags.
func (c *Client) ifMatch(version string) string {
	if bool(c.spc.ETag.Supported) {
		return version
	}
	return ""
}

func (c *Client) get(ctx context.Context, path string) ([]byte, error) {
	return c.send(ctx, http.MethodGet, path, "", nil)
}

// send makes one request and turns the answer into bytes or a typed error.
func (c *Client) send(ctx context.Context, method, path, ifMatch string, body any) ([]byte, error) {
	var payload []byte
	header := http.Header{"Accept": {MediaType + ", application/json"}}
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
		header.Set("Content-Type", MediaType)
	}
	if ifMatch != "" {
		header.Set("If-Match", ifMatch)
	}
	resp, err := c.http.Do(ctx, method, c.base+path, header, payload)
	if err != nil {
		return nil, err
	}
	if resp.Status >= 200 && resp.Status < 300 {
		return resp.Body, nil
	}
	return nil, classify(method, path, resp)
}

// classify maps a failed answer to a typed error.
func classify(method, path string, resp *httpx.Response) error {
	detail := http.StatusText(resp.Status)
	scimType := ""
	if e, ok := ParseError(resp.Body); ok {
		scimType = e.ScimType
		if e.Detail != "" {
			detail = e.Detail
		}
	}
	what := method + " " + strings.SplitN(path, "?", 2)[0]
	switch {
	case resp.Status == http.StatusNotFound:
		return fmt.Errorf("%s: %w", what, connectors.ErrNotFound)
	case resp.Status == http.StatusConflict || scimType == ErrUniqueness:
		return fmt.Errorf("%s: %s: %w", what, detail, connectors.ErrConflict)
	case resp.Status == http.StatusUnauthorized || resp.Status == http.StatusForbidden:
		return &connectors.PermanentError{Status: resp.Status, Message: what + ": " + detail, Err: connectors.ErrUnauthorized}
	case resp.Status == http.StatusNotImplemented || resp.Status == http.StatusMethodNotAllowed:
		return &connectors.PermanentError{Status: resp.Status, Message: what + ": " + detail, Err: connectors.ErrUnsupported}
	case resp.Status == http.StatusPreconditionFailed:
		return &connectors.TransientError{Status: resp.Status, Err: fmt.Errorf("%s: the resource changed meanwhile", what)}
	default:
		return &connectors.PermanentError{Status: resp.Status, Message: what + ": " + detail}
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
