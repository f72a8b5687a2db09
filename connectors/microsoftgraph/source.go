package microsoftgraph

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

const (
	selectSourceUsers  = "id,userPrincipalName,mail,displayName,givenName,surname,jobTitle,department,employeeId,employeeType,officeLocation,companyName,usageLocation,accountEnabled,manager"
	selectSourceGroups = "displayName,members"
	// maxDeltaPages bounds one read: 1,000,000 objects at Graph's largest pages.
	maxDeltaPages = 10_000
)

// NewSourceFactory returns the SourceFactory for DirectorySyncs with a microsoftGraph
// block.
func NewSourceFactory() connectors.SourceFactory {
	return func(ctx context.Context, ds *identityv1alpha1.DirectorySync, secrets connectors.SecretReader) (connectors.Source, error) {
		spec := ds.Spec.MicrosoftGraph
		if spec == nil {
			return nil, &connectors.PermanentError{Message: "the DirectorySync has no microsoftGraph block"}
		}
		access, err := accessOf(ctx, spec.MicrosoftGraphApp, secrets, nil, ds.Namespace+"/"+ds.Name)
		if err != nil {
			return nil, err
		}
		return NewSource(ctx, access)
	}
}

// Source reads a tenant's users and groups by delta queries: the deltaLinks of the
// last read are the watermark, so a read asks only for what changed.
type Source struct {
	*session

	// groups are each group as last read, since a delta gives only what changed: the
	// members added and removed, the name when it changed.
	mu     sync.Mutex
	groups map[string]*groupState
	// managers are each user's manager's id as last read: a delta gives the manager
	// only when it changed.
	managers map[string]string
}

type groupState struct {
	name    string
	members map[string]bool
}

var _ connectors.IncrementalSource = (*Source)(nil)

// NewSource returns a Source.
func NewSource(ctx context.Context, a Access) (*Source, error) {
	s, err := connect(ctx, a)
	if err != nil {
		return nil, err
	}
	return &Source{session: s, groups: map[string]*groupState{}, managers: map[string]string{}}, nil
}

// Validate reads one user, which checks the credentials and the permission.
func (s *Source) Validate(ctx context.Context) error {
	return s.send(ctx, http.MethodGet, "v1.0/users?$select=id&$top=1", nil, nil)
}

// watermark is the two deltaLinks, as paths below the Graph URL.
type watermark struct {
	Users  string `json:"users"`
	Groups string `json:"groups"`
}

// Snapshot reads every user and group through the first round of both delta queries.
func (s *Source) Snapshot(ctx context.Context) (connectors.Snapshot, error) {
	s.mu.Lock()
	s.groups, s.managers = map[string]*groupState{}, map[string]string{}
	s.mu.Unlock()
	set, err := s.read(ctx, watermark{
		Users:  "v1.0/users/delta?$select=" + selectSourceUsers,
		Groups: "v1.0/groups/delta?$select=" + selectSourceGroups,
	})
	if err != nil {
		return connectors.Snapshot{}, err
	}
	return connectors.Snapshot{Records: set.Changed, Groups: set.Groups, Watermark: set.Watermark}, nil
}

// Changes follows the deltaLinks of the last read.
func (s *Source) Changes(ctx context.Context, mark string) (connectors.ChangeSet, error) {
	var w watermark
	if err := json.Unmarshal([]byte(mark), &w); err != nil || w.Users == "" || w.Groups == "" {
		return connectors.ChangeSet{}, connectors.ErrUnsupported // no read of ours gave it
	}
	return s.read(ctx, w)
}

// read follows both delta queries from where w says to their deltaLinks.
func (s *Source) read(ctx context.Context, w watermark) (connectors.ChangeSet, error) {
	var set connectors.ChangeSet
	next, err := s.rounds(ctx, w.Users, func(item json.RawMessage) error {
		var u sourceUser
		if err := json.Unmarshal(item, &u); err != nil {
			return err
		}
		if u.Removed != nil {
			set.Deleted = append(set.Deleted, u.ID)
			return nil
		}
		r := u.record()
		if m := s.managerOf(u); m != "" {
			r.Attributes["manager"] = m
		}
		set.Changed = append(set.Changed, r)
		return nil
	})
	if err != nil {
		return connectors.ChangeSet{}, fmt.Errorf("reading users: %w", err)
	}
	mark := watermark{Users: next}
	mark.Groups, err = s.rounds(ctx, w.Groups, func(item json.RawMessage) error {
		var g sourceGroup
		if err := json.Unmarshal(item, &g); err != nil {
			return err
		}
		if g.Removed != nil {
			set.Deleted = append(set.Deleted, g.ID)
			s.forgetGroup(g.ID)
			return nil
		}
		set.Groups = append(set.Groups, s.applyGroup(g))
		return nil
	})
	if err != nil {
		return connectors.ChangeSet{}, fmt.Errorf("reading groups: %w", err)
	}
	data, _ := json.Marshal(mark)
	set.Watermark = string(data)
	set.Groups = mergeGroups(set.Groups)
	return set, nil
}

// rounds reads pages from path, following nextLinks, until a deltaLink, which it
// returns as the next starting point.
func (s *Source) rounds(ctx context.Context, path string, each func(json.RawMessage) error) (string, error) {
	for pages := 0; pages < maxDeltaPages; pages++ {
		var page struct {
			Value     []json.RawMessage `json:"value"`
			NextLink  string            `json:"@odata.nextLink"`
			DeltaLink string            `json:"@odata.deltaLink"`
		}
		if err := s.send(ctx, http.MethodGet, path, nil, &page); err != nil {
			return "", err
		}
		for _, item := range page.Value {
			if err := each(item); err != nil {
				return "", &connectors.PermanentError{Message: "Microsoft Graph sent an object that does not decode: " + err.Error()}
			}
		}
		if page.DeltaLink != "" {
			return s.relative(page.DeltaLink)
		}
		next, err := s.relative(page.NextLink)
		if err != nil {
			return "", err
		}
		if next == "" {
			return "", &connectors.PermanentError{Message: "a delta page gave neither a nextLink nor a deltaLink"}
		}
		path = next
	}
	return "", &connectors.PermanentError{Message: fmt.Sprintf("a delta query ran past %d pages", maxDeltaPages)}
}

// removed marks an object a delta says is gone (deleted, or out of scope).
type removed struct {
	Reason string `json:"reason"`
}

type sourceUser struct {
	ID                string   `json:"id"`
	UserPrincipalName string   `json:"userPrincipalName"`
	Mail              string   `json:"mail"`
	DisplayName       string   `json:"displayName"`
	GivenName         string   `json:"givenName"`
	Surname           string   `json:"surname"`
	JobTitle          string   `json:"jobTitle"`
	Department        string   `json:"department"`
	EmployeeID        string   `json:"employeeId"`
	EmployeeType      string   `json:"employeeType"`
	OfficeLocation    string   `json:"officeLocation"`
	CompanyName       string   `json:"companyName"`
	UsageLocation     string   `json:"usageLocation"`
	AccountEnabled    *bool    `json:"accountEnabled"`
	Removed           *removed `json:"@removed"`
	Manager           []struct {
		ID      string   `json:"id"`
		Removed *removed `json:"@removed"`
	} `json:"manager@delta"`
}

// record is an Entra ID user as a source record, its attributes named as the default
// mapping reads them.
func (u sourceUser) record() connectors.Record {
	attrs := map[string]any{"userName": u.UserPrincipalName}
	for name, v := range map[string]string{"email": u.Mail, "displayName": u.DisplayName, "givenName": u.GivenName,
		"familyName": u.Surname, "title": u.JobTitle, "department": u.Department, "employeeId": u.EmployeeID,
		"employeeType": u.EmployeeType, "location": u.OfficeLocation, "companyName": u.CompanyName, "usageLocation": u.UsageLocation} {
		if v != "" {
			attrs[name] = v
		}
	}
	enabled := u.AccountEnabled == nil || *u.AccountEnabled
	attrs["accountEnabled"] = enabled
	return connectors.Record{ID: u.ID, Attributes: attrs, Disabled: !enabled}
}

// managerOf applies a user's manager change, if the delta gives one, and returns the
// manager's id as now known.
func (s *Source) managerOf(u sourceUser) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range u.Manager {
		if m.Removed != nil {
			delete(s.managers, u.ID)
		} else {
			s.managers[u.ID] = m.ID
		}
	}
	return s.managers[u.ID]
}

type sourceGroup struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Removed     *removed `json:"@removed"`
	Members     []struct {
		ID      string   `json:"id"`
		Type    string   `json:"@odata.type"`
		Removed *removed `json:"@removed"`
	} `json:"members@delta"`
}

// applyGroup applies a group's member changes to what was read before and returns the
// group whole. Members are users and groups (nested groups are expanded by the
// DirectorySync).
func (s *Source) applyGroup(g sourceGroup) connectors.SourceGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := s.groups[g.ID]
	if state == nil {
		state = &groupState{members: map[string]bool{}}
		s.groups[g.ID] = state
	}
	if g.DisplayName != "" {
		state.name = g.DisplayName
	}
	for _, m := range g.Members {
		switch {
		case m.Removed != nil:
			delete(state.members, m.ID)
		case m.Type == "#microsoft.graph.user" || m.Type == "#microsoft.graph.group":
			state.members[m.ID] = true
		}
	}
	out := connectors.SourceGroup{ID: g.ID, Name: state.name}
	for id := range state.members {
		out.Members = append(out.Members, id)
	}
	slices.Sort(out.Members)
	return out
}

func (s *Source) forgetGroup(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, id)
}

// mergeGroups keeps one entry per group, the last: a delta may list a group on several
// pages (its members in parts), and each entry above is already the group whole.
func mergeGroups(groups []connectors.SourceGroup) []connectors.SourceGroup {
	last := map[string]int{}
	for i, g := range groups {
		last[g.ID] = i
	}
	var out []connectors.SourceGroup
	for i, g := range groups {
		if last[g.ID] == i {
			out = append(out, g)
		}
	}
	return out
}
