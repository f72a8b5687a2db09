package microsoftgraph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rosterhq/roster/connectors"
)

// Graph's documented bounds: 20 members bound in one request, 20 requests in one batch.
const (
	maxBindsPerRequest   = 20
	maxRequestsPerBatch  = 20
	maxMembersPerBatch   = maxBindsPerRequest * maxRequestsPerBatch
	groupPageSize        = 999
	alreadyMemberMessage = "added object references already exist"
)

type groupPage struct {
	Value []struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	} `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// ListGroups returns a page of the tenant's security groups, each with its user members.
func (t *Target) ListGroups(ctx context.Context, cursor string) (connectors.GroupPage, error) {
	path := "v1.0/groups?$select=id,displayName&$filter=" + url.QueryEscape("securityEnabled eq true") + "&$top=" + strconv.Itoa(groupPageSize)
	if cursor != "" {
		path = cursor
	}
	var page groupPage
	if err := t.send(ctx, http.MethodGet, path, nil, &page); err != nil {
		return connectors.GroupPage{}, err
	}
	next, err := t.relative(page.NextLink)
	if err != nil {
		return connectors.GroupPage{}, err
	}
	out := connectors.GroupPage{Next: next}
	for _, g := range page.Value {
		members, err := t.members(ctx, g.ID)
		if err != nil {
			return connectors.GroupPage{}, err
		}
		out.Groups = append(out.Groups, connectors.Group{ID: g.ID, DisplayName: g.DisplayName, Members: members})
	}
	return out, nil
}

// members are a group's direct members that are users, by id.
func (t *Target) members(ctx context.Context, groupID string) ([]string, error) {
	return connectors.ListAll(ctx, "the members of group "+groupID, func(ctx context.Context, cursor string) ([]string, string, error) {
		path := "v1.0/groups/" + url.PathEscape(groupID) + "/members/microsoft.graph.user?$select=id&$top=" + strconv.Itoa(groupPageSize)
		if cursor != "" {
			path = cursor
		}
		var page struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		if err := t.send(ctx, http.MethodGet, path, nil, &page); err != nil {
			return nil, "", err
		}
		ids := make([]string, 0, len(page.Value))
		for _, m := range page.Value {
			ids = append(ids, m.ID)
		}
		next, err := t.relative(page.NextLink)
		return ids, next, err
	})
}

// EnsureGroup returns the security group of that display name, creating it if there is
// none. Entra ID does not keep display names unique: two groups of one name are
// refused, rather than one picked.
func (t *Target) EnsureGroup(ctx context.Context, name string) (connectors.Group, error) {
	var page groupPage
	filter := url.QueryEscape("displayName eq " + quote(name))
	if err := t.send(ctx, http.MethodGet, "v1.0/groups?$select=id,displayName&$filter="+filter, nil, &page); err != nil {
		return connectors.Group{}, err
	}
	switch len(page.Value) {
	case 0:
	case 1:
		return connectors.Group{ID: page.Value[0].ID, DisplayName: page.Value[0].DisplayName}, nil
	default:
		return connectors.Group{}, &connectors.PermanentError{Message: fmt.Sprintf("the tenant has %d groups named %q: rename all but one", len(page.Value), name)}
	}
	var created struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	}
	err := t.send(ctx, http.MethodPost, "v1.0/groups", map[string]any{"displayName": name, "mailEnabled": false,
		"mailNickname": nickname(name), "securityEnabled": true}, &created)
	if err != nil {
		return connectors.Group{}, err
	}
	return connectors.Group{ID: created.ID, DisplayName: created.DisplayName}, nil
}

// batchRequest is one request of a JSON batch.
type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`

	add []string // the members a PATCH binds
}

// ChangeMembers binds up to 20 new members in one PATCH and removes one member per
// DELETE, and sends up to 20 such requests in one JSON batch. A member already in the
// group, or already out of it, is no error.
func (t *Target) ChangeMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	groupURL := "/groups/" + url.PathEscape(group.ID)
	var requests []batchRequest
	for len(add) > 0 {
		n := min(len(add), maxBindsPerRequest)
		requests = append(requests, t.bind(groupURL, add[:n]))
		add = add[n:]
	}
	for _, id := range remove {
		requests = append(requests, batchRequest{Method: http.MethodDelete, URL: groupURL + "/members/" + url.PathEscape(id) + "/$ref"})
	}
	for len(requests) > 0 {
		n := min(len(requests), maxRequestsPerBatch)
		retry, err := t.batch(ctx, requests[:n])
		if err != nil {
			return err
		}
		requests = append(retry, requests[n:]...)
	}
	return nil
}

func (t *Target) bind(groupURL string, ids []string) batchRequest {
	refs := make([]string, len(ids))
	for i, id := range ids {
		refs[i] = t.graphURL + "v1.0/directoryObjects/" + url.PathEscape(id)
	}
	return batchRequest{Method: http.MethodPatch, URL: groupURL, Headers: map[string]string{"Content-Type": "application/json"},
		Body: map[string]any{"members@odata.bind": refs}, add: ids}
}

// batch sends one JSON batch and reads each answer; a bind of many members refused
// because one is a member already comes back as binds of one member each, to send
// again.
func (t *Target) batch(ctx context.Context, requests []batchRequest) ([]batchRequest, error) {
	if err := t.client.Take(ctx, len(requests)-1); err != nil {
		return nil, err // a batch counts as every request in it
	}
	for i := range requests {
		requests[i].ID = strconv.Itoa(i + 1)
	}
	var answer struct {
		Responses []struct {
			ID      string            `json:"id"`
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
			Body    json.RawMessage   `json:"body"`
		} `json:"responses"`
	}
	if err := t.send(ctx, http.MethodPost, "v1.0/$batch", map[string]any{"requests": requests}, &answer); err != nil {
		return nil, err
	}
	if len(answer.Responses) != len(requests) {
		return nil, &connectors.TransientError{Err: fmt.Errorf("a batch of %d requests was answered %d times", len(requests), len(answer.Responses))}
	}
	var retry []batchRequest
	var firstErr error
	for _, r := range answer.Responses {
		i, err := strconv.Atoi(r.ID)
		if err != nil || i < 1 || i > len(requests) {
			return nil, &connectors.TransientError{Err: fmt.Errorf("a batch answer names request %q, which was not sent", r.ID)}
		}
		req := requests[i-1]
		switch err := answerOf(r.Status, r.Headers, r.Body); {
		case err == nil:
		case req.Method == http.MethodDelete && errors.Is(err, connectors.ErrNotFound):
		case req.add != nil && strings.Contains(err.Error(), alreadyMemberMessage):
			if len(req.add) > 1 {
				for _, id := range req.add {
					retry = append(retry, t.bind(req.URL, []string{id}))
				}
			}
		default:
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return retry, firstErr
}

// answerOf is one batch answer's outcome.
func answerOf(status int, headers map[string]string, body []byte) error {
	if status/100 == 2 {
		return nil
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		wait := 10 * time.Second
		if secs, err := strconv.Atoi(headers["Retry-After"]); err == nil && secs > 0 {
			wait = min(time.Duration(secs)*time.Second, connectors.MaxRetryAfter)
		}
		return &connectors.RateLimitedError{RetryAfter: wait, Message: fmt.Sprintf("Microsoft Graph answered %d in a batch", status)}
	}
	return answerError(status, body)
}
