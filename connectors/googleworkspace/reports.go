package googleworkspace

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/oauth2"
	reportsapi "google.golang.org/api/admin/reports/v1"

	"github.com/rosterhq/roster/connectors"
)

const (
	// activityLag is how far before the watermark each read of the admin activity
	// starts again: Google reports an activity some time after it happened, so a read
	// from the watermark alone could miss one. Activities already read are skipped.
	activityLag = 10 * time.Minute
	// maxActivityPages bounds one read (1,000 activities a page): more changes than that
	// between two reads are left to the next full sync.
	maxActivityPages = 20
)

// reports reads the admin activity of the Reports API: which users and groups an admin
// (or Roster, or any tool) changed since a watermark.
type reports struct {
	*session
	svc *reportsapi.Service

	mu sync.Mutex
	// seen are the activities read already, by id, with their time.
	seen map[string]time.Time
	// floor is when the last full read began: what happened before is in it.
	floor time.Time
}

// touched are the users and groups activities named, by email.
type touched struct {
	users, groups []string
}

func newReports(ctx context.Context, a Access) (*reports, error) {
	s, err := connect(ctx, a, []string{ReportsScope})
	if err != nil {
		return nil, err
	}
	svc, err := reportsapi.NewService(ctx, s.options()...)
	if err != nil {
		return nil, &connectors.PermanentError{Message: err.Error()}
	}
	return &reports{session: s, svc: svc, seen: map[string]time.Time{}}, nil
}

// since reads the activities from watermark (less activityLag) to now: the users and
// groups they name, and the next watermark. ErrUnsupported when the delegation does not
// grant the Reports API's scope.
func (r *reports) since(ctx context.Context, watermark string) (touched, string, error) {
	from, err := time.Parse(time.RFC3339Nano, watermark)
	if err != nil {
		return touched{}, "", fmt.Errorf("the watermark %q is no time: %w", watermark, err)
	}
	now := time.Now().UTC()
	r.mu.Lock()
	from = later(from.Add(-activityLag), r.floor)
	r.mu.Unlock()
	var t touched
	users, groups := map[string]bool{}, map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		if pages == maxActivityPages {
			return touched{}, "", &connectors.TransientError{Err: fmt.Errorf("more than %d admin activities since %s: the next full sync reads them", pages*1000, watermark)}
		}
		page, err := r.svc.Activities.List("all", "admin").StartTime(from.Format(time.RFC3339Nano)).MaxResults(1000).PageToken(token).Context(ctx).Do()
		if err != nil {
			return touched{}, "", r.refused(err)
		}
		for _, a := range page.Items {
			if !r.first(a) {
				continue
			}
			for _, e := range a.Events {
				for _, p := range e.Parameters {
					switch {
					case e.Type == "USER_SETTINGS" && p.Name == "USER_EMAIL" && !users[p.Value]:
						users[p.Value] = true
						t.users = append(t.users, p.Value)
					case e.Type == "GROUP_SETTINGS" && p.Name == "GROUP_EMAIL" && !groups[p.Value]:
						groups[p.Value] = true
						t.groups = append(t.groups, p.Value)
					}
				}
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	r.forgetBefore(from)
	return t, now.Format(time.RFC3339Nano), nil
}

// readAllAt records that a full read began at t.
func (r *reports) readAllAt(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.floor = t
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// first tells whether an activity is read for the first time.
func (r *reports) first(a *reportsapi.Activity) bool {
	if a.Id == nil {
		return true
	}
	at, _ := time.Parse(time.RFC3339Nano, a.Id.Time)
	key := fmt.Sprintf("%s/%d", a.Id.Time, a.Id.UniqueQualifier)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[key]; ok {
		return false
	}
	r.seen[key] = at
	return true
}

func (r *reports) forgetBefore(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, at := range r.seen {
		if at.Before(t) {
			delete(r.seen, key)
		}
	}
}

// refused is ErrUnsupported when the token endpoint refuses the Reports API's scope
// (the delegation does not grant it) or the API refuses the admin; otherwise the
// error as the engine reads it.
func (r *reports) refused(err error) error {
	var token *oauth2.RetrieveError
	if errors.As(err, &token) && slices.Contains([]string{"unauthorized_client", "access_denied"}, token.ErrorCode) {
		return connectors.ErrUnsupported
	}
	err = r.classify(err)
	if errors.Is(err, connectors.ErrUnauthorized) {
		return connectors.ErrUnsupported
	}
	return err
}
