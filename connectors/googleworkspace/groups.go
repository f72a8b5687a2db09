package googleworkspace

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	admin "google.golang.org/api/admin/directory/v1"

	"github.com/rosterhq/roster/connectors"
)

const (
	// maxBatchCalls is the most calls Google takes in one batch request.
	maxBatchCalls = 1000
	groupPageSize = 200
	memberPage    = 200
)

// groupLocalPart is what Google admits before a group's "@".
var groupLocalPart = regexp.MustCompile(`^[a-z0-9]([a-z0-9._'+-]{0,62}[a-z0-9])?$`)

// ListGroups returns a page of the customer's groups, each with its user members.
func (t *Target) ListGroups(ctx context.Context, cursor string) (connectors.GroupPage, error) {
	groups, err := t.svc.Groups.List().Customer(t.customer).MaxResults(groupPageSize).PageToken(cursor).Context(ctx).Do()
	if err != nil {
		return connectors.GroupPage{}, t.classify(err)
	}
	page := connectors.GroupPage{Next: groups.NextPageToken}
	for _, g := range groups.Groups {
		members, err := t.members(ctx, g.Id)
		if err != nil {
			return connectors.GroupPage{}, err
		}
		page.Groups = append(page.Groups, connectors.Group{ID: g.Id, DisplayName: t.groupName(g.Email), Members: members, Version: g.Etag})
	}
	return page, nil
}

// members are a group's direct members that are users, by id.
func (t *Target) members(ctx context.Context, groupID string) ([]string, error) {
	return connectors.ListAll(ctx, "the members of group "+groupID, func(ctx context.Context, cursor string) ([]string, string, error) {
		page, err := t.svc.Members.List(groupID).MaxResults(memberPage).PageToken(cursor).Context(ctx).Do()
		if err != nil {
			return nil, "", t.classify(err)
		}
		var ids []string
		for _, m := range page.Members {
			if m.Type == "USER" && m.Id != "" {
				ids = append(ids, m.Id)
				if m.Email != "" {
					t.remember(m.Id, m.Email)
				}
			}
		}
		return ids, page.NextPageToken, nil
	})
}

// groupName is how a group is named in assignments: its email's local part in the
// connection's domain, its whole email in another.
func (t *Target) groupName(email string) string {
	email = strings.ToLower(email)
	if local, domain, ok := strings.Cut(email, "@"); ok && domain == t.domain {
		return local
	}
	return email
}

// groupEmail is the email of the group an assignment names.
func (t *Target) groupEmail(name string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	local, domain, hasDomain := strings.Cut(name, "@")
	if !hasDomain {
		domain = t.domain
	}
	if !groupLocalPart.MatchString(local) || domain == "" || strings.Contains(domain, "@") {
		return "", &connectors.PermanentError{Message: fmt.Sprintf("a Google group is named by its email: %q is not a group name (letters, digits, dots, dashes, underscores, apostrophes, plus signs; optionally @domain)", name)}
	}
	return local + "@" + domain, nil
}

// EnsureGroup returns the group, creating it if it does not exist.
func (t *Target) EnsureGroup(ctx context.Context, name string) (connectors.Group, error) {
	email, err := t.groupEmail(name)
	if err != nil {
		return connectors.Group{}, err
	}
	g, err := t.svc.Groups.Get(email).Context(ctx).Do()
	if err = t.classify(err); errors.Is(err, connectors.ErrNotFound) {
		g, err = t.svc.Groups.Insert(&admin.Group{Email: email, Name: name}).Context(ctx).Do()
		if err = t.classify(err); errors.Is(err, connectors.ErrConflict) {
			g, err = t.svc.Groups.Get(email).Context(ctx).Do()
			err = t.classify(err)
		}
	}
	if err != nil {
		return connectors.Group{}, err
	}
	return connectors.Group{ID: g.Id, DisplayName: t.groupName(g.Email), Version: g.Etag}, nil
}

// memberCall is one member change in a batch.
type memberCall struct {
	method, path string
	body         []byte
	add          bool
}

// ChangeMembers adds and removes members in batch requests of up to 1,000 calls each:
// Google has no call that adds many members at once. A member already in the group,
// or already out of it, is no error.
func (t *Target) ChangeMembers(ctx context.Context, group connectors.Group, add, remove []string) error {
	base := t.servicePath() + "admin/directory/v1/groups/" + url.PathEscape(group.ID) + "/members"
	var calls []memberCall
	for _, id := range add {
		email, err := t.emailOf(ctx, id)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(map[string]string{"email": email, "role": "MEMBER"})
		calls = append(calls, memberCall{method: http.MethodPost, path: base, body: body, add: true})
	}
	for _, id := range remove {
		calls = append(calls, memberCall{method: http.MethodDelete, path: base + "/" + url.PathEscape(id)})
	}
	for len(calls) > 0 {
		n := min(len(calls), maxBatchCalls)
		if err := t.batch(ctx, calls[:n]); err != nil {
			return err
		}
		calls = calls[n:]
	}
	return nil
}

func (t *Target) servicePath() string {
	u, err := url.Parse(t.apiURL)
	if err != nil || u.Path == "" {
		return "/"
	}
	return u.Path
}

// emailOf is a user's primary email, read from Google when no listing or write showed
// it.
func (t *Target) emailOf(ctx context.Context, id string) (string, error) {
	t.mu.Lock()
	email, ok := t.emails[id]
	t.mu.Unlock()
	if ok {
		return email, nil
	}
	u, err := t.svc.Users.Get(id).Context(ctx).Do()
	if err != nil {
		return "", fmt.Errorf("reading member %s: %w", id, t.classify(err))
	}
	t.remember(u.Id, u.PrimaryEmail)
	return u.PrimaryEmail, nil
}

func (t *Target) remember(id, email string) {
	t.mu.Lock()
	t.emails[id] = email
	t.mu.Unlock()
}

// batch sends calls as one multipart/mixed batch request and reads each call's answer.
func (t *Target) batch(ctx context.Context, calls []memberCall) error {
	// Google counts every call of a batch against the quota: so does the budget.
	if err := t.budget.Take(ctx, len(calls)-1); err != nil {
		return err
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for i, c := range calls {
		part, _ := w.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/http"}, "Content-Id": {"<item" + strconv.Itoa(i) + ">"}})
		fmt.Fprintf(part, "%s %s HTTP/1.1\r\n", c.method, c.path)
		if c.body != nil {
			fmt.Fprintf(part, "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(c.body), c.body)
		} else {
			fmt.Fprint(part, "\r\n")
		}
	}
	w.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.apiURL+"batch", &body)
	if err != nil {
		return &connectors.PermanentError{Message: err.Error()}
	}
	req.Header.Set("Content-Type", "multipart/mixed; boundary="+w.Boundary())
	resp, err := t.http.Do(req)
	if err != nil {
		return t.classify(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return t.answerError(resp.StatusCode, resp.Header, "", strings.TrimSpace(string(msg)))
	}
	return t.readBatch(resp, calls)
}

// readBatch reads a batch's answers, one part per call, and returns the first failure
// that matters: a rate limit before anything else, since the engine then waits.
func (t *Target) readBatch(resp *http.Response, calls []memberCall) error {
	mediaType, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") {
		return &connectors.TransientError{Err: fmt.Errorf("the batch answer is %q, not multipart", resp.Header.Get("Content-Type"))}
	}
	r := multipart.NewReader(resp.Body, params["boundary"])
	answered := make([]bool, len(calls))
	var failure, limited error
	for i := 0; ; i++ {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &connectors.TransientError{Err: fmt.Errorf("reading Google's batch answer: %w", err)}
		}
		index := callIndex(part.Header.Get("Content-Id"), i)
		if index < 0 || index >= len(calls) || answered[index] {
			return &connectors.TransientError{Err: fmt.Errorf("the batch answer has a part for no call it was sent (%q)", part.Header.Get("Content-Id"))}
		}
		answered[index] = true
		inner, err := http.ReadResponse(bufio.NewReader(part), nil)
		if err != nil {
			return &connectors.TransientError{Err: fmt.Errorf("reading Google's batch answer: %w", err)}
		}
		err = t.callError(inner, calls[index])
		inner.Body.Close()
		var rate *connectors.RateLimitedError
		switch {
		case errors.As(err, &rate):
			limited = err
		case err != nil && failure == nil:
			failure = err
		}
	}
	for i, ok := range answered {
		if !ok && failure == nil {
			failure = &connectors.TransientError{Err: fmt.Errorf("the batch answer left call %d unanswered", i)}
		}
	}
	if limited != nil {
		return limited
	}
	return failure
}

// callIndex reads "<response-itemN>", the Content-ID Google gives the answer to the
// call sent as "<itemN>"; an answer without one is taken in order.
func callIndex(contentID string, order int) int {
	id := strings.Trim(contentID, "<>")
	if id == "" {
		return order
	}
	n, err := strconv.Atoi(strings.TrimPrefix(id, "response-item"))
	if err != nil {
		return -1
	}
	return n
}

// callError is one call's outcome: a member already added, or already gone, is done.
func (t *Target) callError(resp *http.Response, call memberCall) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var answer struct {
		Error struct {
			Message string `json:"message"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = json.Unmarshal(data, &answer)
	reason := ""
	if len(answer.Error.Errors) > 0 {
		reason = answer.Error.Errors[0].Reason
	}
	switch {
	case call.add && resp.StatusCode == http.StatusConflict, !call.add && resp.StatusCode == http.StatusNotFound:
		return nil
	case call.add && resp.StatusCode == http.StatusNotFound:
		// A user just created can be unknown to the groups service for a moment.
		return &connectors.TransientError{Status: resp.StatusCode, Err: fmt.Errorf("adding a member: Google answered 404: %s", answer.Error.Message)}
	}
	return t.answerError(resp.StatusCode, resp.Header, reason, answer.Error.Message)
}
