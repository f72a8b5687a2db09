package googleworkspace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	admin "google.golang.org/api/admin/directory/v1"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// SourceScopes are the least a DirectorySync needs: users and groups, read-only.
var SourceScopes = []string{
	"https://www.googleapis.com/auth/admin.directory.user.readonly",
	"https://www.googleapis.com/auth/admin.directory.group.readonly",
}

// ReportsScope lets a DirectorySync follow changes between full syncs.
const ReportsScope = "https://www.googleapis.com/auth/admin.reports.audit.readonly"

const (
	groupMembersPage = 200 // members.list's largest page
	// maxRecords bounds what one read keeps, so that an account (or a server posing as
	// one) that never stops paging cannot exhaust the operator's memory.
	maxRecords = 1_000_000
)

// NewSourceFactory returns the SourceFactory for DirectorySyncs with a googleWorkspace
// block.
func NewSourceFactory() connectors.SourceFactory {
	return func(ctx context.Context, ds *identityv1alpha1.DirectorySync, secrets connectors.SecretReader) (connectors.Source, error) {
		spec := ds.Spec.GoogleWorkspace
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the DirectorySync has no googleWorkspace block"}
		}
		access, err := accessOf(ctx, spec.GoogleServiceAccount, secrets, nil, ds.Namespace+"/"+ds.Name)
		if err != nil {
			return nil, err
		}
		return NewSource(ctx, SourceConfig{Access: access, Domain: spec.Domain})
	}
}

// SourceConfig configures a Source.
type SourceConfig struct {
	Access
	// Domain, when set, limits the read to one of the account's domains.
	Domain string
}

// Source reads a Google Workspace account's users and groups.
type Source struct {
	*session
	svc     *admin.Service
	domain  string
	reports *reports

	// ids are users' and groups' ids by their email, lower-cased, as last read: an
	// activity names a user or group by email, which a rename changes.
	mu  sync.Mutex
	ids map[string]string
}

var _ connectors.IncrementalSource = (*Source)(nil)

// NewSource returns a Source.
func NewSource(ctx context.Context, cfg SourceConfig) (*Source, error) {
	s, err := connect(ctx, cfg.Access, SourceScopes)
	if err != nil {
		return nil, err
	}
	svc, err := admin.NewService(ctx, s.options()...)
	if err != nil {
		return nil, &connectors.PermanentError{Message: err.Error()}
	}
	r, err := newReports(ctx, cfg.Access)
	if err != nil {
		return nil, err
	}
	return &Source{session: s, svc: svc, domain: strings.ToLower(cfg.Domain), reports: r, ids: map[string]string{}}, nil
}

// Validate lists one user and one group, which checks the key, the delegation, both
// scopes and the customer.
func (s *Source) Validate(ctx context.Context) error {
	if _, err := s.listUsers("").MaxResults(1).Context(ctx).Do(); err != nil {
		return fmt.Errorf("listing the account's users: %w", s.classify(err))
	}
	if _, err := s.listGroups("").MaxResults(1).Context(ctx).Do(); err != nil {
		return fmt.Errorf("listing the account's groups: %w", s.classify(err))
	}
	return nil
}

func (s *Source) listUsers(token string) *admin.UsersListCall {
	call := s.svc.Users.List().Projection("full").MaxResults(pageSize).PageToken(token)
	if s.domain != "" {
		return call.Domain(s.domain)
	}
	return call.Customer(s.customer)
}

func (s *Source) listGroups(token string) *admin.GroupsListCall {
	call := s.svc.Groups.List().MaxResults(groupPageSize).PageToken(token)
	if s.domain != "" {
		return call.Domain(s.domain)
	}
	return call.Customer(s.customer)
}

// Snapshot reads every user, every group and its direct members. The watermark is the
// moment before the read began, so that a change made during it is read again.
func (s *Source) Snapshot(ctx context.Context) (connectors.Snapshot, error) {
	start := time.Now().UTC()
	ids := map[string]string{}
	var snap connectors.Snapshot
	for token := ""; ; {
		page, err := s.listUsers(token).Context(ctx).Do()
		if err != nil {
			return connectors.Snapshot{}, fmt.Errorf("listing users: %w", s.classify(err))
		}
		for _, u := range page.Users {
			snap.Records = append(snap.Records, record(u))
			ids[strings.ToLower(u.PrimaryEmail)] = u.Id
		}
		if token = page.NextPageToken; token == "" {
			break
		}
		if len(snap.Records) > maxRecords {
			return connectors.Snapshot{}, &connectors.PermanentError{Message: fmt.Sprintf("the account lists more than %d users", maxRecords)}
		}
	}
	for token := ""; ; {
		page, err := s.listGroups(token).Context(ctx).Do()
		if err != nil {
			return connectors.Snapshot{}, fmt.Errorf("listing groups: %w", s.classify(err))
		}
		for _, g := range page.Groups {
			group, err := s.group(ctx, g)
			if err != nil {
				return connectors.Snapshot{}, err
			}
			snap.Groups = append(snap.Groups, group)
			ids[strings.ToLower(g.Email)] = g.Id
		}
		if token = page.NextPageToken; token == "" {
			break
		}
		if len(snap.Groups) > maxRecords {
			return connectors.Snapshot{}, &connectors.PermanentError{Message: fmt.Sprintf("the account lists more than %d groups", maxRecords)}
		}
	}
	s.mu.Lock()
	s.ids = ids
	s.mu.Unlock()
	s.reports.readAllAt(start)
	snap.Watermark = start.Format(time.RFC3339Nano)
	return snap, nil
}

// group is a group with its direct members' ids (users and groups; the whole-account
// member type CUSTOMER names no one in particular and is left out).
func (s *Source) group(ctx context.Context, g *admin.Group) (connectors.SourceGroup, error) {
	group := connectors.SourceGroup{ID: g.Id, Name: strings.ToLower(g.Email)}
	for token := ""; ; {
		page, err := s.svc.Members.List(g.Id).MaxResults(groupMembersPage).PageToken(token).Context(ctx).Do()
		if err != nil {
			return connectors.SourceGroup{}, fmt.Errorf("listing the members of %s: %w", g.Email, s.classify(err))
		}
		for _, m := range page.Members {
			if m.Type == "USER" || m.Type == "GROUP" {
				group.Members = append(group.Members, m.Id)
			}
		}
		if token = page.NextPageToken; token == "" {
			return group, nil
		}
		if len(group.Members) > maxRecords {
			return connectors.SourceGroup{}, &connectors.PermanentError{Message: fmt.Sprintf("the group %s lists more than %d members", g.Email, maxRecords)}
		}
	}
}

// Changes reads the admin activity since the watermark and reads again each user and
// group it names; ErrUnsupported when the delegation lacks the Reports API's scope.
func (s *Source) Changes(ctx context.Context, watermark string) (connectors.ChangeSet, error) {
	if watermark == "" {
		return connectors.ChangeSet{}, connectors.ErrUnsupported
	}
	touched, next, err := s.reports.since(ctx, watermark)
	if err != nil {
		return connectors.ChangeSet{}, err
	}
	set := connectors.ChangeSet{Watermark: next}
	for _, email := range touched.users {
		if err := s.readUser(ctx, email, &set); err != nil {
			return connectors.ChangeSet{}, err
		}
	}
	for _, email := range touched.groups {
		if err := s.readGroup(ctx, email, &set); err != nil {
			return connectors.ChangeSet{}, err
		}
	}
	return set, nil
}

// readUser reads a user an activity named.
func (s *Source) readUser(ctx context.Context, email string, set *connectors.ChangeSet) error {
	return s.reread(email, set, func(key string) error {
		u, err := s.svc.Users.Get(key).Projection("full").Context(ctx).Do()
		if err != nil {
			return err
		}
		if s.domain == "" || strings.HasSuffix(strings.ToLower(u.PrimaryEmail), "@"+s.domain) {
			s.remember(u.PrimaryEmail, u.Id)
			set.Changed = append(set.Changed, record(u))
		}
		return nil
	})
}

// readGroup reads a group an activity named, whole, with its members.
func (s *Source) readGroup(ctx context.Context, email string, set *connectors.ChangeSet) error {
	return s.reread(email, set, func(key string) error {
		g, err := s.svc.Groups.Get(key).Context(ctx).Do()
		if err != nil {
			return err
		}
		group, err := s.group(ctx, g)
		if err != nil {
			return err
		}
		s.remember(g.Email, g.Id)
		set.Groups = append(set.Groups, group)
		return nil
	})
}

// reread reads again what an activity named by email: by the id last read for that
// email (a renamed user or group is found by it), else by the email. What is no
// longer there is deleted, if it was read before.
func (s *Source) reread(email string, set *connectors.ChangeSet, read func(key string) error) error {
	id, known := s.idOf(email)
	key := email
	if known {
		key = id
	}
	switch err := s.classify(read(key)); {
	case errors.Is(err, connectors.ErrNotFound) && known:
		set.Deleted = append(set.Deleted, id)
		s.forget(email)
	case errors.Is(err, connectors.ErrNotFound):
		// created and deleted between two reads
	case err != nil:
		return fmt.Errorf("reading %s again: %w", email, err)
	}
	return nil
}

func (s *Source) idOf(email string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.ids[strings.ToLower(email)]
	return id, ok
}

// remember keeps an email's id. A renamed user's old email keeps naming the same id,
// which is right: Google keeps it as the user's alias.
func (s *Source) remember(email, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids[strings.ToLower(email)] = id
}

func (s *Source) forget(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids, strings.ToLower(email))
}

// record is a Google user as a source record: its attributes are what the default
// mapping and a DirectorySync's own mapping read as `record`.
func record(u *admin.User) connectors.Record {
	attrs := map[string]any{
		"userName":      u.PrimaryEmail,
		"email":         u.PrimaryEmail,
		"suspended":     u.Suspended,
		"archived":      u.Archived,
		"orgUnitPath":   u.OrgUnitPath,
		"orgUnit":       orgUnitName(u.OrgUnitPath),
		"isAdmin":       u.IsAdmin,
		"creationTime":  u.CreationTime,
		"lastLoginTime": u.LastLoginTime,
	}
	if u.Name != nil {
		attrs["givenName"], attrs["familyName"], attrs["displayName"] = u.Name.GivenName, u.Name.FamilyName, u.Name.FullName
	}
	if aliases := u.Aliases; len(aliases) > 0 {
		list := make([]any, len(aliases))
		for i, a := range aliases {
			list[i] = a
		}
		attrs["aliases"] = list
	}
	if org := primaryOrganization(u.Organizations); org != nil {
		for from, to := range map[string]string{"title": "title", "department": "department", "costCenter": "costCenter", "description": "employeeType", "location": "location"} {
			if v, ok := org[from].(string); ok && v != "" {
				attrs[to] = v
			}
		}
	}
	if ids, _ := u.ExternalIds.([]any); len(ids) > 0 {
		if id := organizationExternalID(ids); id != "" {
			attrs["externalId"] = id
		}
	}
	if m := manager(u.Relations); m != "" {
		attrs["manager"] = m
	}
	if len(u.CustomSchemas) > 0 {
		custom := map[string]any{}
		for name, raw := range u.CustomSchemas {
			var fields map[string]any
			if err := json.Unmarshal(raw, &fields); err == nil {
				custom[name] = fields
			}
		}
		attrs["customSchemas"] = custom
	}
	return connectors.Record{ID: u.Id, Attributes: attrs, Disabled: u.Suspended || u.Archived}
}

// orgUnitName is the last part of an org unit path ("/Engineering/Platform" →
// "Platform"); "" for the root.
func orgUnitName(path string) string {
	return path[strings.LastIndex(path, "/")+1:]
}

// manager is the email of the user's manager relation, if any.
func manager(relations any) string {
	list, _ := relations.([]any)
	for _, r := range list {
		if m, _ := r.(map[string]any); m != nil && m["type"] == "manager" {
			v, _ := m["value"].(string)
			return v
		}
	}
	return ""
}
