package ldap

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"

	goldap "github.com/go-ldap/ldap/v3"

	identityv1alpha1 "github.com/rosterhq/roster/api/v1alpha1"
	"github.com/rosterhq/roster/connectors"
)

// supports reports whether the server's root DSE lists a control.
func supports(conn *goldap.Conn, oid string) (bool, error) {
	res, err := conn.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false,
		"(objectClass=*)", []string{"supportedControl"}, nil))
	if err != nil {
		return false, classify("reading the root DSE", err)
	}
	if len(res.Entries) == 0 {
		return false, nil
	}
	return slices.Contains(res.Entries[0].GetAttributeValues("supportedControl"), oid), nil
}

// Changes returns what changed since a watermark: with Active Directory DirSync where
// that is the server and mode, else by comparing modifyTimestamp (whenChanged).
// Deletions are caught by the next full sync.
func (s *Source) Changes(ctx context.Context, watermark string) (connectors.ChangeSet, error) {
	if s.mode == identityv1alpha1.IncrementalNone {
		return connectors.ChangeSet{}, connectors.ErrUnsupported
	}
	conn, closeConn, err := s.dialer.dial(ctx)
	if err != nil {
		return connectors.ChangeSet{}, err
	}
	defer closeConn()
	if s.useDirSync(conn) {
		return s.dirSyncChanges(conn, watermark)
	}
	if watermark == "" {
		return connectors.ChangeSet{}, &connectors.PermanentError{Message: "no watermark to poll from: the directory returned no " + s.f.changed}
	}
	since := fmt.Sprintf("(%s>=%s)", s.f.changed, goldap.EscapeFilter(watermark))
	users, err := s.search(conn, "(&"+s.userFilter+since+")")
	if err != nil {
		return connectors.ChangeSet{}, err
	}
	groups, err := s.search(conn, "(&"+s.groupFilter+since+")")
	if err != nil {
		return connectors.ChangeSet{}, err
	}
	set := connectors.ChangeSet{Watermark: max(watermark, latest(append(users, groups...), s.f.changed))}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range append(users, groups...) {
		s.index[normalizeDN(e.DN)] = s.entryID(e)
	}
	for _, e := range users {
		set.Changed = append(set.Changed, s.recordLocked(e))
	}
	for _, e := range groups {
		set.Groups = append(set.Groups, s.groupLocked(e))
	}
	return set, ctx.Err()
}

func (s *Source) useDirSync(conn *goldap.Conn) bool {
	switch s.mode {
	case identityv1alpha1.IncrementalDirSync:
		return true
	case identityv1alpha1.IncrementalAuto, "":
		ok, _ := supports(conn, oidDirSync)
		return ok
	}
	return false
}

// dirSyncChanges asks Active Directory for the objects changed since the cookie.
// DirSync searches a whole naming context, so entries outside baseDN (deleted ones by
// the parent they had) are left out.
func (s *Source) dirSyncChanges(conn *goldap.Conn, watermark string) (connectors.ChangeSet, error) {
	cookie, _ := base64.StdEncoding.DecodeString(watermark)
	root, err := namingContext(conn, s.baseDN)
	if err != nil {
		return connectors.ChangeSet{}, err
	}
	base, _ := goldap.ParseDN(s.baseDN)
	within := func(dn string) bool {
		parsed, err := goldap.ParseDN(dn)
		return err == nil && (base.AncestorOfFold(parsed) || base.EqualFold(parsed))
	}
	filter := "(|" + s.userFilter + s.groupFilter + "(isDeleted=TRUE))"
	req := goldap.NewSearchRequest(root, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, filter, []string{"*"}, nil)
	var set connectors.ChangeSet
	for {
		res, err := conn.DirSync(req, 0, 0, cookie)
		if err != nil {
			return connectors.ChangeSet{}, classify("DirSync", err)
		}
		s.mu.Lock()
		for _, e := range res.Entries {
			s.index[normalizeDN(e.DN)] = s.entryID(e)
		}
		for _, e := range res.Entries {
			deleted := e.GetAttributeValue("isDeleted") == "TRUE"
			switch {
			case deleted && !within(e.GetAttributeValue("lastKnownParent")), !deleted && !within(e.DN):
			case deleted:
				set.Deleted = append(set.Deleted, s.entryID(e))
			case slices.Contains(e.GetAttributeValues("objectClass"), "group"):
				set.Groups = append(set.Groups, s.groupLocked(e))
			default:
				set.Changed = append(set.Changed, s.recordLocked(e))
			}
		}
		s.mu.Unlock()
		more := false
		if c, ok := goldap.FindControl(res.Controls, goldap.ControlTypeDirSync).(*goldap.ControlDirSync); ok {
			cookie, more = c.Cookie, c.Flags != 0
		}
		req.Controls = nil
		if !more {
			set.Watermark = base64.StdEncoding.EncodeToString(cookie)
			return set, nil
		}
	}
}

// dirSyncCookie is a DirSync cookie for the directory as it is now: a DirSync search
// whose filter matches nothing still returns the cookie of everything it went past.
func (s *Source) dirSyncCookie(conn *goldap.Conn) (string, error) {
	root, err := namingContext(conn, s.baseDN)
	if err != nil {
		return "", err
	}
	req := goldap.NewSearchRequest(root, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
		"(&(objectClass=user)(objectClass=group))", []string{"1.1"}, nil)
	var cookie []byte
	for {
		res, err := conn.DirSync(req, 0, 0, cookie)
		if err != nil {
			return "", classify("DirSync", err)
		}
		c, ok := goldap.FindControl(res.Controls, goldap.ControlTypeDirSync).(*goldap.ControlDirSync)
		if !ok {
			return "", nil
		}
		cookie = c.Cookie
		if c.Flags == 0 {
			return base64.StdEncoding.EncodeToString(cookie), nil
		}
		req.Controls = nil
	}
}

// namingContext is the naming context (partition root) that holds dn, from the root
// DSE: DirSync searches start there.
func namingContext(conn *goldap.Conn, dn string) (string, error) {
	res, err := conn.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false,
		"(objectClass=*)", []string{"namingContexts"}, nil))
	if err != nil {
		return "", classify("reading the root DSE", err)
	}
	parsed, err := goldap.ParseDN(dn)
	if err != nil || len(res.Entries) == 0 {
		return dn, nil
	}
	best, depth := dn, -1
	for _, nc := range res.Entries[0].GetAttributeValues("namingContexts") {
		p, err := goldap.ParseDN(nc)
		if err == nil && (p.AncestorOfFold(parsed) || p.EqualFold(parsed)) && len(p.RDNs) > depth {
			best, depth = nc, len(p.RDNs)
		}
	}
	return best, nil
}

// Watch follows changes with RFC 4533 refreshAndPersist, one search for users and one
// for groups, until ctx ends. A server without syncrepl gets ErrUnsupported, so that
// the caller polls instead.
func (s *Source) Watch(ctx context.Context, changed func(connectors.ChangeSet)) error {
	switch s.mode {
	case identityv1alpha1.IncrementalAuto, identityv1alpha1.IncrementalSyncRepl, "":
	default:
		return connectors.ErrUnsupported
	}
	conn, closeConn, err := s.dialer.dial(ctx)
	if err != nil {
		return err
	}
	defer closeConn()
	if ok, err := supports(conn, oidSyncRepl); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("the server does not offer syncrepl: %w", connectors.ErrUnsupported)
	}
	conn.SetTimeout(0) // a persistent search lasts until ctx ends, which closes conn
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for _, search := range []struct {
		filter string
		group  bool
	}{{s.userFilter, false}, {s.groupFilter, true}} {
		wg.Go(func() {
			errs <- s.persist(ctx, conn, search.filter, search.group, changed)
			cancel()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// persist runs one refreshAndPersist search and reports each entry it sends.
func (s *Source) persist(ctx context.Context, conn *goldap.Conn, filter string, group bool, changed func(connectors.ChangeSet)) error {
	req := goldap.NewSearchRequest(s.baseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false, filter, []string{"*", "+"}, nil)
	resp := conn.Syncrepl(ctx, req, 64, goldap.SyncRequestModeRefreshAndPersist, nil, false)
	for resp.Next() {
		e := resp.Entry()
		if e == nil || e.DN == "" {
			continue // a sync info message: cookies, refresh done
		}
		state, _ := goldap.FindControl(resp.Controls(), goldap.ControlTypeSyncState).(*goldap.ControlSyncState)
		if state == nil {
			continue
		}
		id := state.EntryUUID.String()
		if state.State == goldap.SyncStateDelete {
			changed(connectors.ChangeSet{Deleted: []string{id}})
			continue
		}
		if !s.f.binaryID && e.GetAttributeValue(s.f.id) == "" {
			e.Attributes = append(e.Attributes, &goldap.EntryAttribute{Name: s.f.id, Values: []string{id}})
		}
		changed(s.change(conn, e, group))
	}
	if err := resp.Err(); err != nil && ctx.Err() == nil {
		return classify("syncrepl", err)
	}
	return nil
}

// change turns one entry from a persistent search into a change set, looking up the
// ids of member DNs it has not seen yet.
func (s *Source) change(conn *goldap.Conn, e *goldap.Entry, group bool) connectors.ChangeSet {
	s.mu.Lock()
	s.index[normalizeDN(e.DN)] = s.entryID(e)
	var unknown []string
	if group {
		for _, dn := range e.GetAttributeValues(s.f.groupMember) {
			if _, ok := s.index[normalizeDN(dn)]; !ok {
				unknown = append(unknown, dn)
			}
		}
	}
	s.mu.Unlock()
	for _, dn := range unknown {
		res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 30, false,
			"(objectClass=*)", []string{s.f.id}, nil))
		if err == nil && len(res.Entries) == 1 {
			s.mu.Lock()
			s.index[normalizeDN(dn)] = s.entryID(res.Entries[0])
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if group {
		return connectors.ChangeSet{Groups: []connectors.SourceGroup{s.groupLocked(e)}}
	}
	return connectors.ChangeSet{Changed: []connectors.Record{s.recordLocked(e)}}
}
